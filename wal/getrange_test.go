package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestGetRange: GetRange returns the unacknowledged records of a run of
// seqs, as Get would one by one, within one segment file, up to its limits
// (getRangeMax records, getRangeScan seqs looked at, maxBytes), each
// record's bytes the caller's own; compressed and acknowledged records in
// between, and a reclaimed start, are handled.
func TestGetRange(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(smallSeg), WithCompression(CompressionZstd)}
	l := mustOpen(t, dir, opts...)
	defer mustClose(t, l)
	m := newModel()
	r := rand.New(rand.NewPCG(3, 5))
	for i := range 4000 {
		// A stretch of acknowledged records longer than a call looks at,
		// and some at random.
		m.appendAck(t, l, randRecord(r, r.IntN(300)), i >= 1500 && i < 1500+2*getRangeScan || r.IntN(6) == 0)
	}
	// The first segment reclaimed: its seqs are found nowhere.
	l.mu.Lock()
	second := l.segs[1].firstSeq
	l.mu.Unlock()
	for q := uint64(1); q < second; q++ {
		if !m.acked[q] {
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
			m.acked[q] = true
		}
	}
	l.reclaimNow()
	l.mu.Lock()
	firstSegs := make([]uint64, 0, len(l.segs))
	for _, s := range l.segs {
		firstSegs = append(firstSegs, s.firstSeq)
	}
	l.mu.Unlock()
	if firstSegs[0] != second || len(firstSegs) < 5 {
		t.Fatalf("segments begin at %v: want several, the first reclaimed (the second began at %d)", firstSegs, second)
	}
	// segEnd is where the segment of seq q ends (the next one's first seq).
	segEnd := func(q uint64) uint64 {
		for _, f := range firstSegs {
			if f > q {
				return f
			}
		}
		return m.next()
	}

	var atSegEnd, atBytes, atMax, atScan, compressed, empty int
	for _, maxBytes := range []int{1, 1000, 1 << 20} {
		var got []Record
		for q := uint64(1); q < m.next(); {
			recs, next, err := l.GetRange(nil, q, m.next(), maxBytes)
			if err != nil {
				t.Fatalf("GetRange(%d): %v", q, err)
			}
			if next <= q {
				t.Fatalf("GetRange(%d) goes on from %d", q, next)
			}
			if q < firstSegs[0] && (len(recs) != 0 || next != firstSegs[0]) {
				t.Fatalf("GetRange(%d) below the oldest segment: %d records, next %d; want none, %d", q, len(recs), next, firstSegs[0])
			}
			if q >= firstSegs[0] && next > segEnd(q) {
				t.Fatalf("GetRange(%d) goes on from %d, past the end of its segment at %d", q, next, segEnd(q))
			}
			size := 0
			for _, rec := range recs {
				size += len(rec.Data)
			}
			switch {
			case len(recs) == 0:
				empty++
			case next == segEnd(q) && next < m.next():
				atSegEnd++
			case size >= maxBytes && size-len(recs[len(recs)-1].Data) < maxBytes:
				atBytes++
			case len(recs) == getRangeMax:
				atMax++
			case next-q == getRangeScan:
				atScan++
			}
			if len(recs) > getRangeMax || next-q > getRangeScan || len(recs) > 1 && size-len(recs[len(recs)-1].Data) >= maxBytes {
				t.Fatalf("GetRange(%d, maxBytes %d): %d records of %d bytes, going on from %d: past its limits", q, maxBytes, len(recs), size, next)
			}
			for _, rec := range recs {
				if rec.Seq < q || rec.Seq >= next {
					t.Fatalf("GetRange(%d) returned seq %d, going on from %d", q, rec.Seq, next)
				}
				if _, loc := locOf(t, l, rec.Seq); loc.Raw != loc.Stored {
					compressed++
				}
			}
			// Each record's bytes are its own: growing one leaves the
			// next as it was.
			if len(recs) >= 2 {
				a := append(recs[0].Data, "grown"...)
				_ = a
				if !bytes.Equal(recs[1].Data, m.data[recs[1].Seq]) {
					t.Fatalf("appending to record %d changed record %d", recs[0].Seq, recs[1].Seq)
				}
			}
			for _, rec := range recs {
				if !bytes.Equal(rec.Data[:len(m.data[rec.Seq])], m.data[rec.Seq]) {
					t.Fatalf("GetRange: seq %d differs from what was written", rec.Seq)
				}
			}
			got = append(got, recs...)
			q = next
		}
		want := m.pending()
		if len(got) != len(want) {
			t.Fatalf("maxBytes %d: GetRange found %d records, want %d (%s)", maxBytes, len(got), len(want), diffSeqs(got, want))
		}
		for i, q := range want {
			if got[i].Seq != q {
				t.Fatalf("maxBytes %d: record %d is seq %d, want %d", maxBytes, i, got[i].Seq, q)
			}
		}
	}
	t.Logf("calls ending at a segment's end %d, at maxBytes %d, at getRangeMax %d, at getRangeScan %d, finding nothing %d; compressed records %d",
		atSegEnd, atBytes, atMax, atScan, empty, compressed)
	if atSegEnd == 0 || atBytes == 0 || atMax == 0 || atScan == 0 || empty == 0 || compressed == 0 {
		t.Fatal("a limit or case was never reached")
	}

	// Seqs never written, and a call that looks at none.
	if recs, next, err := l.GetRange(nil, m.next(), m.next()+10, 100); len(recs) != 0 || next != m.next() || err != nil {
		t.Fatalf("GetRange past the end: %d records, next %d, %v; want none, %d", len(recs), next, err, m.next())
	}
	if recs, next, err := l.GetRange(nil, 500, 500, 100); len(recs) != 0 || next != 500 || err != nil {
		t.Fatalf("GetRange(500, 500): %d records, next %d, %v; want none, 500", len(recs), next, err)
	}
}

