package wal

import (
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// TestCloseDropsZeroPages: the zero pages of the active segment's
// preallocation faulted in after its data are dropped from the page cache
// at Close, so that the file system reports a hole there again and the
// next Open does not read them to check they are zeros; the data stays.
func TestCloseDropsZeroPages(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(8<<20))
	seqs := appendN(t, l, 100, 1000)
	l.mu.Lock()
	a := l.active
	tail, size := a.tail, a.file.Size()
	// As the log does ahead of its writes.
	a.file.Populate(tail, size)
	l.mu.Unlock()
	after := segment.PageAlign(tail)
	if a.file.HoleFrom(after) < size {
		t.Skip("the file system reports no data for cached pages of unwritten extents")
	}
	path := a.file.Path
	mustClose(t, l)

	f, err := segment.Open(vfs.OS, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h := f.HoleFrom(after); h >= size {
		t.Fatalf("after Close the file system reports data from %d to the end (%d): the zero pages were not dropped", after, size)
	}
	if h := f.HoleFrom(0); h < tail {
		t.Fatalf("a hole at %d, before the data's end %d", h, tail)
	}
	l = mustOpen(t, dir)
	if got := pendingOf(t, l); len(got) != len(seqs) {
		t.Fatalf("%d records pending after reopening, want %d", len(got), len(seqs))
	}
}
