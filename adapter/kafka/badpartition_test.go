package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestMissingPartitionTriesPerRecord writes, with kgo.ManualPartitioner,
// several records for a partition that is created after the client first
// failed them. Each record is tried badPartitionTries times (the client's
// metadata refreshed between tries) before it is dead-lettered, however
// many records of that partition fail with it: here the partition exists
// by the second try, so every record is delivered, none dead-lettered.
func TestMissingPartitionTriesPerRecord(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	// Tries a fixed 300 ms apart: the partition exists well before the
	// second try.
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithRetryBackoff(300*time.Millisecond, 300*time.Millisecond),
		WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 4
	for i := range n {
		r := testRecord(i, 1, 0)
		r.Partition = 2
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	first := waitStats(t, ctx, p, "the first failure", func(st Stats) bool { return st.Retries+st.DeadLettered > 0 })
	createPartitions(t, c, "t", 3)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	t.Logf("stats at the first failure %+v, after Flush %+v", first, st)
	if st.Retries == 0 {
		t.Fatalf("no record failed for the missing partition: %+v", st)
	}
	if st.DeadLettered != 0 || st.Delivered != n {
		t.Fatalf("stats %+v: want %d delivered to the partition created after their first try, none dead-lettered", st, n)
	}
	got := readTopic(t, c.ListenAddrs(), "t")
	if tl := countIDs(t, got); len(got[2]) < n || len(tl.copies) != n {
		t.Fatalf("partition 2 holds %d records (%d distinct), want %d", len(got[2]), len(tl.copies), n)
	}
	checkOrder(t, got)
}
