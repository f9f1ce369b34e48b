package wal

import (
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// TestFailedOversizedRotationLeavesNoStrayPrepared: a rotation to an
// oversized segment whose rename fails must not leave that oversized file as
// the prepared segment, where it stays for good: no standard-size segment is
// prepared any more (every later rotation creates and allocates its file
// under the lock) and the oversized file's space stays taken until Close.
func TestFailedOversizedRotationLeavesNoStrayPrepared(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg), withFS(fsys))
	checkpointWritten(t, l)
	fsys.FailNextRenames(1)
	if _, err := l.Append(make([]byte, 1<<20)); err == nil {
		t.Fatal("append with a failed rename succeeded")
	}
	for range 200 { // several rotations of standard segments
		if _, err := l.Append(make([]byte, 2000)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a prepared segment of the standard size", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.prepared != nil && l.prepared.Size() == smallSeg
	})
}
