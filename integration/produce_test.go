package integration

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
)

// TestIntegrationProduce writes records through the robust producer to a
// topic with three partitions, flushes, and finds every one on the broker,
// in write order per partition, and none twice.
func TestIntegrationProduce(t *testing.T) {
	b := brokers(t)
	topic := topicName(t)
	createTopic(t, b, topic, 3)
	logger, _ := newLogger(t)

	var delivered int64
	p := newProducer(t, "kafka://"+b+"/"+topic,
		kafka.WithJournal(t.TempDir()),
		kafka.WithLogger(logger),
		kafka.WithOnDelivery(func(r *kgo.Record) {
			delivered++ // called from the sender goroutine, one at a time
		}),
	)
	ctx := context.Background()
	const n = 5000
	keys := writeKeys(t, func(r *kgo.Record) error { return p.Write(ctx, r) }, "k", n, nil, 0)

	st := drain(t, ctx, p, "")
	if st.Delivered != int64(len(keys)) || delivered != int64(len(keys)) {
		t.Errorf("Stats().Delivered = %d and the delivery callback ran %d times, want %d each",
			st.Delivered, delivered, len(keys))
	}
	if st.DeadLettered != 0 || st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("after Flush: %+v, want nothing dead-lettered, queued or in flight", st)
	}
	// No fault was injected: a duplicate means the producer sent a record
	// twice on its own.
	if v := verify(t, b, topic, keys, verifyOptions{}); v.duplicates > 0 {
		t.Errorf("%d duplicates on the topic, with no fault injected", v.duplicates)
	}
}
