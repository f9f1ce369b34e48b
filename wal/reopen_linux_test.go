package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/index"
)

// TestReopenWritesNothing: opening a closed log, reading it and closing it
// again changes no file (the checkpoint on disk already says everything a
// new one would: before, every Close of a reopened log wrote and synced a
// new one); an Ack since makes Close write one, which a later reopen
// finds current again, whether the ack frame acknowledges a sealed
// segment's record or one of the active segment's.
func TestReopenWritesNothing(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(smallSeg)}
	l := mustOpen(t, dir, opts...)
	seqs := appendN(t, l, 300, 1000)
	if st := l.Stats(); st.Segments < 3 {
		t.Fatalf("%d segments: the test needs sealed ones", st.Segments)
	}
	if err := l.Ack(seqs[3], seqs[70]); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	// A checkpoint written anew is a new file (renamed into place): its
	// change time differs even if its inode number was reused.
	stamp := func(dir string) [2]int64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, index.CheckpointName))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return [2]int64{int64(st.Ino), st.Ctim.Nano()}
	}
	reopen := func(what string, ack ...uint64) (rewritten bool) {
		t.Helper()
		before, was := readDir(t, dir), stamp(dir)
		l := mustOpen(t, dir, opts...)
		pendingOf(t, l)
		if len(ack) > 0 {
			if err := l.Ack(ack...); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, l)
		after := readDir(t, dir)
		if len(ack) == 0 && !before.equal(after) {
			t.Errorf("%s: reopening and closing changed the log's files", what)
		}
		return stamp(dir) != was
	}
	if reopen("after the first Close") {
		t.Errorf("reopened and closed: the checkpoint was written again")
	}
	sealedSeq, activeSeq := seqs[5], seqs[len(seqs)-1]
	if !reopen("ack of a sealed segment's record", sealedSeq) {
		t.Errorf("an Ack of a sealed segment's record: Close wrote no checkpoint")
	}
	if reopen("after the sealed segment's ack") {
		t.Errorf("reopened after the Ack's checkpoint: the checkpoint was written again")
	}
	if !reopen("ack of the active segment's record", activeSeq) {
		t.Errorf("an Ack of the active segment's record: Close wrote no checkpoint")
	}
	if reopen("after the active segment's ack") {
		t.Errorf("reopened after the active segment's Ack: the checkpoint was written again")
	}
	// Killed after an Ack of a sealed segment's record: the checkpoint on
	// disk lacks it, and only the active segment's ack frame holds it. The
	// next Close writes a checkpoint that records it.
	// (The background work may write a checkpoint after the Ack: the
	// one from before it is what a kill before that leaves.)
	killedSeq := seqs[9]
	l = mustOpen(t, dir, opts...)
	ckptBefore := readDir(t, dir)[index.CheckpointName]
	if err := l.Ack(killedSeq); err != nil {
		t.Fatal(err)
	}
	snap := readDir(t, dir).data()
	snap[index.CheckpointName] = ckptBefore
	killed := snap.write(t, filepath.Join(t.TempDir(), "killed"))
	mustClose(t, l)
	l = mustOpen(t, killed, opts...)
	mustClose(t, l)
	if ckptAfter := readDir(t, killed)[index.CheckpointName]; bytes.Equal(ckptBefore, ckptAfter) {
		t.Errorf("reopened after a kill that lost the checkpoint's ack: Close wrote no new checkpoint")
	}
	l = mustOpen(t, killed, opts...)
	defer mustClose(t, l)
	acked := map[uint64]bool{seqs[3]: true, seqs[70]: true, sealedSeq: true, activeSeq: true, killedSeq: true}
	recs := pendingOf(t, l)
	if len(recs) != len(seqs)-len(acked) {
		t.Fatalf("%d pending, want %d", len(recs), len(seqs)-len(acked))
	}
	for _, r := range recs {
		if acked[r.Seq] {
			t.Fatalf("acknowledged record %d is pending after the reopens", r.Seq)
		}
	}
}
