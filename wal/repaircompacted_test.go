package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairLostCheckpointCompacted: segment 2 is compacted (all but
// its first record acknowledged, by ack frames in segment 3), then
// segment 3 is reclaimed whole. With the checkpoint gone, Repair must
// write a new one (the records compaction dropped are not on disk to come
// back); it must not fail and leave a log that never opens.
func TestRepairLostCheckpointCompacted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	m := newModel()
	rec := bytes.Repeat([]byte("x"), 1000)
	appendUntil := func(segs int) {
		for len(segRanges(l)) < segs {
			q, err := l.Append(rec)
			if err != nil {
				t.Fatal(err)
			}
			m.data[q] = rec
		}
	}
	ackRange := func(rg [2]uint64, from uint64) {
		for q := from; q < rg[1]; q++ {
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
			m.acked[q] = true
		}
	}
	appendUntil(3)
	r2 := segRanges(l)[1]
	ackRange([2]uint64{r2[0], r2[1] - 1}, r2[0]+1) // ack frames in segment 3; first and last of segment 2 stay pending
	appendUntil(4)
	r3 := segRanges(l)[2]
	ackRange(r3, r3[0]) // ack frames in segment 4
	appendUntil(5)
	eventually(t, "segment 2 compacted and segment 3 reclaimed", func() bool {
		fi, err := os.Stat(filepath.Join(dir, segment.Name(2)))
		_, err3 := os.Stat(filepath.Join(dir, segment.Name(3)))
		return err == nil && fi.Size() < smallSeg && errors.Is(err3, os.ErrNotExist)
	})
	mustClose(t, l)
	ck := filepath.Join(dir, "checkpoint")
	b, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1 // a damaged checkpoint: Repair moves it aside
	if err := os.WriteFile(ck, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var rep RepairReport
	if _, err := Open(dir, WithSegmentSize(smallSeg)); err == nil {
		t.Fatal("Open without the checkpoint succeeded")
	} else {
		t.Logf("Open: %v", err)
	}
	rep, err = Repair(dir)
	if err != nil {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	mustClose(t, l)
}

// TestRepairLostCheckpointFirstCompacted: segment 1, the first, is
// compacted; the ack frames of the records it dropped were in segment 1
// itself (dropped too). With the checkpoint gone, Open blames the
// checkpoint and asks for it to be moved aside - it is not there, so
// Repair can do nothing, spins, and fails.
func TestRepairLostCheckpointFirstCompacted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	rec := bytes.Repeat([]byte("x"), 1000)
	var seqs []uint64
	for range 20 {
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	for _, q := range seqs[1 : len(seqs)-1] { // ack frames in segment 1
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	var later []uint64
	for len(segRanges(l)) < 2 {
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		later = append(later, q)
	}
	for _, q := range later[:len(later)-1] { // ack frames in segment 2
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "segment 1 compacted", func() bool {
		fi, err := os.Stat(filepath.Join(dir, segment.Name(1)))
		return err == nil && fi.Size() < smallSeg
	})
	mustClose(t, l)
	if err := os.Remove(filepath.Join(dir, "checkpoint")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, WithSegmentSize(smallSeg))
	t.Logf("Open: %v", err)
	rep, err := Repair(dir)
	if err != nil {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	mustClose(t, l)
}

// TestRepairDamagedCompacted: a flipped byte in the last record of a
// compacted segment (whose records have gaps: the acknowledged ones were
// dropped). Repair cuts the record, then has to move the checkpoint aside
// (it names the cut record) and rebuild one - which fails.
func TestRepairDamagedCompacted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	rec := bytes.Repeat([]byte("x"), 1000)
	appendUntil := func(segs int) {
		for len(segRanges(l)) < segs {
			if _, err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendUntil(3)
	r2 := segRanges(l)[1]
	for q := r2[0] + 1; q < r2[1]-1; q++ { // keep the first, the 10th and the last of segment 2
		if q == r2[0]+10 {
			continue
		}
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	appendUntil(4)
	path := filepath.Join(dir, segment.Name(2))
	eventually(t, "segment 2 compacted", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() < smallSeg
	})
	mustClose(t, l)
	b, h := readSegment(t, path)
	if !h.Compacted() {
		t.Fatal("segment 2 not compacted")
	}
	frs := framesOf(t, b)
	last := frs[len(frs)-1]
	b[last.Offset+segment.FrameHeaderSize] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, WithSegmentSize(smallSeg))
	t.Logf("Open: %v", err)
	rep, err := Repair(dir)
	if err != nil {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	mustClose(t, l)
}

// TestRepairTwoDamages: a damaged checkpoint and a damaged record in a
// later sealed segment, in a log with a compacted segment. Each alone
// Repair mends; together, Repair moves the checkpoint aside, then its
// rebuild of the checkpoint meets the damaged record and Repair gives up.
func TestRepairTwoDamages(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	rec := bytes.Repeat([]byte("x"), 1000)
	appendUntil := func(segs int) {
		for len(segRanges(l)) < segs {
			if _, err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendUntil(3)
	r2 := segRanges(l)[1]
	for q := r2[0] + 1; q < r2[1]; q++ { // segment 2 keeps its first record only
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	appendUntil(5)
	eventually(t, "segment 2 compacted", func() bool {
		fi, err := os.Stat(filepath.Join(dir, segment.Name(2)))
		return err == nil && fi.Size() < smallSeg
	})
	mustClose(t, l)
	// Damage a record in the middle of segment 3 (sealed, below the mark).
	p3 := filepath.Join(dir, segment.Name(3))
	b, _ := readSegment(t, p3)
	frs := framesOf(t, b)
	b[frs[len(frs)/2].Offset+segment.FrameHeaderSize] ^= 1
	if err := os.WriteFile(p3, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// And the checkpoint.
	ck := filepath.Join(dir, "checkpoint")
	cb, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	cb[len(cb)/2] ^= 1
	if err := os.WriteFile(ck, cb, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(dir)
	if err != nil {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	mustClose(t, l)
}
