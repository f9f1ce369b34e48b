package wal

import (
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestRotationReservesIndex: a segment a rotation opens gets an index
// sized for as many records as the one before it took, and a sixteenth
// more (expectRecordsLocked), so that filling it with records like those
// before allocates nothing; a segment of another size (an oversized
// record's) gets none.
func TestRotationReservesIndex(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(256<<10), WithSync(SyncNever))
	rec := make([]byte, 100)
	for l.Stats().Segments < 3 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	full := l.segs[1].locs.Len() // the first full segment opened by a rotation
	want := full + full/16
	if got := l.expectRecordsLocked(l.cfg.segmentSize); got != uint64(want) {
		t.Errorf("expectRecordsLocked = %d after a segment of %d records, want %d", got, full, want)
	}
	if got := l.expectRecordsLocked(l.cfg.segmentSize + segment.PageSize); got <= uint64(want) {
		t.Errorf("expectRecordsLocked of a larger segment = %d, want more than %d", got, want)
	}
	active := l.active
	l.mu.Unlock()
	mustClose(t, l) // no background work from here on
	if full != l.segs[0].locs.Len() || full < 1000 {
		t.Fatalf("segments of %d and %d records: want two equal full ones", l.segs[0].locs.Len(), full)
	}
	// Adding full records to (a copy of) the active segment's index, as
	// its appends would, allocates nothing.
	next, ok := active.locs.Last()
	if !ok {
		next = active.firstSeq - 1
	}
	off := active.tail
	allocs := testing.AllocsPerRun(1, func() {
		c := *active.locs
		for i := range want - active.locs.Len() {
			c.Add(next+1+uint64(i), index.Loc{Off: off + int64(i)*136, Stored: 100, Raw: 100})
		}
	})
	if allocs != 0 {
		t.Errorf("adding %d records to the index of a rotated-to segment allocated %v times; want none (reserved)", want-active.locs.Len(), allocs)
	}
	// An oversized record's segment: no reservation from the others.
	l2 := mustOpen(t, t.TempDir(), WithSegmentSize(256<<10), WithSync(SyncNever))
	for range 100 {
		if _, err := l2.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l2.Append(make([]byte, 300<<10)); err != nil {
		t.Fatal(err)
	}
	l2.mu.Lock()
	big := l2.active
	l2.mu.Unlock()
	mustClose(t, l2)
	if big.file.Size() == l2.cfg.segmentSize {
		t.Fatal("the oversized record went into a segment of the usual size")
	}
	allocs = testing.AllocsPerRun(1, func() {
		c := *big.locs
		for i := range 2000 {
			c.Add(big.firstSeq+1+uint64(i), index.Loc{Off: int64(i) * 136, Stored: 100, Raw: 100})
		}
	})
	if allocs == 0 {
		t.Error("the index of an oversized record's segment took 2000 more records without allocating: it was reserved")
	}
}
