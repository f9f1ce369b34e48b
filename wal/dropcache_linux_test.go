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

// TestOpenReadsNoPreallocation: Open's check that only zeros follow the
// data reads the data extents the file system reported before it began,
// not the zero pages its reading makes the kernel read ahead after them
// (asked for one extent after another, those counted as data, and the
// check read its way through the whole preallocation, caching it).
func TestOpenReadsNoPreallocation(t *testing.T) {
	dir := t.TempDir()
	const size = 32 << 20
	l := mustOpen(t, dir, WithSegmentSize(size))
	appendN(t, l, 100, 1000)
	mustClose(t, l)
	path := segFiles(t, dir)[0]
	f, err := segment.Open(vfs.OS, path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h := f.HoleFrom(0); h >= size {
		t.Skip("the file system reports no hole after the data")
	}
	l = mustOpen(t, dir)
	// The log pre-faults populateAhead after its tail; nothing beyond.
	if d := f.DataFrom(size / 2); d < size {
		t.Fatalf("after Open the file system reports data at %d, past half the 32 MiB segment: Open read the preallocation", d)
	}
	mustClose(t, l)
}
