package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/segment"
)

// TestViewReopenSeesRewrite: a sealed segment whose middle record was
// overwritten in place, with the file's size and modification time as
// they were, is read again by View.Reopen, which finds the damage: the
// write moved the file's status change time, which nothing sets back.
// (Its last record's frame and the zeros after its data are as they
// were, so nothing else tells.)
func TestViewReopenSeesRewrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	for l.Stats().Segments <= 3 {
		if _, err := l.Append(make([]byte, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := v.Segments()[0]
	v.Close() // Reopen needs none of its mappings
	mid := first.FirstSeq + (first.LastSeq-first.FirstSeq)/2
	if mid == first.LastSeq {
		t.Fatalf("segment 1 holds seqs %d-%d: the test needs a record before its last", first.FirstSeq, first.LastSeq)
	}
	var rec RecordInfo
	for r, err := range mustView(t, dir).Records(mid, mid) {
		if err != nil {
			t.Fatal(err)
		}
		rec = r
	}
	if rec.Seq != mid {
		t.Fatalf("record %d not found", mid)
	}
	// Past the coarse clock's tick, where the file system has one, so
	// that the write's change time is not the one the view saw.
	time.Sleep(20 * time.Millisecond)
	at := rec.Offset + segment.FrameHeaderSize + int64(rec.StoredSize)/2
	before := rewriteKeepingTime(t, first.Path, at, []byte{0xA5}) // the payload is zeros
	after, err := os.Stat(first.Path)
	if err != nil {
		t.Fatal(err)
	}
	// The fault: same size and modification time, another change time.
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("size %d, mtime %v after the write; %d, %v before", after.Size(), after.ModTime(), before.Size(), before.ModTime())
	}
	if !changed(before, after) {
		t.Fatal("the write left the status change time as it was, or it is not known")
	}
	if _, err := OpenView(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenView after record %d was overwritten: %v, want damage", mid, err)
	}
	if again, err := v.Reopen(); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			again.Close()
		}
		t.Errorf("Reopen after record %d was overwritten: %v, want damage", mid, err)
	}
}
