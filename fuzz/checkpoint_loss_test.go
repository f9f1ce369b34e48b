package fuzz

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
)

// TestLostCheckpoint: compaction drops a segment's ack frames, including
// those that acknowledged records of an earlier segment still on disk;
// from then on only the checkpoint remembers those acknowledgements. A log
// whose checkpoint file is gone must not open as if nothing happened
// (the acknowledged records would be pending again, silently): Open and
// Verify report a *wal.CorruptionError naming the checkpoint, and Repair
// writes a new one from the segments' ack frames, after which every
// record pending before is pending still, with its data, and only
// acknowledged records come back besides.
func TestLostCheckpoint(t *testing.T) {
	dir := scratchDir(t)
	w := newLogWriter(t, dir)
	for w.l.Stats().Segments < 2 {
		w.step()
	}
	w.ack(3, 4, 5) // records of segment 1, ack frame in segment 2
	w.ackSegmentBut(2)
	for w.l.Stats().Segments < 3 {
		w.step()
	}
	w.ackSegmentBut(2) // segment 2 becomes worth compacting
	w.close()
	seg2 := filepath.Join(dir, "00000000000000000002.seg")
	waitCompacted(t, dir, func() bool {
		fi, err := os.Stat(seg2)
		return err == nil && fi.Size() < segSize || os.IsNotExist(err)
	})
	want := w.pending()
	if out, err := checkDamaged(dir, want); err != nil || out != harmless {
		t.Fatalf("undamaged log: %s %v", out, err)
	}
	ckpt := filepath.Join(dir, index.CheckpointName)
	if err := os.Remove(ckpt); err != nil {
		t.Fatal(err)
	}

	var ce *wal.CorruptionError
	if _, err := wal.Open(dir, openOpts...); !errors.As(err, &ce) || ce.Path != ckpt || !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("Open without the checkpoint: %v, want a *wal.CorruptionError naming %s", err, ckpt)
	}
	t.Logf("Open: %v", ce)
	if err := wal.Verify(dir); !errors.As(err, &ce) || ce.Path != ckpt {
		t.Fatalf("Verify without the checkpoint: %v", err)
	}

	rep, err := wal.Repair(dir)
	if err != nil || rep.Path != ckpt || rep.Moved != 0 || rep.SideFile != "" {
		t.Fatalf("Repair: %+v, %v; want a report naming the new checkpoint, nothing moved", rep, err)
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Fatalf("Repair wrote no checkpoint: %v", err)
	}
	var first []rec
	for round := range 2 {
		l, err := wal.Open(dir, openOpts...)
		if err != nil {
			t.Fatalf("round %d: Open after Repair: %v", round, err)
		}
		got, err := pendingOf(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		gotBy := map[uint64][]byte{}
		back := 0
		for _, r := range got {
			if !bytes.Equal(r.Data, w.data[r.Seq]) {
				t.Fatalf("round %d: record %d has the wrong data", round, r.Seq)
			}
			gotBy[r.Seq] = r.Data
			if w.acked[r.Seq] {
				back++
			}
		}
		for _, r := range want {
			if _, ok := gotBy[r.Seq]; !ok {
				t.Fatalf("round %d: pending record %d lost by the repair", round, r.Seq)
			}
		}
		if round == 0 {
			first = got
			t.Logf("%d pending, %d of them acknowledged before the checkpoint was lost", len(got), back)
			if back == 0 {
				t.Fatal("no acknowledged record came back: the scenario lost no acknowledgement, so it tests nothing")
			}
		} else if !sameRecs(got, first) {
			t.Fatalf("reopened after Repair: %d pending, first open %d", len(got), len(first))
		}
	}
	if rep, err := wal.Repair(dir); err != nil || rep != (wal.RepairReport{}) {
		t.Fatalf("second Repair: %+v, %v", rep, err)
	}
}
