package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestPendingAcrossWindows: Pending reads segment files a window
// (readWindow) at a time; records that straddle a window's end, records
// larger than a window, compressed records and acknowledged records in
// between all come out as written, after a reopen and on the open log.
func TestPendingAcrossWindows(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		dir := t.TempDir()
		opts := []Option{WithSegmentSize(8 * readWindow), WithCompression(comp)}
		l := mustOpen(t, dir, opts...)
		m := newModel()
		r := rand.New(rand.NewPCG(7, uint64(comp)))
		sizes := []int{readWindow + 1, 3*readWindow - 5, readWindow - segment.FrameHeaderSize, 1, 0}
		for i := range 3000 {
			n := 100 + r.IntN(3000)
			if i%500 == 7 {
				n = sizes[(i/500)%len(sizes)]
			}
			d := randRecord(r, n)
			q, err := l.Append(d)
			if err != nil {
				t.Fatal(err)
			}
			m.data[q] = d
			if r.IntN(4) == 0 {
				if err := l.Ack(q); err != nil {
					t.Fatal(err)
				}
				m.acked[q] = true
			}
		}
		if st := l.Stats(); st.Segments < 2 {
			t.Fatalf("%d segments: the test needs a sealed one", st.Segments)
		}
		m.check(t, l)
		mustClose(t, l)
		l = mustOpen(t, dir, opts...)
		m.check(t, l)
		mustClose(t, l)
	}
}

// TestPendingStructuralDamage: Pending checks each frame's structure again
// (and each record's checksum, TestPendingVerifiesChecksums): a frame
// whose header was damaged since Open, past the
// first window and straddling a window's end, ends the iteration with a
// *CorruptionError naming the file and the frame's offset, after the
// records before it.
func TestPendingStructuralDamage(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(16<<20))
	rec := bytes.Repeat([]byte("x"), 3000)
	var seqs []uint64
	for range 1000 {
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	// The first frame that runs past the first window.
	var bad uint64
	var path string
	var off int64
	for _, q := range seqs {
		p, o := frameOf(t, l, q)
		if o+int64(segment.FrameSize(len(rec))) > segment.HeaderSize+readWindow {
			bad, path, off = q, p, o
			break
		}
	}
	if off+segment.FrameHeaderSize > segment.HeaderSize+readWindow || off < segment.HeaderSize+readWindow-int64(len(rec)) {
		t.Fatalf("frame of seq %d at offset %d does not straddle the first window's end", bad, off)
	}
	// Unknown flags: caught without the checksum.
	l.mu.Lock()
	b := l.active.file.Bytes()
	binary.LittleEndian.PutUint32(b[off+12:], 1<<20)
	l.mu.Unlock()
	recs, err := collectPending(l)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Offset != off {
		t.Fatalf("Pending over a damaged frame: %v, want a *CorruptionError at %s offset %d", err, path, off)
	}
	if len(recs) != int(bad-seqs[0]) {
		t.Fatalf("Pending yielded %d records before the damage, want %d", len(recs), bad-seqs[0])
	}
	l.Close() // fails or not: the log is damaged
}

// TestPendingVerifiesChecksums: Pending rereads frames that Open or the
// append verified, so it checks each record's checksum again before it
// hands the record out. A payload byte changed since (the frame's
// structure intact) ends the iteration with a *CorruptionError naming the
// file and the frame's offset, after the records before it: in the first
// window, in a window read ahead, and in a sealed segment after a reopen.
// Once the damaged record is acknowledged, Pending reads past it again.
func TestPendingVerifiesChecksums(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(4 << 20)}
	l := mustOpen(t, dir, opts...)
	seqs := appendN(t, l, 3000, 3000) // about 9 MiB: three segments
	acked := map[uint64]bool{}
	if st := l.Stats(); st.Segments < 3 {
		t.Fatalf("%d segments, want 3 or more", st.Segments)
	}
	check := func(l *Log, bad uint64) {
		t.Helper()
		path, off := frameOf(t, l, bad)
		flipPayload(t, path, off)
		recs, err := collectPending(l)
		var ce *CorruptionError
		if !errors.As(err, &ce) || ce.Path != path || ce.Offset != off {
			t.Fatalf("Pending over the damaged record %d: %v, want a *CorruptionError at %s offset %d", bad, err, path, off)
		}
		if !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("Pending over the damaged record %d: %v, want a checksum mismatch", bad, err)
		}
		// Every record before it, as written.
		var want []uint64
		for _, q := range seqs {
			if q < bad && !acked[q] {
				want = append(want, q)
			}
		}
		if len(recs) != len(want) {
			t.Fatalf("Pending yielded %d records before the damaged %d, want %d", len(recs), bad, len(want))
		}
		for i, r := range recs {
			if r.Seq != want[i] || !bytes.HasPrefix(r.Data, fmt.Appendf(nil, "record %d ", r.Seq-seqs[0])) {
				t.Fatalf("Pending yielded seq %d = %.20q, want seq %d", r.Seq, r.Data, want[i])
			}
		}
		if err := l.Ack(bad); err != nil {
			t.Fatal(err)
		}
		acked[bad] = true
		if _, err := collectPending(l); err != nil {
			t.Fatalf("Pending with the damaged record acknowledged: %v", err)
		}
		// Mended, so that the next Open (which may verify acknowledged
		// frames whose ack it has not read yet) opens.
		flipPayload(t, path, off)
	}
	// The active segment, its first window; then a window read ahead of
	// the one Pending yields from, in the first segment.
	check(l, seqs[len(seqs)-1])
	first, _ := frameOf(t, l, seqs[0])
	var ahead uint64
	for _, q := range seqs {
		p, o := frameOf(t, l, q)
		if p == first && o > segment.HeaderSize+2*readWindow+readWindow/2 {
			ahead = q
			break
		}
	}
	if ahead == 0 {
		t.Fatal("no record two windows into the first segment")
	}
	check(l, ahead)
	mustClose(t, l)
	// After a reopen (which verified everything), in a sealed segment.
	l = mustOpen(t, dir, opts...)
	check(l, seqs[len(seqs)/2])
	mustClose(t, l)
}
