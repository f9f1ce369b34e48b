package wal

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// segRanges returns the seq ranges [first, next) of the log's segments.
func segRanges(l *Log) [][2]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rs [][2]uint64
	for i, s := range l.segs {
		end := l.nextSeq
		if i+1 < len(l.segs) {
			end = l.segs[i+1].firstSeq
		}
		rs = append(rs, [2]uint64{s.firstSeq, end})
	}
	return rs
}

// liveFrames is the size of the frames of the model's pending records
// (stored uncompressed).
func (m *model) liveFrames() int64 {
	var n int64
	for _, q := range m.pending() {
		n += int64(segment.FrameSize(len(m.data[q])))
	}
	return n
}

func metaBytes(dir string) int64 {
	var n int64
	for _, name := range []string{index.SuperblockName, index.CheckpointName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// diskBytes is what the log's files occupy, measured independently of
// Stats.
func diskBytes(t testing.TB, dir string) int64 {
	var n int64
	for _, b := range readDir(t, dir) {
		n += int64(len(b))
	}
	return n
}

// TestCompactionBound writes many records into 64 KiB segments,
// acknowledges them in adversarial orders and checks that, once the
// compactor has run, the log occupies at most twice its live frames plus
// two segments (the active one and the one prepared for the next rotation)
// and its metadata, and that every pending record reads back intact.
func TestCompactionBound(t *testing.T) {
	orders := []struct {
		name string
		pick func(r *rand.Rand, m *model, ranges [][2]uint64) []uint64 // the seqs to acknowledge, in order
	}{
		{"every-other", func(r *rand.Rand, m *model, _ [][2]uint64) []uint64 {
			var s []uint64
			for _, q := range m.pending() {
				if q%2 == 0 {
					s = append(s, q)
				}
			}
			return s
		}},
		{"random", func(r *rand.Rand, m *model, _ [][2]uint64) []uint64 {
			s := m.pending()
			r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
			return s[:len(s)*3/4]
		}},
		{"all-but-one-per-segment", func(r *rand.Rand, m *model, ranges [][2]uint64) []uint64 {
			var s []uint64
			for _, rg := range ranges {
				keep := rg[0] + uint64(r.Int64N(int64(rg[1]-rg[0])))
				for q := rg[0]; q < rg[1]; q++ {
					if q != keep {
						s = append(s, q)
					}
				}
			}
			return s
		}},
		{"reverse", func(r *rand.Rand, m *model, _ [][2]uint64) []uint64 {
			s := m.pending()
			slices.Reverse(s)
			var out []uint64
			for _, q := range s {
				if r.IntN(10) != 0 {
					out = append(out, q)
				}
			}
			return out
		}},
		{"all-but-the-first", func(r *rand.Rand, m *model, _ [][2]uint64) []uint64 {
			return m.pending()[1:]
		}},
	}
	for i, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(i)))
			dir := t.TempDir()
			l := mustOpen(t, dir, WithSegmentSize(smallSeg))
			defer func() { l.Close() }()
			m := newModel()
			for range 600 {
				d := randRecord(r, r.IntN(20<<10))
				q, err := l.Append(d)
				if err != nil {
					t.Fatal(err)
				}
				m.data[q] = d
			}
			seqs := o.pick(r, m, segRanges(l))
			for len(seqs) > 0 {
				n := min(len(seqs), 1+r.IntN(4))
				if err := l.Ack(seqs[:n]...); err != nil {
					t.Fatal(err)
				}
				for _, q := range seqs[:n] {
					m.acked[q] = true
				}
				seqs = seqs[n:]
			}
			bound := func() int64 { return 2*m.liveFrames() + 2*smallSeg + metaBytes(dir) }
			// Stats, and the files as read from the directory, within the
			// bound at one moment: the compactor may start another merge
			// (a temporary file) after Stats says the bound is met, so the
			// files are read again until they agree.
			var st Stats
			var files int64
			eventually(t, "the compactor to bring the log and its files within its bound", func() bool {
				st = l.Stats()
				if st.DiskBytes > bound() {
					return false
				}
				files = diskBytes(t, dir)
				return files <= bound()
			})
			t.Logf("%d segments, %d bytes on disk (%d in the files) for %d live frame bytes (bound %d)", st.Segments, st.DiskBytes, files, m.liveFrames(), bound())
			m.check(t, l)
			mustClose(t, l)

			l = mustOpen(t, dir, WithSegmentSize(smallSeg))
			m.check(t, l)
			eventually(t, "the log to stay within its bound after a reopen", func() bool {
				return l.Stats().DiskBytes <= bound()
			})
			if got := diskBytes(t, dir); got > bound() {
				t.Fatalf("after reopen the files occupy %d bytes; bound %d", got, bound())
			}
			// Stats counts what the files occupy.
			eventually(t, "Stats().DiskBytes to match the files", func() bool {
				return l.Stats().DiskBytes == diskBytes(t, dir)
			})
		})
	}
}

// TestCompactionBoundSmallRecords: with small records and one survivor per
// segment, compacting each segment in place would leave a 4 KiB file per
// ~250-byte record; sparse segments must be merged so that the log stays
// within twice its live frames plus two segments.
func TestCompactionBoundSmallRecords(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 17))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer l.Close()
	m := newModel()
	batch := make([][]byte, 100)
	for range 200 {
		for i := range batch {
			batch[i] = randRecord(r, 100+r.IntN(200))
		}
		q, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range batch {
			m.data[q+uint64(i)] = d
		}
	}
	var acks []uint64
	for _, rg := range segRanges(l) {
		for q := rg[0] + 1; q < rg[1]; q++ {
			acks = append(acks, q)
		}
	}
	if err := l.Ack(acks...); err != nil {
		t.Fatal(err)
	}
	for _, q := range acks {
		m.acked[q] = true
	}
	bound := func() int64 { return 2*m.liveFrames() + 2*smallSeg + metaBytes(dir) }
	var st Stats
	eventually(t, "the compactor to finish", func() bool {
		st = l.Stats()
		return st.DiskBytes <= bound() || st.DiskBytes <= int64(st.Segments)*4096+2*smallSeg+metaBytes(dir)
	})
	if st.DiskBytes > bound() {
		t.Fatalf("%d segments occupy %d bytes for %d bytes of live frames: bound %d", st.Segments, st.DiskBytes, m.liveFrames(), bound())
	}
}
