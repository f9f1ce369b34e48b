package wal

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairKeepsSegmentsAfterItsCut: a Repair interrupted (a power cut,
// a kill) after it zeroed a sealed segment's tail at the damage and
// removed the last segment, but before it removed the segment between
// (a file system may keep any of several removals not yet synced), leaves
// that middle segment after a stretch of zeros, and the superblock
// naming the removed one. The next Repair must keep the middle segment's
// records, in the log or in a side file: moving the superblock aside (it
// names a missing segment) took the durable mark, and the checkpoint
// rebuilt from the segments, or the Open after, then dropped the middle
// segment as written after a power cut's hole, without a side file.
func TestRepairKeepsSegmentsAfterItsCut(t *testing.T) {
	closed, _ := damageImages(t)
	s := closed.snap.clone()
	names := s.segNames()
	if len(names) != 4 {
		t.Fatalf("segments %v, want 4", names)
	}
	// What Repair of a flipped byte in the second segment did before the
	// cut: that segment zeroed from the damaged frame on, the last
	// segment moved aside and removed.
	frs := framesOf(t, s[names[1]])
	clear(s[names[1]][frs[len(frs)/2].Offset:])
	delete(s, names[3])
	dir := s.write(t, filepath.Join(t.TempDir(), "log"))
	if _, err := Repair(dir); err != nil {
		t.Fatalf("Repair: %v", err)
	}
	pieces := sidePiecesIn(t, dir)
	l, err := Open(dir, WithSegmentSize(smallSeg), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("Open after Repair: %v", err)
	}
	defer mustClose(t, l)
	mid := closed.snap[names[2]]
	lost := 0
	for _, fr := range framesOf(t, mid) {
		if fr.Flags&segment.FlagAck != 0 {
			continue
		}
		if got, err := l.Get(fr.Seq); err == nil && bytes.Equal(got, closed.m.data[fr.Seq]) {
			continue
		}
		raw := bytes.TrimRight(mid[fr.Offset:fr.End()], "\x00")
		found := false
		for _, p := range pieces {
			if p.file == names[2] && p.off <= fr.Offset && fr.Offset+int64(len(raw)) <= p.off+int64(len(p.data)) &&
				bytes.Equal(p.data[fr.Offset-p.off:fr.Offset-p.off+int64(len(raw))], raw) {
				found = true
				break
			}
		}
		if !found {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d records of %s are neither in the log nor in a side file after Repair (side file pieces %d)", lost, names[2], len(pieces))
	}
}
