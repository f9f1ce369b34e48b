package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// TestRoundTrip writes random records (0..20 KiB, some larger than a
// segment) across many segments through Append and AppendBatch, and reads
// them back with Get and Pending: while open, after a reopen, and after a
// reopen with another segment size and compression.
func TestRoundTrip(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(fmt.Sprintf("compression=%d", comp), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(comp), 1))
			dir := t.TempDir()
			l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithCompression(comp))
			m := newModel()
			m.appendRandom(t, l, r, 400)
			if st := l.Stats(); st.Segments < 20 {
				t.Fatalf("only %d segments: the test wants many", st.Segments)
			}
			m.check(t, l)
			mustClose(t, l)

			l = mustOpen(t, dir, WithSegmentSize(smallSeg), WithCompression(comp))
			m.check(t, l)
			m.appendRandom(t, l, r, 50)
			m.check(t, l)
			mustClose(t, l)

			// Other options: existing segments keep their size and
			// format, new records use the new ones.
			other := CompressionZstd - comp
			l = mustOpen(t, dir, WithSegmentSize(3*smallSeg), WithCompression(other))
			m.check(t, l)
			m.appendRandom(t, l, r, 100)
			m.check(t, l)
			mustClose(t, l)

			l = mustOpen(t, dir)
			m.check(t, l)
			if st := l.Stats(); st.NextSeq != uint64(len(m.data))+1 {
				t.Fatalf("NextSeq %d, want %d", st.NextSeq, len(m.data)+1)
			}
			mustClose(t, l)
		})
	}
}

// TestRoundTripEdges covers the empty record, the empty batch, a batch
// larger than a segment and a record larger than a segment.
func TestRoundTripEdges(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()
	add := func(first uint64, recs ...[]byte) {
		for i, d := range recs {
			m.data[first+uint64(i)] = d
		}
	}
	if q, err := l.Append(nil); err != nil || q != 1 {
		t.Fatalf("Append(nil) = %d, %v", q, err)
	}
	add(1, []byte{})
	if q, err := l.AppendBatch(nil); err != nil || q != 2 {
		t.Fatalf("AppendBatch(nil) = %d, %v; want 2, nil", q, err)
	}
	if st := l.Stats(); st.NextSeq != 2 || st.Pending != 1 {
		t.Fatalf("an empty batch changed the log: %+v", st)
	}
	r := rand.New(rand.NewPCG(2, 2))
	big := [][]byte{randRecord(r, 40<<10), randRecord(r, 40<<10), randRecord(r, 10)}
	q, err := l.AppendBatch(big)
	if err != nil || q != 2 {
		t.Fatalf("AppendBatch(big) = %d, %v", q, err)
	}
	add(2, big...)
	huge := randRecord(r, 300<<10)
	if q, err = l.Append(huge); err != nil || q != 5 {
		t.Fatalf("Append(huge) = %d, %v", q, err)
	}
	add(5, huge)
	if q, err = l.Append([]byte("after")); err != nil || q != 6 {
		t.Fatalf("Append = %d, %v", q, err)
	}
	add(6, []byte("after"))
	m.check(t, l)
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}

// TestCallerBuffers checks that the log keeps no reference to the caller's
// buffers and that Get returns a fresh copy, with and without compression.
func TestCallerBuffers(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(fmt.Sprintf("compression=%d", comp), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg), WithCompression(comp))
			defer l.Close()
			r := rand.New(rand.NewPCG(3, uint64(comp)))
			// Incompressible records (stored as they are), each followed
			// by compressible ones that reuse the log's buffers.
			var kept [][]byte
			var copies [][]byte
			for range 200 {
				d := randRecord(r, 64+r.IntN(3000))
				for d[0] == 'r' { // randRecord's compressible form starts "record-"
					d = randRecord(r, 64+r.IntN(3000))
				}
				if _, err := l.Append(d); err != nil {
					t.Fatal(err)
				}
				kept = append(kept, d)
				copies = append(copies, bytes.Clone(d))
				if _, err := l.AppendBatch([][]byte{bytes.Repeat([]byte("z"), 5000), bytes.Repeat([]byte("y"), 3000)}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range kept {
				if !bytes.Equal(kept[i], copies[i]) {
					t.Fatalf("the log wrote into the caller's buffer of record %d", i)
				}
			}
			d := []byte("mutable")
			q, err := l.Append(d)
			if err != nil {
				t.Fatal(err)
			}
			copy(d, "XXXXXXX")
			g, err := l.Get(q)
			if err != nil || string(g) != "mutable" {
				t.Fatalf("Get after the caller changed its buffer: %q, %v", g, err)
			}
			copy(g, "YYYYYYY")
			if g2, err := l.Get(q); err != nil || string(g2) != "mutable" {
				t.Fatalf("Get after the caller changed a Get result: %q, %v", g2, err)
			}
			if _, err := l.Get(q + 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(next seq): %v, want ErrNotFound", err)
			}
		})
	}
}

