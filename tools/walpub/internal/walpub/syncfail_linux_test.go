package walpub

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/tools/internal/binding"
	"github.com/walpub/walpub/wal"
)

// fullDiskJournal returns a journal directory, bound to the embedded
// broker, on a small tmpfs filled so that the journal's superblock has no
// space reserved: under wal.SyncAlways the first sync then fails (the new
// mark finds the disk full) after the record was appended. Needs root.
func fullDiskJournal(t *testing.T) string {
	t.Helper()
	mnt := testutil.MountTmpfs(t, "4m")
	filler := filepath.Join(mnt, "filler")
	dir := filepath.Join(mnt, "journal")
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	for fill := free - (1 << 20); fill < free; fill += 4096 {
		os.Remove(filler)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		unlock, err := binding.Lock(dir) // its lock file, made while there is room
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		if err := binding.Write(dir, binding.Embedded); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filler, make([]byte, fill), 0o600); err != nil {
			break
		}
		l, err := wal.Open(dir, wal.WithSegmentSize(256<<10), wal.WithSync(wal.SyncAlways))
		if err != nil {
			break
		}
		var sb syscall.Stat_t
		err = syscall.Stat(filepath.Join(dir, "superblock"), &sb)
		l.Close()
		if err == nil && sb.Blocks == 0 {
			t.Logf("filler %d of %d free: superblock unreserved", fill, free)
			return dir
		}
	}
	t.Skip("could not leave the superblock unreserved")
	return ""
}

// TestSyncAlwaysFailedSyncCounted: under --sync always, a record whose
// sync failed is journaled all the same (Write returns the error with the
// record in the journal, and the producer sends it): the summary counts it
// among the records journaled, as the topic holding it shows.
func TestSyncAlwaysFailedSyncCounted(t *testing.T) {
	dir := fullDiskJournal(t)
	r := walpub(t, "a\n", "--journal", dir, "--sync", "always", "--drain-timeout", "1s")
	if !strings.Contains(r.stderr, "sync") {
		t.Fatalf("no sync failed (the fault did not fire): %s", r)
	}
	if r.code != ExitError || !strings.Contains(r.stdout, "walpub: 1 records journaled,") ||
		!strings.Contains(r.stdout, `topic "walpub" holds 1 records`) {
		t.Errorf("a record journaled with its sync failed: %s", r)
	}
}

// TestJournalErrorNamesLine: a Write that fails names the input and line
// of its record, and the lines after it that were read (the rest of the
// file, read ahead) are named as not journaled.
func TestJournalErrorNamesLine(t *testing.T) {
	dir := fullDiskJournal(t)
	input := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(input, []byte("a\nb\nc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := walpub(t, "", "--journal", dir, "--sync", "always", "--drain-timeout", "1s", input)
	if !strings.Contains(r.stderr, "sync failed") {
		t.Fatalf("no sync failed (the fault did not fire): %s", r)
	}
	for _, want := range []string{
		"walpub: " + input + ", line 1: kafka: record journaled, its sync failed: ",
		"walpub: " + input + ": lines 2-3, read, are not journaled",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r)
		}
	}
	if r.code != ExitError {
		t.Errorf("exit %d", r.code)
	}
}
