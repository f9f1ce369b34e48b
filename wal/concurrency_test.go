package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// shared is the model of a log used by many goroutines.
type shared struct {
	mu     sync.Mutex
	data   map[uint64][]byte
	acking map[uint64]bool // Ack called
	acked  map[uint64]bool // Ack returned
}

// TestConcurrency runs appenders, ackers, readers, Pending iterators and
// Stats callers at once (run it with -race), then checks that the log
// holds exactly what the model says, before and after a reopen.
func TestConcurrency(t *testing.T) {
	for _, c := range []struct {
		name      string
		policy    SyncPolicy
		comp      Compression
		appenders int
		ops       int
	}{
		{"sync=never", SyncNever, CompressionZstd, 4, 300},
		{"sync=every", SyncEvery(1), CompressionNone, 4, 200},
		{"sync=always", SyncAlways, CompressionNone, 8, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := &vfs.Faulty{FS: vfs.OS}
			dir := t.TempDir()
			l := mustOpen(t, dir, withFS(fsys), WithSync(c.policy), WithSegmentSize(smallSeg), WithCompression(c.comp))
			defer func() { l.Close() }() // also on an early return
			checkpointWritten(t, l)
			sh := &shared{data: map[uint64][]byte{}, acking: map[uint64]bool{}, acked: map[uint64]bool{}}
			seqs := make(chan uint64, 1<<16)

			var writers, others sync.WaitGroup
			stop := make(chan struct{})
			start := make(chan struct{})
			for w := range c.appenders {
				writers.Go(func() {
					// Records made up front: the appenders spend their time
					// appending, as group commit needs to be seen.
					r := rand.New(rand.NewPCG(18, uint64(w)))
					batches := make([][][]byte, c.ops)
					for k := range batches {
						n := 1
						if r.IntN(3) == 0 {
							n = 2 + r.IntN(3)
						}
						batches[k] = make([][]byte, n)
						for i := range batches[k] {
							batches[k][i] = randRecord(r, r.IntN(4<<10))
						}
					}
					<-start
					for _, batch := range batches {
						n := len(batch)
						var first uint64
						var err error
						if n == 1 {
							first, err = l.Append(batch[0])
						} else {
							first, err = l.AppendBatch(batch)
						}
						if err != nil {
							t.Errorf("append: %v", err)
							return
						}
						sh.mu.Lock()
						for i, d := range batch {
							sh.data[first+uint64(i)] = d
						}
						sh.mu.Unlock()
						for i := range batch {
							seqs <- first + uint64(i)
						}
					}
				})
			}
			for a := range 2 {
				others.Go(func() {
					r := rand.New(rand.NewPCG(19, uint64(a)))
					for q := range seqs {
						if r.IntN(2) == 0 {
							continue
						}
						sh.mu.Lock()
						sh.acking[q] = true
						sh.mu.Unlock()
						if err := l.Ack(q); err != nil {
							t.Errorf("Ack(%d): %v", q, err)
							return
						}
						sh.mu.Lock()
						sh.acked[q] = true
						sh.mu.Unlock()
					}
				})
			}
			for g := range 2 {
				others.Go(func() {
					r := rand.New(rand.NewPCG(20, uint64(g)))
					for {
						select {
						case <-stop:
							return
						default:
						}
						next := l.Stats().NextSeq
						if next <= 1 {
							continue
						}
						q := 1 + r.Uint64N(next-1)
						got, err := l.Get(q)
						sh.mu.Lock()
						want, known := sh.data[q]
						acking := sh.acking[q]
						sh.mu.Unlock()
						switch {
						case errors.Is(err, ErrNotFound):
							if known && !acking {
								t.Errorf("Get(%d): ErrNotFound for a record not acknowledged", q)
								return
							}
						case err != nil:
							t.Errorf("Get(%d): %v", q, err)
							return
						case known && !bytes.Equal(got, want):
							t.Errorf("Get(%d): wrong data", q)
							return
						}
					}
				})
			}
			others.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					var prev uint64
					for rec, err := range l.Pending() {
						if err != nil {
							t.Errorf("Pending: %v", err)
							return
						}
						if rec.Seq <= prev {
							t.Errorf("Pending: seq %d after %d", rec.Seq, prev)
							return
						}
						prev = rec.Seq
						sh.mu.Lock()
						want, known := sh.data[rec.Seq]
						sh.mu.Unlock()
						if known && !bytes.Equal(rec.Data, want) {
							t.Errorf("Pending: seq %d has wrong data", rec.Seq)
							return
						}
					}
					_ = l.Stats()
				}
			})
			close(start)
			writers.Wait()
			close(seqs)
			close(stop)
			others.Wait()
			if t.Failed() {
				return
			}
			m := &model{data: sh.data, acked: sh.acked}
			m.check(t, l)
			mustClose(t, l)
			l = mustOpen(t, dir, WithSegmentSize(smallSeg))
			m.check(t, l)
			mustClose(t, l)
		})
	}
}

// TestGroupCommit: under SyncAlways concurrent appenders share syncs, so
// the file system sees fewer syncs than there were appends (each shared
// commit syncs the segment and the superblock).
func TestGroupCommit(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSync(SyncAlways), WithSegmentSize(smallSeg))
	const writers, each = 16, 30
	recs := make([][][]byte, writers)
	r := rand.New(rand.NewPCG(21, 21))
	for w := range recs {
		for range each {
			recs[w] = append(recs[w], randRecord(r, 100+r.IntN(900)))
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	seqs := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			<-start
			for _, d := range recs[w] {
				q, err := l.Append(d)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				seqs[w] = append(seqs[w], q)
			}
		})
	}
	close(start)
	wg.Wait()
	mustClose(t, l)
	// Read after Close, which joined every goroutine that syncs; the
	// count includes Open's and Close's few.
	t.Logf("%d concurrent appends took %d syncs", writers*each, fsys.Syncs)
	if fsys.Syncs >= writers*each {
		t.Errorf("%d syncs for %d concurrent appends: no group commit", fsys.Syncs, writers*each)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer l.Close()
	for w := range writers {
		for i, q := range seqs[w] {
			if g, err := l.Get(q); err != nil || !bytes.Equal(g, recs[w][i]) {
				t.Fatalf("Get(%d): %v", q, err)
			}
		}
	}
}