// TestGetRangeDamage: a record damaged after it was written ends a
// GetRange call with the records before it, next at its seq, and the
// *CorruptionError Get returns for it; a call from it returns nothing but
// that error. A closed log's GetRange fails with ErrClosed.
func TestGetRangeDamage(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 20, 100)
	path, off := frameOf(t, l, seqs[7])
	flipPayload(t, path, off)
	recs, next, err := l.GetRange(nil, seqs[0], seqs[19]+1, 1<<20)
	var ce *CorruptionError
	if len(recs) != 7 || next != seqs[7] || !errors.As(err, &ce) || ce.Path != path || ce.Offset != off || ce.Seq != seqs[7] {
		t.Fatalf("GetRange over a damaged record: %d records, next %d, %v; want 7, %d and a *CorruptionError at %s offset %d seq %d",
			len(recs), next, err, seqs[7], path, off, seqs[7])
	}
	_, getErr := l.Get(seqs[7])
	if getErr == nil || getErr.Error() != err.Error() {
		t.Fatalf("GetRange's error %v differs from Get's %v", err, getErr)
	}
	if recs, next, err := l.GetRange(nil, seqs[7], seqs[19]+1, 1<<20); len(recs) != 0 || next != seqs[7] || !errors.As(err, &ce) {
		t.Fatalf("GetRange from a damaged record: %d records, next %d, %v; want none, %d and the damage", len(recs), next, err, seqs[7])
	}
	if recs, next, err := l.GetRange(nil, seqs[8], seqs[19]+1, 1<<20); len(recs) != 12 || next != seqs[19]+1 || err != nil {
		t.Fatalf("GetRange after the damaged record: %d records, next %d, %v; want 12, %d", len(recs), next, err, seqs[19]+1)
	}
	l.Close()
	if _, _, err := l.GetRange(nil, seqs[0], seqs[19]+1, 1<<20); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetRange after Close: %v, want ErrClosed", err)
	}
}

