package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readCommitted consumes every committed record of topic, per partition in
// offset order, as a read_committed consumer sees them.
func readCommitted(t testing.TB, addrs []string, topic string) map[int32][]*kgo.Record {
	t.Helper()
	return readTopicWith(t, addrs, topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
}

func TestExactlyOnceDelivers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, kfake.SeedTopics(3, "eos"))
	var got deliveries
	p, dir := newTestProducer(t, clusterURL(c, "eos"), WithExactlyOnce(""), WithOnDelivery(got.add))
	ctx := ctxTimeout(t, 30*time.Second)
	const n = 2000
	writeRecords(t, ctx, p, n, 7, 100)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Delivered != n || got.count() != n || st.InFlight != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v, %d deliveries; want %d delivered", st, got.count(), n)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "eos"))
	if len(tl.copies) != n || tl.duplicates() != 0 {
		t.Fatalf("read_committed: %d distinct, %d duplicates; want %d, 0", len(tl.copies), tl.duplicates(), n)
	}
	_ = dir
}
