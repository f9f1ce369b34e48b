package wal

import (
	"slices"
	"testing"
)

// TestPendingSeesAckAfterRotation: Pending is iterating the active
// segment; during the iteration the segment is sealed by a rotation, then a
// record of it not yet yielded is acknowledged. Pending must not yield it.
func TestPendingSeesAckAfterRotation(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	defer mustClose(t, l)
	for range 10 {
		if _, err := l.Append(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[uint64]bool{}
	pendingWhileAcking(t, l, acked, func(uint64) {
		// Seal the segment being iterated: fill it past its end.
		for range 40 {
			if _, err := l.Append(make([]byte, 3000)); err != nil {
				t.Fatal(err)
			}
		}
		if st := l.Stats(); st.Segments < 2 {
			t.Fatalf("no rotation: %+v", st)
		}
		if err := l.Ack(5); err != nil {
			t.Fatal(err)
		}
		acked[5] = true
	})
}

// pendingWhileAcking iterates l.Pending, calling during on the first
// record yielded (where the test rotates, merges and acknowledges), and
// fails if it yields a record acked holds: one acknowledged during the
// iteration. It returns the seqs yielded.
func pendingWhileAcking(t *testing.T, l *Log, acked map[uint64]bool, during func(first uint64)) []uint64 {
	t.Helper()
	var yielded []uint64
	for r, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if acked[r.Seq] {
			t.Fatalf("Pending yielded record %d, acknowledged during the iteration", r.Seq)
		}
		if yielded = append(yielded, r.Seq); len(yielded) == 1 {
			during(r.Seq)
		}
	}
	return yielded
}

// TestPendingSeesAckAfterMerge: Pending is iterating a sealed segment when
// compaction replaces it by a merged copy of its pending records; a record
// copied, not yet yielded, is then acknowledged (in the merged segment's
// bitmap). Pending, which goes on reading the old file, must not yield it,
// nor any record acknowledged before the merge.
func TestPendingSeesAckAfterMerge(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer mustClose(t, l)
	rec := make([]byte, 1000)
	for len(segRanges(l)) < 4 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	r1 := segRanges(l)[0]
	last := r1[1] - 1 // segment 1's last three records stay pending a while
	acked := map[uint64]bool{}
	ack := func(qs ...uint64) {
		if err := l.Ack(qs...); err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			acked[q] = true
		}
	}
	yielded := pendingWhileAcking(t, l, acked, func(first uint64) {
		var qs []uint64
		for q := first + 1; q < last-2; q++ {
			qs = append(qs, q)
		}
		ack(qs...)
		waitCompacted(t, dir, 1)
		ack(last - 1) // copied into the merged segment, acknowledged there
	})
	for _, q := range []uint64{last - 2, last} {
		if !slices.Contains(yielded, q) {
			t.Errorf("record %d, pending, was not yielded", q)
		}
	}
}

// TestPendingSeesAckAfterSecondMerge: Pending is iterating a sealed
// segment when compaction replaces it by a merged copy, and then replaces
// that copy by a merged copy of its own; a record not yet yielded is then
// acknowledged (in the second copy's bitmap). Pending, which goes on
// reading the original file, must not yield it.
func TestPendingSeesAckAfterSecondMerge(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	defer mustClose(t, l)
	rec := make([]byte, 1000)
	for len(segRanges(l)) < 3 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	end := segRanges(l)[0][1] // segment 1 holds the seqs below end
	acked := map[uint64]bool{}
	ack := func(from, to uint64) {
		var qs []uint64
		for q := from; q < to; q++ {
			qs = append(qs, q)
			acked[q] = true
		}
		if err := l.Ack(qs...); err != nil {
			t.Fatal(err)
		}
	}
	// merge runs reclaim passes until segment 1 is a compacted file of
	// generation gen (a sparse segment is merged once a pass finds it
	// stuck, the pass after the one that saw it sparse).
	merge := func(gen uint64) {
		t.Helper()
		for range 3 {
			l.reclaimMu.Lock()
			_, err := l.reclaim()
			l.reclaimMu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			s := l.segs[0]
			done := s.compacted() && s.file.Header.Generation == gen
			l.mu.Unlock()
			if done {
				return
			}
		}
		t.Fatalf("segment 1 not merged into generation %d", gen)
	}
	yielded := pendingWhileAcking(t, l, acked, func(first uint64) {
		ack(first+1, end-12) // segment 1 keeps 12 records: merged
		merge(1)
		ack(end-12, end-3) // the merged copy keeps 3: merged again
		merge(2)
		ack(end-3, end-2) // acknowledged in the second copy's bitmap
	})
	for _, q := range []uint64{end - 2, end - 1} {
		if !slices.Contains(yielded, q) {
			t.Errorf("record %d, pending, was not yielded", q)
		}
	}
}
