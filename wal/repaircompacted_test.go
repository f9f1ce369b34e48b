package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// appendToSegments appends rec until l has segs segments, and returns the
// seqs appended (noting each in m, if not nil).
func appendToSegments(t *testing.T, l *Log, rec []byte, segs int, m *model) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(segRanges(l)) < segs {
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
		if m != nil {
			m.data[q] = rec
		}
	}
	return seqs
}

// ackSeqs acknowledges the seqs of [from, to) except those skip reports.
func ackSeqs(t *testing.T, l *Log, from, to uint64, skip func(uint64) bool) {
	t.Helper()
	for q := from; q < to; q++ {
		if skip != nil && skip(q) {
			continue
		}
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
}

// waitCompacted waits until segment id of the log in dir is a compacted
// copy (smaller than the segments it was written in).
func waitCompacted(t *testing.T, dir string, id uint64) {
	t.Helper()
	path := filepath.Join(dir, segment.Name(id))
	eventually(t, "segment compacted", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() < smallSeg
	})
}

// flipFileByte flips a bit of the byte in the middle of the file at path.
func flipFileByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// repairAndOpen runs Repair on dir, which must succeed and leave a log
// that opens.
func repairAndOpen(t *testing.T, dir string) {
	t.Helper()
	if _, err := Open(dir, WithSegmentSize(smallSeg)); err != nil {
		t.Logf("Open before Repair: %v", err)
	}
	if rep, err := Repair(dir); err != nil {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	mustClose(t, mustOpen(t, dir, WithSegmentSize(smallSeg)))
}

// damageFrame flips a payload byte of the frame which picks among the n
// frames of the segment at path, and returns the segment's header.
func damageFrame(t *testing.T, path string, which func(n int) int) segment.Header {
	t.Helper()
	b, h := readSegment(t, path)
	frs := framesOf(t, b)
	b[frs[which(len(frs))].Offset+segment.FrameHeaderSize] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

var kiloRecord = bytes.Repeat([]byte("x"), 1000)

// compactedSecond writes a closed log in dir whose segment 2 is compacted:
// every record of it after its first is acknowledged, except those keep
// reports, and the log has segs segments.
func compactedSecond(t *testing.T, dir string, segs int, keep func(q uint64, r2 [2]uint64) bool) {
	t.Helper()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	appendToSegments(t, l, kiloRecord, 3, nil)
	r2 := segRanges(l)[1]
	ackSeqs(t, l, r2[0]+1, r2[1], func(q uint64) bool { return keep != nil && keep(q, r2) })
	appendToSegments(t, l, kiloRecord, segs, nil)
	waitCompacted(t, dir, 2)
	mustClose(t, l)
}

// TestRepairLostCheckpointCompacted: segment 2 is compacted (all but its
// first and last records acknowledged, by ack frames in segment 3), then
// segment 3 is reclaimed whole. With the checkpoint damaged, Repair must
// write a new one (the records compaction dropped are not on disk to come
// back), not fail and leave a log that never opens.
func TestRepairLostCheckpointCompacted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	appendToSegments(t, l, kiloRecord, 3, nil)
	r2 := segRanges(l)[1]
	ackSeqs(t, l, r2[0]+1, r2[1]-1, nil) // ack frames in segment 3
	appendToSegments(t, l, kiloRecord, 4, nil)
	r3 := segRanges(l)[2]
	ackSeqs(t, l, r3[0], r3[1], nil) // ack frames in segment 4
	appendToSegments(t, l, kiloRecord, 5, nil)
	waitCompacted(t, dir, 2)
	eventually(t, "segment 3 reclaimed", func() bool {
		_, err := os.Stat(filepath.Join(dir, segment.Name(3)))
		return errors.Is(err, os.ErrNotExist)
	})
	mustClose(t, l)
	flipFileByte(t, filepath.Join(dir, index.CheckpointName))
	repairAndOpen(t, dir)
}

// TestRepairLostCheckpointFirstCompacted: segment 1, the first, is
// compacted; the ack frames of the records it dropped were in segment 1
// itself (dropped too). With the checkpoint gone, Open must call the
// checkpoint lost (Repair writes one), not ask for the missing file to be
// moved aside (which changes nothing).
func TestRepairLostCheckpointFirstCompacted(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	var seqs []uint64
	for range 20 {
		q, err := l.Append(kiloRecord)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	ackSeqs(t, l, seqs[1], seqs[len(seqs)-1], nil) // ack frames in segment 1
	later := appendToSegments(t, l, kiloRecord, 2, nil)
	ackSeqs(t, l, later[0], later[len(later)-1], nil) // ack frames in segment 2
	waitCompacted(t, dir, 1)
	mustClose(t, l)
	if err := os.Remove(filepath.Join(dir, index.CheckpointName)); err != nil {
		t.Fatal(err)
	}
	repairAndOpen(t, dir)
}

// TestRepairDamagedCompacted: a flipped byte in the last record of a
// compacted segment (whose records have gaps: the acknowledged ones were
// dropped). Repair cuts the record, then has to move the checkpoint aside
// (it names the cut record) and rebuild one, which must succeed.
func TestRepairDamagedCompacted(t *testing.T) {
	dir := t.TempDir()
	// Segment 2 keeps its first, its 10th and its last record.
	compactedSecond(t, dir, 4, func(q uint64, r2 [2]uint64) bool { return q == r2[0]+10 || q == r2[1]-1 })
	if h := damageFrame(t, filepath.Join(dir, segment.Name(2)), func(n int) int { return n - 1 }); !h.Compacted() {
		t.Fatal("segment 2 not compacted")
	}
	repairAndOpen(t, dir)
}

// TestRepairTwoDamages: a damaged checkpoint and a damaged record in a
// later sealed segment, in a log with a compacted segment. Repair moves
// the checkpoint aside; its rebuild of the checkpoint then meets the
// damaged record, which Repair must mend before rebuilding again, not
// give up.
func TestRepairTwoDamages(t *testing.T) {
	dir := t.TempDir()
	compactedSecond(t, dir, 5, nil) // segment 2 keeps its first record only
	// A record in the middle of segment 3 (sealed, below the mark).
	damageFrame(t, filepath.Join(dir, segment.Name(3)), func(n int) int { return n / 2 })
	flipFileByte(t, filepath.Join(dir, index.CheckpointName))
	repairAndOpen(t, dir)
}