// TestGetRangeInto: GetRangeInto returns what GetRange does, with each
// record's bytes in the caller's buffer, one after the other, and the rest
// of the buffer; it stops before a record that no longer fits, and a first
// record that does not fit is a copy of its own, as GetRange's, with the
// buffer left unused. Compressed and encrypted records are decoded into the
// buffer too.
func TestGetRangeInto(t *testing.T) {
	for name, opts := range map[string][]Option{
		"plain":              nil,
		"zstd":               {WithCompression(CompressionZstd)},
		"encrypted":          {WithEncryption(testKey)},
		"zstd and encrypted": {WithCompression(CompressionZstd), WithEncryption(testKey)},
	} {
		t.Run(name, func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), append([]Option{WithSegmentSize(smallSeg)}, opts...)...)
			defer mustClose(t, l)
			m := newModel()
			r := rand.New(rand.NewPCG(7, 11))
			for range 3000 {
				m.appendAck(t, l, randRecord(r, 1+r.IntN(900)), r.IntN(5) == 0)
			}
			var inBuf, copies, full int
			for _, size := range []int{0, 100, 2000, 64 << 10} {
				var got []Record
				for q := uint64(1); q < m.next(); {
					buf := make([]byte, size)
					want, wantNext, err := l.GetRange(nil, q, m.next(), 16<<10)
					if err != nil {
						t.Fatal(err)
					}
					recs, rest, next, err := l.GetRangeInto(nil, buf, q, m.next(), 16<<10)
					if err != nil {
						t.Fatalf("GetRangeInto(%d): %v", q, err)
					}
					if next <= q || next > wantNext || len(recs) > len(want) {
						t.Fatalf("GetRangeInto(%d) into %d bytes: %d records, next %d; GetRange: %d, %d", q, size, len(recs), next, len(want), wantNext)
					}
					off := 0
					for i, rec := range recs {
						if rec.Seq != want[i].Seq || !bytes.Equal(rec.Data, want[i].Data) {
							t.Fatalf("GetRangeInto(%d): record %d is seq %d, want seq %d as GetRange's", q, i, rec.Seq, want[i].Seq)
						}
						if !bytes.Equal(rec.Data, m.data[rec.Seq]) {
							t.Fatalf("GetRangeInto: seq %d differs from what was written", rec.Seq)
						}
						switch {
						case inBufAt(rec.Data, buf, off):
							inBuf++
							off += len(rec.Data)
						case len(buf) > 0 && len(recs[0].Data) <= len(buf):
							t.Fatalf("GetRangeInto(%d): seq %d is not in the buffer after the records before it", q, rec.Seq)
						default:
							copies++
						}
					}
					if len(rest) != len(buf)-off || len(rest) > 0 && &rest[0] != &buf[off] {
						t.Fatalf("GetRangeInto(%d): %d bytes left of %d, %d used", q, len(rest), len(buf), off)
					}
					if len(recs) < len(want) {
						// Stopped early: only for room.
						if off == 0 || len(want[len(recs)].Data) <= len(rest) {
							t.Fatalf("GetRangeInto(%d): %d records of GetRange's %d, with %d bytes left", q, len(recs), len(want), len(rest))
						}
						full++
					}
					got = append(got, recs...)
					q = next
				}
				if len(got) != len(m.pending()) {
					t.Fatalf("buffers of %d bytes: %d records, want %d", size, len(got), len(m.pending()))
				}
			}
			t.Logf("records in the buffer %d, copies %d, calls stopped for room %d", inBuf, copies, full)
			if inBuf == 0 || copies == 0 || full == 0 {
				t.Fatal("a case was never reached")
			}
		})
	}
}

// inBufAt reports whether b is buf[off:off+len(b)], in buf's storage.
func inBufAt(b, buf []byte, off int) bool {
	return len(b) > 0 && off+len(b) <= len(buf) && &b[0] == &buf[off] && cap(b) >= len(b)
}
