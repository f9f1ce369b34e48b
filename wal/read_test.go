package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// frameOf returns the file and offset of record seq's frame in an open log.
func frameOf(t testing.TB, l *Log, seq uint64) (string, int64) {
	t.Helper()
	path, loc := locOf(t, l, seq)
	return path, loc.Off
}

// locOf returns the file of record seq's frame in an open log, and where
// the index says the frame is.
func locOf(t testing.TB, l *Log, seq uint64) (string, index.Loc) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := findSeg(l.segs, seq)
	if s == nil {
		t.Fatalf("no segment holds seq %d", seq)
	}
	loc, ok := s.locs.Find(seq)
	if !ok {
		t.Fatalf("seq %d has no frame", seq)
	}
	return s.file.Path, loc
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

// TestAckOfDamagedFrame: Ack reads no frame (the lengths it needs are in
// the index), so acknowledging a record whose frame was damaged since it
// was written succeeds like any other and keeps the counters right: an
// acknowledged record is never read again. Until then every read of the
// frame reports the damage, and so does the next Open, which verifies
// the active segment whole.
func TestAckOfDamagedFrame(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 3, 10)
	path, off := frameOf(t, l, seqs[2])
	flipPayload(t, path, off)
	var ce *CorruptionError
	if _, err := l.Get(seqs[2]); !errors.As(err, &ce) || ce.Seq != seqs[2] || ce.Offset != off {
		t.Fatalf("Get of the damaged frame: %v, want a *CorruptionError at offset %d, seq %d", err, off, seqs[2])
	}
	if err := l.Ack(seqs[1:]...); err != nil {
		t.Fatalf("Ack(%v) with a damaged frame: %v", seqs[1:], err)
	}
	if st := l.Stats(); st.Pending != 1 || st.PendingBytes != 10 {
		t.Fatalf("after the Ack: %d pending, %d bytes; want 1, 10", st.Pending, st.PendingBytes)
	}
	if _, err := l.Get(seqs[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of the acknowledged damaged record: %v, want ErrNotFound", err)
	}
	if recs := pendingOf(t, l); len(recs) != 1 || recs[0].Seq != seqs[0] {
		t.Fatalf("pending after the Ack: %s", diffSeqs(recs, seqs[:1]))
	}
	mustClose(t, l)
	if l, err := Open(dir, WithSegmentSize(smallSeg)); !errors.As(err, &ce) || ce.Path != path || ce.Offset != off {
		if err == nil {
			l.Close()
		}
		t.Fatalf("Open of the log with the damaged frame: %v, want a *CorruptionError at %s offset %d", err, path, off)
	}
	flipPayload(t, path, off) // mended
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	if recs := pendingOf(t, l); len(recs) != 1 || recs[0].Seq != seqs[0] {
		t.Fatalf("pending after reopen: %s", diffSeqs(recs, seqs[:1]))
	}
	mustClose(t, l)
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
// page faults the same way) is an error from Get, not a crash of the
// process; Pending, which reads the file, fails its short read. (Ack
// reads no frame.)
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
	l.Close() // fails or not; it must not crash either
}
