package walcat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestRepairKeyRefusedOnDamagedLog: repair --key-file refuses, before
// anything changes, a key for a damaged log that is not encrypted (a
// usage error, as for a healthy one) and a key that is not the log's for
// a damaged encrypted one, also when the damage keeps the log from
// loading (a frame that does not verify). Before, it cut the log, then
// said "the log is encrypted and no key, or a different key, was given",
// and --requeue appended nothing: the advice walpub gives for a damaged
// journal started with --journal-key-file that it was not yet encrypted
// under ended so.
func TestRepairKeyRefusedOnDamagedLog(t *testing.T) {
	_, keyFile, other := keyFiles(t, t.TempDir())

	plain := t.TempDir()
	buildDamagedLog(t, plain)
	before := snapshot(t, plain)
	r := walcat(t, "repair", "--key-file", keyFile, "--requeue", plain)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "is not encrypted: give no --key-file") {
		t.Errorf("repair --key-file --requeue of a damaged plain log: exit %d, want 2 and 'not encrypted'\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	compareSnapshots(t, "repair --key-file of a damaged plain log", before, snapshot(t, plain))
	if _, err := os.Stat(filepath.Join(plain, "encryption")); err == nil {
		t.Error("the plain log became encrypted")
	}

	enc := t.TempDir()
	key, _, _ := keyFiles(t, t.TempDir())
	l := openLog(t, enc, wal.WithEncryption(key))
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, []byte(fmt.Sprintf("secret %d", i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rec := recordAt(t, enc, 3)
	testutil.FlipByte(t, rec.Path, rec.Offset+40)
	before = snapshot(t, enc)
	r = walcat(t, "repair", "--key-file", other, "--requeue", enc)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "is not the key of") {
		t.Errorf("repair with another key of a damaged encrypted log: exit %d, want 1 and 'not the key'\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	compareSnapshots(t, "repair with another key of a damaged encrypted log", before, snapshot(t, enc))

	// With the right key, the repair and the requeue go ahead.
	r = walcat(t, "repair", "--key-file", keyFile, "--requeue", enc)
	if r.code != ExitOK || !strings.Contains(r.stdout, "requeued 2 records") {
		t.Errorf("repair --key-file --requeue: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
