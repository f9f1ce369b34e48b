package wal

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// scannedBytes returns how many bytes of segment files fn's loads read
// to verify them (windowHook).
func scannedBytes(t *testing.T, fn func()) int64 {
	t.Helper()
	var n atomic.Int64
	hook := func(from, to int64, mapped bool) { n.Add(to - from) }
	windowHook.Store(&hook)
	defer windowHook.Store(nil)
	fn()
	return n.Load()
}

// TestViewReopenReadsOnlyNew: View.Reopen of a log appended to since the
// view before reads and verifies the last segment (and new ones) only,
// not the sealed segments the view before verified, so that its cost
// does not grow with the log's history; the view it returns is the one
// OpenView returns. A
// sealed segment changed since (its last record cut, as a repair does,
// with its modification time as it was, as within one clock tick of the
// file system) is read again.
func TestViewReopenReadsOnlyNew(t *testing.T) {
	for _, sealed := range []int{2, 8} {
		dir := filepath.Join(t.TempDir(), "log")
		l := mustOpen(t, dir, WithSegmentSize(smallSeg))
		for l.Stats().Segments <= sealed {
			if _, err := l.Append(make([]byte, 4000)); err != nil {
				t.Fatal(err)
			}
		}
		v, err := OpenView(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append([]byte("new")); err != nil {
			t.Fatal(err)
		}
		// Closed, so that the two views below see the same files (a
		// live writer may write its metadata between them).
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		v.Close() // Reopen needs none of its mappings
		var again *View
		reopen := scannedBytes(t, func() {
			if again, err = v.Reopen(); err != nil {
				t.Fatal(err)
			}
		})
		var fresh *View
		whole := scannedBytes(t, func() {
			if fresh, err = OpenView(dir); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d sealed segments: Reopen read %d bytes, OpenView %d", sealed, reopen, whole)
		if whole < int64(sealed)*smallSeg/2 {
			t.Fatalf("OpenView read %d bytes of %d sealed segments: the hook does not count", whole, sealed)
		}
		if reopen > smallSeg {
			t.Errorf("%d sealed segments: Reopen read %d bytes, more than the last segment holds", sealed, reopen)
		}
		if a, f := again.Info(), fresh.Info(); !reflect.DeepEqual(a, f) {
			t.Errorf("Reopen's view:\n%+v\nOpenView's:\n%+v", a, f)
		}
		if again.NextSeq() != fresh.NextSeq() || !reflect.DeepEqual(again.Segments(), fresh.Segments()) {
			t.Errorf("Reopen's view: next seq %d, segments %+v; OpenView's: %d, %+v",
				again.NextSeq(), again.Segments(), fresh.NextSeq(), fresh.Segments())
		}
		fresh.Close()

		// Segment 1's last record cut, its size and (set back) its
		// time kept: read again, and its damage found. The writer
		// closed (synced): the cut is below the durable mark, damage,
		// not a power cut's loss.
		first := again.Segments()[0]
		again.Close()
		var last RecordInfo
		for r, err := range mustView(t, dir).Records(first.LastSeq, first.LastSeq) {
			if err != nil {
				t.Fatal(err)
			}
			last = r
		}
		rewriteKeepingTime(t, first.Path, last.Offset, make([]byte, segment.FrameSize(last.StoredSize)))
		if v, err := again.Reopen(); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				v.Close()
			}
			t.Errorf("%d sealed segments: Reopen after segment 1 was cut: %v, want damage", sealed, err)
		}
		if _, err := OpenView(dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("OpenView after segment 1 was cut: %v, want damage", err)
		}
	}
}

// rewriteKeepingTime writes b at off of the file at path, then sets the
// file's modification time back to what it was, and returns the file's
// status from before the write.
func rewriteKeepingTime(t *testing.T, path string, off int64, b []byte) os.FileInfo {
	t.Helper()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	return before
}

// mustView opens a view of dir, closed with the test.
func mustView(t *testing.T, dir string) *View {
	t.Helper()
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestViewReopenFollowsWork: across a log's work between two views —
// appends that rotate, acknowledgements that reclaim segments and make
// them sparse (compaction), reopening — Reopen's view is the one OpenView
// returns, records and acknowledgements included.
func TestViewReopenFollowsWork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	rng := rand.New(rand.NewPCG(1, 2))
	var prev *View
	next := uint64(1)
	var reused, compacted bool
	for round := range 12 {
		l := mustOpen(t, dir, WithSegmentSize(smallSeg))
		for range 30 {
			if _, err := l.Append(make([]byte, 1000+rng.IntN(3000))); err != nil {
				t.Fatal(err)
			}
		}
		for q := next; q < l.Stats().NextSeq; q++ {
			if rng.IntN(3) > 0 {
				if err := l.Ack(q); err != nil {
					t.Fatal(err)
				}
			}
		}
		next = l.Stats().NextSeq
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var fresh *View
		whole := scannedBytes(t, func() { fresh = mustView(t, dir) })
		for _, s := range fresh.Segments() {
			compacted = compacted || s.Compacted
		}
		if prev != nil {
			var again *View
			var err error
			if scannedBytes(t, func() { again, err = prev.Reopen() }) < whole {
				reused = true
			}
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if a, f := again.Info(), fresh.Info(); !reflect.DeepEqual(a, f) {
				t.Fatalf("round %d: Reopen's view:\n%+v\nOpenView's:\n%+v", round, a, f)
			}
			if a, f := viewRecords(t, again), viewRecords(t, fresh); !reflect.DeepEqual(a, f) {
				t.Fatalf("round %d: Reopen's records:\n%v\nOpenView's:\n%v", round, a, f)
			}
			again.Close()
		}
		prev = fresh
	}
	if !reused || !compacted {
		t.Errorf("no Reopen reused a scan (%v), or no segment was compacted (%v)", reused, compacted)
	}
}

// viewRecords returns the seq, place and acknowledgement of every record
// of v.
func viewRecords(t *testing.T, v *View) []RecordInfo {
	t.Helper()
	var rs []RecordInfo
	for r, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		r.Data = nil
		rs = append(rs, r)
	}
	return rs
}