// TestWriteThroughGathers: written-through appends frame small records
// into a buffer and write large ones from the caller's memory, between
// their headers and padding, in one gathering write (more buffers than
// one pwritev takes, too). Every padding length, a mix of small and large
// records in one batch, compressed and encrypted records, each read back
// while open and after a reopen, which verifies every checksum.
func TestWriteThroughGathers(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"plain", nil},
		{"zstd", []Option{WithCompression(CompressionZstd)}},
		{"encrypted", []Option{WithEncryption(testKey)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := &vfs.Faulty{FS: vfs.OS}
			dir := t.TempDir()
			opts := append([]Option{withFS(fsys), WithSegmentSize(16 << 20)}, tc.opts...)
			l := mustOpen(t, dir, opts...)
			m := newModel()
			r := rand.New(rand.NewPCG(7, 7))
			appendBatch := func(batch [][]byte) {
				t.Helper()
				q, err := l.AppendBatch(batch)
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range batch {
					m.data[q+uint64(i)] = d
				}
			}
			for pad := range segment.Align {
				appendBatch([][]byte{randRecord(r, gatherMin+pad)})
			}
			var mixed [][]byte
			for i := range 40 {
				mixed = append(mixed, randRecord(r, []int{0, 5, 1000, gatherMin - 1, gatherMin, 3 * gatherMin / 2, 100 << 10}[i%7]))
			}
			appendBatch(mixed)
			var many [][]byte // three buffers each: more than IOV_MAX
			for range 600 {
				many = append(many, randRecord(r, gatherMin+1+r.IntN(7)))
			}
			appendBatch(many)
			appendBatch([][]byte{randRecord(r, 1<<20)})
			if tc.name == "plain" && fsys.MostBuffers < 1200 {
				t.Fatalf("the largest gathering write had %d buffers, want 3 per large record", fsys.MostBuffers)
			}
			// Under SyncNever the zeros up to the next folioAlign
			// boundary are one more buffer (padLocked).
			if tc.name == "encrypted" && fsys.MostBuffers != 2 {
				t.Fatalf("an encrypted append was written from %d buffers, want 2 (framed whole, and the zeros after it)", fsys.MostBuffers)
			}
			m.checkReopened(t, l, dir, opts...)
		})
	}
}

