package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestFlushWaitsForResentRecord: record 1 (partition 0) fails once and is
// resent while record 2
// (partition 1) is in flight: Flush after Write(record 1) must wait for it.
func TestFlushWaitsForResentRecord(t *testing.T) {
	for _, manual := range []bool{false, true} {
		t.Run(fmt.Sprint("manual=", manual), func(t *testing.T) {
			c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
			release := holdProduces(c)
			opts := []Option{WithClient(kgo.ProducerLinger(0)), WithRetryBackoff(500*time.Millisecond, 500*time.Millisecond)}
			if manual {
				opts = append(opts, WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
			}
			p, _ := newTestProducer(t, kfaketest.URL(c, "t"), opts...)
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
			produce := func(part int32, err error) *kfake.FaultHandle {
				return c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{part}, Err: err.(*kerr.Error), Count: -1})
			}
			if err := p.Write(ctx, record(0)); err != nil { // seq 1
				t.Fatal(err)
			}
			flushed := make(chan error, 1)
			go func() { flushed <- p.Flush(ctx) }() // covers seq 1 only
			time.Sleep(50 * time.Millisecond)
			if err := p.Write(ctx, record(1)); err != nil { // seq 2
				t.Fatal(err)
			}
			waitStats(t, ctx, p, "both in flight", func(st Stats) bool { return st.InFlight == 2 })
			stuck1 := produce(1, kerr.NotEnoughReplicas) // record 2 stays in flight
			defer stuck1.Remove()
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0}, Err: kerr.UnknownServerError, Count: 1})
			close(release)
			waitStats(t, ctx, p, "record 1's failure", func(st Stats) bool { return st.Retries == 1 })
			stuck0 := produce(0, kerr.NotEnoughReplicas) // record 1's resend stays in flight
			defer stuck0.Remove()
			select {
			case err := <-flushed:
				t.Fatalf("Flush returned %v before record 1 was confirmed: stats %+v, resolved %d", err, p.Stats(), p.resolved.Load())
			case <-time.After(2 * time.Second):
			}
			stuck0.Remove()
			stuck1.Remove()
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
		})
	}
}
