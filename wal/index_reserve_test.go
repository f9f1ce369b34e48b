package wal

import (
	"bytes"
	"errors"
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

// TestRotationTakesPreparedIndex: the preparer allocates the prepared
// segment's index and bitmap once the active segment is half full (not
// before: a log that writes little holds none), and the rotation to it
// takes them, rebased to the seq the segment starts at, instead of
// allocating its own under the lock.
func TestRotationTakesPreparedIndex(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(256<<10), WithSync(SyncNever))
	defer mustClose(t, l)
	rec := make([]byte, 100)
	half := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.halfFullLocked(l.active)
	}
	for range 100 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	l.kick(l.prepKick)
	eventually(t, "the preparer to be idle", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.prepared != nil && l.prepPopulated >= l.prepReachLocked(l.active)
	})
	l.mu.Lock()
	early := l.prepIndex
	l.mu.Unlock()
	if early != nil {
		t.Fatal("the preparer allocated the next segment's index before the active one was half full")
	}
	for !half() {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	l.kick(l.prepKick)
	var ix *segIndex
	eventually(t, "the prepared segment's index", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		ix = l.prepIndex
		return ix != nil
	})
	if ix.locs.Len() != 0 || ix.acks.Count() != 0 {
		t.Fatalf("prepared index holds %d records, %d acknowledged", ix.locs.Len(), ix.acks.Count())
	}
	first := l.Stats().Segments
	var q uint64
	for l.Stats().Segments == first {
		var err error
		if q, err = l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	a := l.active
	l.mu.Unlock()
	if a.locs != ix.locs || a.acks != ix.acks {
		t.Fatal("the rotation did not take the index the preparer made")
	}
	if a.firstSeq != q || a.acks.Base() != q {
		t.Fatalf("segment starts at %d, its bitmap at %d; want %d", a.firstSeq, a.acks.Base(), q)
	}
	if loc, ok := a.locs.Find(q); !ok || loc.Off != segment.HeaderSize {
		t.Fatalf("seq %d: %+v %v in the new segment's index, want its first frame", q, loc, ok)
	}
	if err := l.Ack(q); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Get(q); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of acknowledged %d: %v, want ErrNotFound", q, err)
	}
	if got, err := l.Get(q - 1); err != nil || !bytes.Equal(got, rec) {
		t.Fatalf("Get(%d) = %v", q-1, err)
	}
}
