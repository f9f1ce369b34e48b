package wal

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// logImage is a log directory's bytes plus the records written to it.
type logImage struct {
	snap snapshot
	m    *model
}

// buildImage writes a fresh log with fn. With killed it takes the image
// while the log is open, as a killed process leaves it (nothing synced
// after fn's last Sync); otherwise after Close, which syncs everything.
func buildImage(t testing.TB, killed bool, fn func(l *Log, m *model)) logImage {
	t.Helper()
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	m := newModel()
	fn(l, m)
	var s snapshot
	if killed {
		s = readDir(t, dir)
		mustClose(t, l)
	} else {
		mustClose(t, l)
		s = readDir(t, dir)
	}
	return logImage{snap: s, m: m}
}

// appendSmall appends n records of 100..3000 bytes.
func appendSmall(t testing.TB, l *Log, m *model, r *rand.Rand, n int) {
	t.Helper()
	for range n {
		d := randRecord(r, 100+r.IntN(2900))
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
}

// lastSeg returns the name and bytes of the image's last segment.
func (im logImage) lastSeg() (string, []byte) {
	names := im.snap.segNames()
	n := names[len(names)-1]
	return n, im.snap[n]
}

// without returns a copy of the model without records from seq on.
func (m *model) without(from uint64) *model {
	c := newModel()
	for q, d := range m.data {
		if q < from {
			c.data[q] = d
		}
	}
	for q := range m.acked {
		if q < from {
			c.acked[q] = true
		}
	}
	return c
}

// withoutRange returns a copy of the model without the records of
// [from, to).
func (m *model) withoutRange(from, to uint64) *model {
	c := m.without(from)
	for q, d := range m.data {
		if q >= to {
			c.data[q] = d
		}
	}
	for q := range m.acked {
		if q >= to {
			c.acked[q] = true
		}
	}
	return c
}

// next is the seq the next Append gets: one past the highest recorded.
func (m *model) next() uint64 {
	n := uint64(1)
	for q := range m.data {
		n = max(n, q+1)
	}
	return n
}

// TestTornTail damages the end of a log beyond its durable high-water
// mark, as a process killed in the middle of an append leaves it: Open
// cuts the torn tail, counts it, keeps every record before it, and new
// appends continue with the next seq.
func TestTornTail(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	var batchFirst uint64
	im := buildImage(t, true, func(l *Log, m *model) {
		appendSmall(t, l, m, r, 90)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		appendSmall(t, l, m, r, 4)
	})
	imBatch := buildImage(t, true, func(l *Log, m *model) {
		appendSmall(t, l, m, r, 90)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		appendSmall(t, l, m, r, 2)
		batch := [][]byte{randRecord(r, 300), randRecord(r, 500), randRecord(r, 700)}
		q, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		batchFirst = q
		for i, d := range batch {
			m.data[q+uint64(i)] = d
		}
	})
	if n := len(im.snap.segNames()); n < 3 {
		t.Fatalf("the image has %d segments, want several", n)
	}

	cases := []struct {
		name   string
		im     logImage
		damage func(b []byte, last segment.Frame, end int64)
		lost   int // records at the end that the damage takes
	}{
		{"zeroed-checksum", im, func(b []byte, fr segment.Frame, _ int64) {
			clear(b[fr.Offset : fr.Offset+8])
		}, 1},
		{"zeroed-second-half", im, func(b []byte, fr segment.Frame, end int64) {
			clear(b[fr.Offset+(end-fr.Offset)/2 : end])
		}, 1},
		{"zeroed-length", im, func(b []byte, fr segment.Frame, _ int64) {
			clear(b[fr.Offset+8 : fr.Offset+12])
		}, 1},
		{"random-bytes", im, func(b []byte, fr segment.Frame, end int64) {
			for i := fr.Offset + 16; i < end; i++ {
				b[i] = byte(r.Uint32())
			}
		}, 1},
		{"random-bytes-past-end", im, func(b []byte, fr segment.Frame, end int64) {
			for i := fr.Offset + 40; i < end+3000; i++ {
				b[i] = byte(r.Uint32())
			}
		}, 1},
		{"garbage-after-end", im, func(b []byte, _ segment.Frame, end int64) {
			for i := end + 200; i < end+264; i++ {
				b[i] = byte(r.Uint32()) | 1
			}
		}, 0},
		{"garbage-at-end-of-file", im, func(b []byte, _ segment.Frame, _ int64) {
			b[len(b)-1] = 0xff
		}, 0},
		{"unfinished-batch", imBatch, func(b []byte, fr segment.Frame, end int64) {
			if !fr.Commits() {
				t.Fatal("the last frame is not a batch's commit frame")
			}
			clear(b[fr.Offset:end])
		}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.im.snap.clone()
			// The compactor syncs the data before each checkpoint it
			// writes after a rotation, which may cover the last appends:
			// take the metadata to be what a power cut left of it (none),
			// so that the tail is beyond the durable high-water mark
			// whatever the compactor did.
			delete(s, index.SuperblockName)
			delete(s, index.CheckpointName)
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			last := frs[len(frs)-1]
			end := last.End()
			c.damage(s[name], last, end)
			dir := s.write(t, filepath.Join(t.TempDir(), "log"))

			l := mustOpen(t, dir, WithSegmentSize(smallSeg))
			st := l.Stats()
			if st.TornBytes <= 0 {
				t.Fatalf("TornBytes %d after a torn tail", st.TornBytes)
			}
			next := uint64(len(c.im.m.data)) + 1 - uint64(c.lost)
			m := c.im.m.without(next)
			if c.name == "unfinished-batch" && next != batchFirst {
				t.Fatalf("the batch starts at %d, expected the cut at %d", batchFirst, next)
			}
			m.check(t, l)
			if st.NextSeq != next {
				t.Fatalf("NextSeq %d, want %d", st.NextSeq, next)
			}
			d := []byte("after the torn tail")
			q, err := l.Append(d)
			if err != nil || q != next {
				t.Fatalf("Append = %d, %v; want %d", q, err, next)
			}
			m.data[q] = d
			m.check(t, l)
			mustClose(t, l)

			l = mustOpen(t, dir, WithSegmentSize(smallSeg))
			if st := l.Stats(); st.TornBytes != 0 {
				t.Fatalf("TornBytes %d on the reopen after the cut", st.TornBytes)
			}
			m.check(t, l)
			mustClose(t, l)
		})
	}
}
