package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/segment"
)

// frameOf returns the file and offset of record seq's frame in an open log.
func frameOf(t testing.TB, l *Log, seq uint64) (string, int64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := findSeg(l.segs, seq)
	if s == nil {
		t.Fatalf("no segment holds seq %d", seq)
	}
	off, ok := s.locs.Lookup(seq)
	if !ok {
		t.Fatalf("seq %d has no frame", seq)
	}
	return s.file.Path, off
}

// flipPayload flips the first payload byte of the frame at off of path
// through the file (the log's mapping sees it): calling it twice mends
// the frame.
func flipPayload(t testing.TB, path string, off int64) {
	t.Helper()
	testutil.FlipByte(t, path, off+segment.FrameHeaderSize)
}

func appendN(t testing.TB, l *Log, n, size int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		d := []byte(fmt.Sprintf("record %d ", i))
		d = append(d, make([]byte, max(0, size-len(d)))...)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	return seqs
}

// TestAckOfDamagedFrame: an Ack whose seqs include a record whose frame
// was damaged since it was written fails with a *CorruptionError and
// changes nothing, so that acknowledging the other records again writes
// their ack frame: after a reopen they are not pending.
func TestAckOfDamagedFrame(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 3, 10)
	path, off := frameOf(t, l, seqs[2])
	flipPayload(t, path, off)
	err := l.Ack(seqs...)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Seq != seqs[2] || ce.Offset != off {
		t.Fatalf("Ack with a damaged frame: %v, want a *CorruptionError at offset %d, seq %d", err, off, seqs[2])
	}
	if st := l.Stats(); st.Pending != 3 {
		t.Fatalf("%d pending after the failed Ack, want 3", st.Pending)
	}
	for _, q := range seqs[:2] {
		if _, err := l.Get(q); err != nil {
			t.Fatalf("Get(%d) after the failed Ack: %v", q, err)
		}
	}
	flipPayload(t, path, off) // mended
	if err := l.Ack(seqs[:2]...); err != nil {
		t.Fatalf("Ack(%v) retried: %v", seqs[:2], err)
	}
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	if recs := pendingOf(t, l); len(recs) != 1 || recs[0].Seq != seqs[2] {
		t.Fatalf("pending after reopen: %s", diffSeqs(recs, seqs[2:]))
	}
}

// TestGetVerifiesChecksum: a record damaged after it was written is a
// *CorruptionError from Get, never its damaged bytes.
func TestGetVerifiesChecksum(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 3, 100)
	path, off := frameOf(t, l, seqs[1])
	flipPayload(t, path, off)
	got, err := l.Get(seqs[1])
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Offset != off || ce.Seq != seqs[1] {
		t.Fatalf("Get of a damaged record: %q, %v; want a *CorruptionError at %s offset %d seq %d", got, err, path, off, seqs[1])
	}
	if _, err := l.Get(seqs[2]); err != nil {
		t.Fatalf("Get of an undamaged record: %v", err)
	}
}

// TestReadFaultIsAnError: a mapped page that cannot be read (the file cut
// short under the mapping, as another process could; an I/O error on the
// page faults the same way) is an error from Get and Ack, not a crash of
// the process; Pending, which reads the file, fails its short read.
func TestReadFaultIsAnError(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 8, 2000)
	path, off := frameOf(t, l, seqs[7])
	if off < 8192 {
		t.Fatalf("the last record is at offset %d, want it past the first pages", off)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	faulted := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "fault reading "+path) {
			t.Errorf("%s of a record past the end of the file: %v, want a fault reading %s", what, err, path)
		}
	}
	_, err := l.Get(seqs[7])
	faulted("Get", err)
	// Pending reads the file, not the mapping: the file cut short is a
	// short read, naming the file.
	_, err = collectPending(l)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "read "+path) {
		t.Errorf("Pending of a record past the end of the file: %v, want an unexpected EOF reading %s", err, path)
	}
	faulted("Ack", l.Ack(seqs[7]))
	if st := l.Stats(); st.Pending != 8 {
		t.Errorf("%d pending after the failed Ack, want 8", st.Pending)
	}
	l.Close() // fails or not; it must not crash either
}
