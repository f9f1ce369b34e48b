package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestHeaderLostBeforeCompacted: with no checkpoint and no superblock (the
// durable mark at the very start), segment 1's header is damaged and
// segment 2 after it is compacted. A compacted copy is synced before it is
// renamed into place, so the damaged header cannot be a power cut's hole
// with only unsynced files after it: Open must refuse the log, not cut it
// at segment 1 and delete every segment with its pending records.
func TestHeaderLostBeforeCompacted(t *testing.T) {
	dir := t.TempDir()
	compactedSecond(t, dir, 4, nil)
	for _, name := range []string{index.CheckpointName, index.SuperblockName} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, segment.Name(1))
	b, _ := readSegment(t, p)
	b[20] ^= 1 // the segment id
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := segFiles(t, dir)
	l, err := Open(dir, WithSegmentSize(smallSeg))
	if err == nil {
		n := len(pendingOf(t, l))
		l.Close()
		t.Fatalf("Open succeeded with %d records pending; segment files %d before, %d after", n, len(before), len(segFiles(t, dir)))
	}
	asCorruption(t, err, dir)
	if after := segFiles(t, dir); len(after) != len(before) {
		t.Fatalf("segment files: %d before Open, %d after", len(before), len(after))
	}
}
