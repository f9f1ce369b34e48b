package wal

import (
	"errors"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// TestOpenFailureClosesFiles: an Open that fails at its last step, taking
// the superblock's space (an error other than ENOSPC, which is let be),
// closes every file it opened; the superblock's was left open. Checked on
// a new log and on one with records.
func TestOpenFailureClosesFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"new", "reopened"} {
		t.Run(name, func(t *testing.T) {
			fsys := &vfs.Faulty{FS: vfs.OS}
			fsys.FailNextReserves(1, syscall.EIO)
			l, err := Open(dir, withFS(fsys), WithSegmentSize(smallSeg))
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded: the injected reserve failure did not fire")
			}
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Open: %v, want the injected EIO", err)
			}
			if n := fsys.OpenFiles(); n != 0 {
				t.Fatalf("a failed Open left %d files open: %v", n, err)
			}
			// The log opens once the fault is gone, and is written to for
			// the next round.
			l = mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
			if _, err := l.Append([]byte("x")); err != nil {
				t.Fatal(err)
			}
			mustClose(t, l)
			if n := fsys.OpenFiles(); n != 0 {
				t.Fatalf("%d files open after Close", n)
			}
		})
	}
}
