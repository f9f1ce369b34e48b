package kafka

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestFlushWaitsForResentRecord: record 1 (partition 0) fails once and is
// resent while record 2 (partition 1) is in flight. Flush waits for the
// resolved watermark to pass the last seq written before it; a Flush after
// Write(record 1) must not return before record 1 is confirmed, so the
// watermark must still be at record 1 when its confirmation is reported
// (the sender publishes the watermark after the OnDelivery calls, on the
// same goroutine, so this does not depend on timing).
func TestFlushWaitsForResentRecord(t *testing.T) {
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
			release := holdProduces(c)
			var watermark atomic.Int64 // p.resolved when record 1's confirmation was reported
			watermark.Store(-1)
			var p *Producer
			opts := []Option{WithClient(kgo.ProducerLinger(0)),
				WithOnDelivery(func(r *kgo.Record) {
					if r.Partition == 0 {
						watermark.Store(int64(p.resolved.Load()))
					}
				})}
			if manual {
				opts = append(opts, WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
			}
			p, _ = newTestProducer(t, kfaketest.URL(c, "t"), opts...)
			ctx := ctxTimeout(t, 30*time.Second)
			hash := kgo.StickyKeyPartitioner(nil).ForTopic("t")
			record := func(part int32) *kgo.Record {
				for i := 0; ; i++ {
					r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v"), Partition: part}
					if manual || int32(hash.Partition(r, 2)) == part {
						return r
					}
				}
			}
			if err := p.Write(ctx, record(0)); err != nil { // seq 1
				t.Fatal(err)
			}
			if err := p.Write(ctx, record(1)); err != nil { // seq 2
				t.Fatal(err)
			}
			waitStats(t, ctx, p, "both in flight", func(st Stats) bool { return st.InFlight == 2 })
			// Record 2 stays in flight (the client retries it) until
			// record 1, failed once, is resent and confirmed.
			stuck1 := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{1}, Err: kerr.NotEnoughReplicas, Count: -1})
			defer stuck1.Remove()
			failed0 := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0}, Err: kerr.UnknownServerError, Count: 1})
			defer failed0.Remove()
			close(release)
			waitStats(t, ctx, p, "record 1's confirmation", func(Stats) bool { return watermark.Load() >= 0 })
			st := p.Stats()
			if failed0.Hits() != 1 || st.Retries != 1 || st.InFlight != 1 {
				t.Fatalf("record 1 failed %d times, stats %+v: want it failed once and resent, record 2 still in flight",
					failed0.Hits(), st)
			}
			if w := watermark.Load(); w > 1 {
				t.Fatalf("resolved watermark %d when record 1 (seq 1) was confirmed: a Flush after its Write returned before", w)
			}
			stuck1.Remove()
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
