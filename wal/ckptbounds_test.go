package wal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestCheckpointBoundsMatchSegments: a checkpoint with a valid checksum
// whose sealed end or through does not match the segments on disk (the
// segment after through must exist and start at the sealed end, and the
// sealed end cannot pass the next seq) is damage: Open reports a
// *CorruptionError naming the checkpoint (or the segment it implies),
// which Repair mends by moving the checkpoint aside, and no record
// written and not acknowledged is lost on the way. Before, a sealed end
// past the active segment's first seq acknowledged its records silently.
func TestCheckpointBoundsMatchSegments(t *testing.T) {
	base := t.TempDir()
	orig := filepath.Join(base, "orig")
	l := mustOpen(t, orig, WithSegmentSize(smallSeg))
	rec := make([]byte, 2000)
	var last uint64
	for range 100 {
		seq, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	if err := l.Ack(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	ck, err := index.DecodeCheckpoint(mustRead(t, filepath.Join(orig, index.CheckpointName)))
	if err != nil {
		t.Fatal(err)
	}
	ids := segFiles(t, orig)
	if ck.Through < 2 || len(ids) < 3 {
		t.Fatalf("checkpoint through %d, %d segments: want several sealed", ck.Through, len(ids))
	}
	wantPending := int(last) - 3
	for _, c := range []struct {
		name   string
		edit   func(c *index.Checkpoint, dir string)
		file   string // the file the error names
		offset int64
	}{
		{"sealed-end-inside-active-segment", func(c *index.Checkpoint, _ string) { c.SealedEnd = c.NextSeq }, index.CheckpointName, 32},
		{"sealed-end-past-next-seq", func(c *index.Checkpoint, _ string) { c.SealedEnd = 1 << 40 }, index.CheckpointName, 32},
		{"sealed-end-inside-sealed-segment", func(c *index.Checkpoint, _ string) { c.SealedEnd-- }, index.CheckpointName, 32},
		{"through-short-of-a-sealed-segment", func(c *index.Checkpoint, _ string) { c.Through-- }, index.CheckpointName, 32},
		{"through-names-a-missing-segment", func(c *index.Checkpoint, dir string) {
			// Segments 1..3 are gone, every record of theirs
			// acknowledged, yet through says segment 3's ack frames are
			// not in the checkpoint: it could not have been reclaimed.
			for _, e := range c.Segments {
				if e.ID <= 3 {
					e.Acks.SetRange(e.Acks.Base(), e.Acks.Base()+e.Acks.Len())
				}
			}
			for _, p := range segFiles(t, dir) {
				if id, _ := segment.ParseName(filepath.Base(p)); id <= 3 {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.Through = 2
		}, segment.Name(3), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyDir(t, orig, filepath.Join(t.TempDir(), "log"))
			ck, err := index.DecodeCheckpoint(mustRead(t, filepath.Join(dir, index.CheckpointName)))
			if err != nil {
				t.Fatal(err)
			}
			c.edit(&ck, dir)
			if err := os.WriteFile(filepath.Join(dir, index.CheckpointName), index.AppendCheckpoint(nil, ck), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(dir, WithSegmentSize(smallSeg))
			if err == nil {
				st := l.Stats()
				l.Close()
				t.Fatalf("Open accepted the checkpoint (%d pending of %d written, 3 acknowledged)", st.Pending, last)
			}
			ce := asCorruption(t, err, dir)
			if filepath.Base(ce.Path) != c.file || ce.Offset != c.offset || ce.Fix() != FixMoveAside {
				t.Fatalf("got %v (fix %v), want %s at offset %d, moved aside", err, ce.Fix(), c.file, c.offset)
			}
			if c.file != index.CheckpointName {
				return // a segment is gone: no repair brings it back
			}
			if _, err := Repair(dir); err != nil {
				t.Fatalf("Repair: %v", err)
			}
			l = mustOpen(t, dir, WithSegmentSize(smallSeg))
			defer mustClose(t, l)
			got := map[uint64]bool{}
			for _, r := range pendingOf(t, l) {
				got[r.Seq] = true
			}
			for q := uint64(4); q <= last; q++ {
				if !got[q] {
					t.Fatalf("record %d lost after Repair (%d pending, want at least %d)", q, len(got), wantPending)
				}
			}
		})
	}
}

// TestCheckpointWithoutSegments: a checkpoint through a segment id, in a
// directory with no segment file, names a segment that is not there, even
// when it names no record (a log always has its active segment): the one
// after through, whether or not the checkpoint names records.
func TestCheckpointWithoutSegments(t *testing.T) {
	for _, nextSeq := range []uint64{1, 10} {
		dir := t.TempDir()
		b := index.AppendCheckpoint(nil, index.Checkpoint{Through: 4, NextSeq: nextSeq, SealedEnd: 1})
		if err := os.WriteFile(filepath.Join(dir, index.CheckpointName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir)
		if err == nil {
			l.Close()
			t.Fatalf("next seq %d: Open accepted a checkpoint through segment 4 with no segment file", nextSeq)
		}
		if ce := asCorruption(t, err, dir); filepath.Base(ce.Path) != segment.Name(5) || ce.Fix() != FixMoveAside {
			t.Fatalf("next seq %d: got %v (fix %v), want segment 5 missing, the checkpoint moved aside", nextSeq, err, ce.Fix())
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