// TestWriteThroughPadsToFolio: where syncs are rare, a written-through
// append is extended with zeros to the next folioAlign boundary (or the
// segment's end), so that the kernel builds the page cache of the next
// append from large folios; the zeros stay zeros until the next append
// overwrites them, and every record reads back, while open and after a
// reopen. Where syncs are frequent, nothing is written past the frames.
func TestWriteThroughPadsToFolio(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []Option
		padded bool
	}{
		{"never", nil, true},
		{"encrypted", []Option{WithEncryption(testKey)}, true},
		{"always", []Option{WithSync(SyncAlways)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := &vfs.Faulty{FS: vfs.OS}
			dir := t.TempDir()
			// Segments of 4 MiB: the gaps between the rotations' sync
			// rounds are about that (a round may start a few batches
			// late), a sixteenth of which is far more than folioAlign.
			const size = 4 << 20
			opts := append([]Option{withFS(fsys), WithSegmentSize(size)}, tc.opts...)
			l := mustOpen(t, dir, opts...)
			m := newModel()
			r := rand.New(rand.NewPCG(9, 9))
			padded, ends := 0, 0
			// Batches of 100 records of about 1 KiB: 40, and more until
			// one ends within folioAlign of its segment's end.
			n := 0
			for i := 0; i < 40 || tc.padded && ends == 0 && i < 400; i++ {
				n++
				batch := make([][]byte, 100)
				for j := range batch {
					batch[j] = randRecord(r, 1000+r.IntN(48)+i)
				}
				q, err := l.AppendBatch(batch)
				if err != nil {
					t.Fatal(err)
				}
				for j, d := range batch {
					m.data[q+uint64(j)] = d
				}
				l.mu.Lock()
				a := l.active
				tail, data := a.tail, a.file.Bytes()
				end := fsys.LastWriteVEnd()
				// Padded or not: a sync round the compactor began just
				// after Open may have seen a short gap.
				want := min((tail+folioAlign-1)&^(folioAlign-1), a.file.Size())
				if end != tail && (end != want || !tc.padded) {
					l.mu.Unlock()
					t.Fatalf("batch %d: the write ended at %d, want %d (tail %d, padded %v)", i, end, want, tail, tc.padded)
				}
				if end > tail {
					padded++
				}
				if end == a.file.Size() {
					ends++
				}
				// The next append starts at the tail: what follows it
				// until then is zeros.
				if k := slices.IndexFunc(data[tail:min(tail+2*folioAlign, a.file.Size())], func(b byte) bool { return b != 0 }); k >= 0 {
					l.mu.Unlock()
					t.Fatalf("batch %d: byte %d after the tail %d is %#x, want 0", i, k, tail, data[tail+int64(k)])
				}
				l.mu.Unlock()
			}
			t.Logf("%d batches, %d padded, %d to a segment's end", n, padded, ends)
			if tc.padded && (padded < n*3/4 || ends == 0) {
				t.Fatalf("%d of %d writes padded, %d to a segment's end: want most, and one at least", padded, n, ends)
			}
			if !tc.padded && padded != 0 {
				t.Fatalf("%d writes padded where syncs are frequent", padded)
			}
			m.checkReopened(t, l, dir, opts...)
		})
	}
}

// TestSyncedBatchesWriteThrough: where syncs are frequent (the preparer
// faults no page ahead for writing), an append of a page or more is
// written through the file (pwritev), not stored into the mapping, whose
// pages would each take a fault (syncedWriteThrough); where they are rare
// (tens of MiB appended without one), or the append is smaller than a
// page, it goes into the mapping. Every record reads back, also after a
// reopen.
func TestSyncedBatchesWriteThrough(t *testing.T) {
	const batches = 200
	for _, tc := range []struct {
		name      string
		policy    SyncPolicy
		sync      bool // an explicit Sync after each append
		batch     int  // records of 100 B an append
		warm      int  // MiB appended without a sync before the count
		min, most int  // of the appends, how many are written through
	}{
		{"always", SyncAlways, false, 100, 0, batches, batches},
		// SyncNever starts as if syncs were rare: once a few Syncs
		// have shown they are not, the batches are written through.
		{"never+sync", SyncNever, true, 100, 0, batches - 10, batches},
		// 40 MiB without a sync: syncs are rare, pages are faulted
		// ahead for writing, and the batches go into the mapping.
		{"never", SyncNever, false, 100, 40, 0, 0},
		{"always,small", SyncAlways, false, 1, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := &vfs.Faulty{FS: vfs.OS}
			dir := t.TempDir()
			opts := []Option{withFS(fsys), WithSync(tc.policy)}
			l := mustOpen(t, dir, opts...)
			m := newModel()
			r := rand.New(rand.NewPCG(8, 8))
			if tc.warm > 0 {
				warm := make([][]byte, 1000)
				for i := range warm {
					warm[i] = randRecord(r, 1<<10)
				}
				for range tc.warm {
					q, err := l.AppendBatch(warm)
					if err != nil {
						t.Fatal(err)
					}
					for i, d := range warm {
						m.data[q+uint64(i)] = d
					}
				}
			}
			before := fsys.WriteVCount()
			for range batches {
				batch := make([][]byte, tc.batch)
				for i := range batch {
					batch[i] = randRecord(r, 100)
				}
				q, err := l.AppendBatch(batch)
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range batch {
					m.data[q+uint64(i)] = d
				}
				if tc.sync {
					if err := l.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := fsys.WriteVCount() - before; n < tc.min || n > tc.most {
				t.Fatalf("%d of %d appends written through, want %d to %d", n, batches, tc.min, tc.most)
			}
			m.checkReopened(t, l, dir, opts...)
		})
	}
}
