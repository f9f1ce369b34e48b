package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
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
		opts := []Option{WithSegmentSize(4 << 20), WithCompression(comp)}
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

// TestPendingStructuralDamage: Pending trusts the checksums Open verified
// but checks each frame's structure again: a frame damaged since, past the
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
