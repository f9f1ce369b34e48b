package kafka

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/wal"
)

// TestFlushCoversOwnWrite has many goroutines each Write a record and then
// Flush, under wal.SyncAlways (whose group commit returns appenders in any
// order): when Flush returns, the caller's own record must have been
// delivered, even while an earlier seq's Write is still in progress.
func TestFlushCoversOwnWrite(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kfake.SeedTopics(4, "t"))
	var mu sync.Mutex
	delivered := map[uint64]bool{}
	p, _ := newTestProducer(t, clusterURL(c, "t"), WithWAL(wal.WithSync(wal.SyncAlways)),
		WithClient(kgo.ProducerLinger(0)),
		WithOnDelivery(func(r *kgo.Record) {
			mu.Lock()
			delivered[binary.BigEndian.Uint64(header(r, idHeader))] = true
			mu.Unlock()
		}))
	ctx := ctxTimeout(t, 120*time.Second)
	const writers = 32
	var pairs, early atomic.Int64
	var next atomic.Uint64
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				var id [idLen]byte
				k := next.Add(1)
				binary.BigEndian.PutUint64(id[:], k)
				r := &kgo.Record{Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: idHeader, Value: id[:]}}}
				if err := p.Write(ctx, r); err != nil {
					t.Error(err)
					return
				}
				if err := p.Flush(ctx); err != nil {
					t.Error(err)
					return
				}
				pairs.Add(1)
				mu.Lock()
				if !delivered[k] {
					early.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d Write-then-Flush pairs, %d Flush returned before its own Write was delivered", pairs.Load(), early.Load())
	if pairs.Load() < writers {
		t.Fatalf("only %d pairs ran", pairs.Load())
	}
	if early.Load() != 0 {
		t.Fatalf("%d of %d Flush calls returned before the caller's own earlier Write was confirmed", early.Load(), pairs.Load())
	}
}

// heapAlloc returns the live heap after a collection.
func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// waitStats polls p.Stats until ok accepts them or ctx ends.
func waitStats(t *testing.T, ctx context.Context, p *Producer, what string, ok func(Stats) bool) Stats {
	t.Helper()
	for {
		st := p.Stats()
		if ok(st) {
			return st
		}
		if ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v; stats %+v", what, ctx.Err(), st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStuckRecordBoundedMemory keeps one record stuck on a partition whose
// leader keeps answering a retriable error, while many records flow to
// another partition: memory stays bounded by the in-flight window, not by
// the history delivered behind the stuck record.
func TestStuckRecordBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 60 MB")
	}
	c := newCluster(t, kfake.SeedTopics(2, "t"))
	stuck := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0},
		Err: kerr.NotEnoughReplicas, Count: -1})
	defer stuck.Remove()
	p, _ := newTestProducer(t, clusterURL(c, "t"), WithMaxInFlight(1000, 1<<20),
		WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
	ctx := ctxTimeout(t, 120*time.Second)
	if err := p.Write(ctx, &kgo.Record{Partition: 0, Value: []byte("stuck")}); err != nil {
		t.Fatal(err)
	}
	const warm, n, size = 2000, 60_000, 1000
	value := make([]byte, size)
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if err := p.Write(ctx, &kgo.Record{Partition: 1, Value: value}); err != nil {
				t.Fatal(err)
			}
		}
		waitStats(t, ctx, p, "deliveries", func(st Stats) bool { return st.Delivered == int64(to) })
	}
	write(0, warm)
	before := heapAlloc()
	write(warm, n)
	grown := heapAlloc() - before
	st := p.Stats()
	t.Logf("%d records of %d B delivered behind a stuck one (fault hit %d times): heap grew by %.1f MB; stats %+v",
		n, size, stuck.Hits(), float64(grown)/(1<<20), st)
	if stuck.Hits() == 0 || st.InFlight != 1 {
		t.Fatalf("the record on partition 0 is not stuck: fault hit %d times, stats %+v", stuck.Hits(), st)
	}
	if grown > 20<<20 {
		t.Fatalf("heap grew by %d MB for %d MB delivered behind a stuck record", grown>>20, n*size>>20)
	}
}
