package kafka

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

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
