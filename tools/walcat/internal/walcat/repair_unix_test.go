//go:build unix

package walcat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/wal"
)

// TestRepairLocked: repair refuses a log another Log holds.
func TestRepairLocked(t *testing.T) {
	dir := t.TempDir()
	buildDamagedLog(t, dir)
	// wal.Open refuses a damaged log, so take the lock as the Log
	// would: an exclusive flock of DIR/LOCK.
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Skipf("flock: %v", err)
	}
	r := walcat(t, "repair", dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "another process has") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if err := wal.Verify(dir); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("the log changed: %v", err)
	}
}
