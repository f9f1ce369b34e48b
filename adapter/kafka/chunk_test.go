package kafka

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
)

// chunkRecord is record i of the chunk tests: key "k<i>", a value of size
// bytes that starts "v<i>" and goes on with bytes drawn from i (so that
// two records' values differ everywhere), on partition i%every == 0 ? 0 : 1
// for kgo.ManualPartitioner.
func chunkRecord(i, size, every int) *kgo.Record {
	v := fmt.Appendf(nil, "v%08d", i)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	for len(v) < size {
		v = append(v, byte(r.Uint32()))
	}
	part := int32(1)
	if i%every == 0 {
		part = 0
	}
	return &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v, Partition: part}
}

// journalBacklog writes n records to a producer whose broker never
// answers and closes it: they wait in the journal at dir, for the next
// producer to read back.
func journalBacklog(t *testing.T, dir string, n int, rec func(int) *kgo.Record) {
	t.Helper()
	p, err := NewProducer("kafka://127.0.0.1:1/t", WithJournal(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range n {
		if err := p.Write(ctx, rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

// checkRecord fails unless r is chunkRecord(i) for the i its value names,
// with an _id, and returns i.
func checkRecord(t *testing.T, r *kgo.Record, size, every int) int {
	t.Helper()
	i := recordIndex(t, r)
	want := chunkRecord(i, size, every)
	if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) {
		t.Fatalf("record %d: key %q, value differs from what was written: %v", i, r.Key, !bytes.Equal(r.Value, want.Value))
	}
	if id := header(r, idHeader); len(id) != idLen {
		t.Fatalf("record %d: _id %x", i, id)
	}
	return i
}

// TestChunkReuse: a backlog read back from the journal goes through the
// sender's chunks, which are reused once their records are confirmed,
// acknowledged and reported: the records land as written, and those the
// delivery callback kept (with their _id header) stay as they were after
// their chunks were reused for later records.
func TestChunkReuse(t *testing.T) {
	t.Parallel()
	const n, size = 6000, 1000
	dir := t.TempDir() + "/journal"
	rec := func(i int) *kgo.Record { return chunkRecord(i, size, 3) }
	journalBacklog(t, dir, n, rec)

	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	var got deliveries
	p, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir), WithOnDelivery(got.add),
		WithMaxInFlight(1000, 1<<20), WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := p.snd
	t.Logf("%d records of %d B read back: %d chunks of %d KiB made, %d reused, %d wanted past the limit",
		n, size, s.chunksMade.Load(), chunkSize>>10, s.chunksReused.Load(), s.chunkMisses.Load())
	if s.chunksReused.Load() == 0 || s.chunksMade.Load()*chunkSize >= n*size {
		t.Fatalf("chunks made %d, reused %d: the backlog was not read through reused chunks", s.chunksMade.Load(), s.chunksReused.Load())
	}
	if got.count() != n {
		t.Fatalf("%d deliveries reported, want %d", got.count(), n)
	}
	seen := make([]bool, n)
	for _, r := range got.recs {
		seen[checkRecord(t, r, size, 3)] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("record %d never reported", i)
		}
	}
	// The kept records' _ids are those the records landed with.
	tl := checkLanded(t, c, n, size, 3)
	for _, r := range got.recs {
		l := tl.byID[hex.EncodeToString(header(r, idHeader))]
		if l == nil || recordIndex(t, l) != recordIndex(t, r) {
			t.Fatalf("record %d kept by the callback: _id %x landed with no record or another", recordIndex(t, r), header(r, idHeader))
		}
	}
}

// TestChunksBounded: records of a partition that keeps failing, one in 25
// of a backlog read back from the journal, stay in flight, each keeping
// its chunk from reuse while the records around it deliver: the sender
// stops taking chunks at its limit and reads the rest as copies of their
// own. Once the partition recovers, every record lands as written.
func TestChunksBounded(t *testing.T) {
	t.Parallel()
	const n, size, every = 8000, 1000, 25
	dir := t.TempDir() + "/journal"
	rec := func(i int) *kgo.Record { return chunkRecord(i, size, every) }
	journalBacklog(t, dir, n, rec)

	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	stuck := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0},
		Err: kerr.NotEnoughReplicas, Count: -1})
	p, err := NewProducer(kfaketest.URL(c, "t"), append(fastRetries(), WithJournal(dir),
		WithMaxInFlight(1000, 1<<20), WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	defer p.Close(ctx)
	removed := false
	defer func() {
		if !removed {
			stuck.Remove() // before Close, which waits for partition 0's records
		}
	}()
	healthy := n - (n+every-1)/every
	st := waitStats(t, ctx, p, "the healthy partition's records", func(st Stats) bool { return st.Delivered == int64(healthy) })
	s := p.snd
	limit := s.chunkLimit()
	t.Logf("stuck partition hit %d times; stats %+v; chunks made %d, reused %d, wanted past the limit of %d: %d",
		stuck.Hits(), st, s.chunksMade.Load(), s.chunksReused.Load(), limit, s.chunkMisses.Load())
	if stuck.Hits() == 0 || st.InFlight == 0 {
		t.Fatalf("partition 0's records are not stuck: fault hit %d times, stats %+v", stuck.Hits(), st)
	}
	if s.chunkMisses.Load() == 0 {
		t.Fatal("the sender never reached its chunk limit")
	}
	if live := s.chunks.Load(); live > limit {
		t.Fatalf("%d chunks alive, limit %d", live, limit)
	}
	stuck.Remove()
	removed = true
	waitStats(t, ctx, p, "every record", func(st Stats) bool { return st.Delivered == n })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkLanded(t, c, n, size, every)
}

// checkLanded fails unless topic t of c holds chunkRecord(i) once for
// every i below n, and returns the records by _id.
func checkLanded(t *testing.T, c *kfake.Cluster, n, size, every int) tally {
	t.Helper()
	landed := readTopic(t, c.ListenAddrs(), "t")
	total := 0
	for _, rs := range landed {
		for _, r := range rs {
			checkRecord(t, r, size, every)
			total++
		}
	}
	tl := countIDs(t, landed)
	if total != n || len(tl.copies) != n {
		t.Fatalf("%d records landed, %d distinct; want %d", total, len(tl.copies), n)
	}
	return tl
}
