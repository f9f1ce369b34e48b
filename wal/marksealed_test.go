package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestMarkInSealedSegment: the superblock names a sealed segment (what
// a rotation's sync writes: the last sealed segment and its end), and that
// segment's data ends below the mark - its last frame, an ack frame, is
// gone. checkEnd checks the mark against the data only for the last
// segment, so Open accepts the log and the acknowledged record is pending
// again.
func TestMarkInSealedSegment(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	rec := bytes.Repeat([]byte("x"), 1000)
	for len(segRanges(l)) < 2 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	for range 40 { // segment 2 more than half full: no compaction of it
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ack(1); err != nil { // its ack frame is the last frame of segment 2
		t.Fatal(err)
	}
	if _, err := l.Append(bytes.Repeat([]byte("y"), smallSeg)); err != nil { // rotates to segment 3
		t.Fatal(err)
	}
	first3 := segRanges(l)[2][0]
	mustClose(t, l)
	os.Remove(filepath.Join(dir, index.CheckpointName)) // as before any checkpoint

	p2 := filepath.Join(dir, segment.Name(2))
	b, _ := readSegment(t, p2)
	frs := framesOf(t, b)
	last := frs[len(frs)-1]
	if !last.IsAck() {
		t.Fatal("last frame of segment 2 is not an ack frame")
	}
	// The superblock as the rotation's sync wrote it: segment 2 up to its end.
	sbPath := filepath.Join(dir, index.SuperblockName)
	sbb, err := os.ReadFile(sbPath)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := index.DecodeSuperblock(sbb)
	if err != nil {
		t.Fatal(err)
	}
	sb = index.Superblock{Generation: sb.Generation + 1, Segment: 2, Offset: last.End(), Seq: first3 - 1}
	sbb = make([]byte, index.SuperblockSize)
	index.PutSuperblockSlot(sbb[int(sb.Generation%2)*index.SuperblockSlot:], sb)
	if err := os.WriteFile(sbPath, sbb, 0o600); err != nil {
		t.Fatal(err)
	}
	// Segment 2 loses its last (durable) frame.
	clear(b[last.Offset:last.End()])
	if err := os.WriteFile(p2, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, WithSegmentSize(smallSeg))
	if err != nil {
		t.Logf("Open: %v", err)
		return
	}
	defer l.Close()
	for _, r := range pendingOf(t, l) {
		if r.Seq == 1 {
			t.Fatalf("Open accepted segment 2 ending at %d, below the durable mark at %d: acknowledged record 1 is pending again", last.Offset, last.End())
		}
	}
}
