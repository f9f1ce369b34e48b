package kafka

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestFlushCoversOwnWrite has many goroutines each Write a record and then
// Flush, under wal.SyncAlways (whose group commit returns appenders in any
// order): when Flush returns, the caller's own record must have been
// delivered, even while an earlier seq's Write is still in progress.
func TestFlushCoversOwnWrite(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(4, "t"))
	var mu sync.Mutex
	delivered := map[uint64]bool{}
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithWAL(wal.WithSync(wal.SyncAlways)),
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
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	stuck := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0},
		Err: kerr.NotEnoughReplicas, Count: -1})
	defer stuck.Remove()
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(1000, 1<<20),
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

// TestHealthyPartitionsFlow keeps partition 0 unavailable (its leader
// answers NOT_ENOUGH_REPLICAS for good) and sends a record too large for the
// broker, then many small ones, to the other partitions: the large one is
// dead-lettered and the small ones delivered, in order, while partition 0's
// records stay in flight. Once with kgo.ManualPartitioner (holds per
// partition), once with the default partitioner and keys (holds per topic).
func TestHealthyPartitionsFlow(t *testing.T) {
	t.Parallel()
	for _, manual := range []bool{true, false} {
		t.Run(fmt.Sprintf("manual=%v", manual), func(t *testing.T) {
			t.Parallel()
			testHealthyPartitionsFlow(t, manual)
		})
	}
}

func testHealthyPartitionsFlow(t *testing.T, manual bool) {
	const parts = 3
	c := kfaketest.New(t, kfake.SeedTopics(parts, "t"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	stuck := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{0},
		Err: kerr.NotEnoughReplicas, Count: -1})
	defer stuck.Remove()
	opts := []Option{WithClient(kgo.ProducerLinger(5 * time.Millisecond))}
	if manual {
		opts = append(opts, WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))
	}
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), opts...)
	if p.snd.manual != manual {
		t.Fatalf("manual partitioning detected: %v, want %v", p.snd.manual, manual)
	}
	ctx := ctxTimeout(t, 90*time.Second)
	// partitionOf is where the client sends record r.
	hash := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	partitionOf := func(r *kgo.Record) int32 {
		if manual {
			return r.Partition
		}
		return int32(hash.Partition(r, parts))
	}
	record := func(i int, size int) *kgo.Record {
		r := testRecord(i, 16, size)
		r.Partition = int32(i % parts)
		return r
	}
	first := 0 // on partition 0
	for partitionOf(record(first, 0)) != 0 {
		first++
	}
	if err := p.Write(ctx, record(first, 0)); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, p, "the stuck record", func(Stats) bool { return stuck.Hits() > 0 })
	// Small records before and after a large one, to healthy partitions
	// and to partition 0. The large one's batch neighbours fail with it
	// and are resent alone. The records after it are written once it is
	// dead-lettered: one written between the client failing a
	// partition's records and the sender running its report could land
	// first (see sender.go), which is not what this test is about.
	const n = 1000
	healthy, unavailable := 0, 1
	write := func(from, to int) {
		for i := from; i < to; i++ {
			r := record(i, 20)
			if partitionOf(r) != 0 {
				healthy++
			} else {
				unavailable++
			}
			if err := p.Write(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(first+1, first+1+n/10)
	big := first + 1 + n/10 // on a healthy partition
	for partitionOf(record(big, 0)) == 0 {
		big++
	}
	large := record(big, 0)
	large.Value = append(large.Value, make([]byte, 50000)...)
	rand.Read(large.Value[len(large.Value)-50000:]) // the client compresses batches
	if err := p.Write(ctx, large); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, p, "the large record's dead letter", func(st Stats) bool { return st.DeadLettered == 1 })
	write(big+1, first+1+n)
	st := waitStats(t, ctx, p, "healthy partitions to deliver", func(st Stats) bool {
		return st.Delivered == int64(healthy) && st.DeadLettered == 1
	})
	t.Logf("stuck partition hit %d times; %d records for healthy partitions delivered; stats %+v", stuck.Hits(), healthy, st)
	if st.InFlight+st.Queued != unavailable {
		t.Fatalf("stats %+v: want the %d records of partition 0 still pending", st, unavailable)
	}
	got := readTopic(t, c.ListenAddrs(), "t")
	if len(got[0]) != 0 {
		t.Fatalf("%d records on the unavailable partition", len(got[0]))
	}
	checkOrder(t, got)
	if tl := countIDs(t, got); len(tl.copies) != healthy {
		t.Fatalf("%d distinct records on the healthy partitions, want %d", len(tl.copies), healthy)
	}
}

// TestMissingPartition writes, with kgo.ManualPartitioner, a record for a
// partition the topic does not have among many good ones: the client fails
// it at once, again and again. It is dead-lettered after a few tries (the
// client's metadata refreshed between them), and the good records, on the
// same topic, are all delivered meanwhile. Then a record for a partition
// that is created after the client first failed it: the refreshed metadata
// finds the partition, and the record is delivered there, not
// dead-lettered.
func TestMissingPartition(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	var mu sync.Mutex
	var buried []error
	// Tries a fixed 300 ms apart: the partition created after the late
	// record's first failure exists well before its last try.
	p, dir := newTestProducer(t, kfaketest.URL(c, "t"), WithRetryBackoff(300*time.Millisecond, 300*time.Millisecond),
		WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())),
		WithOnDeadLetter(func(_ *kgo.Record, err error) {
			mu.Lock()
			buried = append(buried, err)
			mu.Unlock()
		}))
	ctx := ctxTimeout(t, 90*time.Second)
	const n = 5000
	for i := range n {
		r := testRecord(i, 4, 20)
		r.Partition = int32(i % 2)
		if i == 10 {
			r.Partition = 7
		}
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	t.Logf("stats %+v", st)
	if st.DeadLettered != 1 || st.Delivered != n-1 {
		t.Fatalf("stats %+v: want 1 dead letter and %d delivered", st, n-1)
	}
	if st.Retries != badPartitionTries-1 {
		t.Fatalf("the record for the missing partition was requeued %d times, want %d", st.Retries, badPartitionTries-1)
	}
	mu.Lock()
	if len(buried) != 1 || classify(buried[0]) != failNoPartition {
		t.Fatalf("dead-letter errors %v: want one the client gives for a missing partition", buried)
	}
	mu.Unlock()

	// Partition 2 appears after the client first failed a record for it.
	late := testRecord(n, 4, 20)
	late.Partition = 2
	if err := p.Write(ctx, late); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, p, "the late record's first failure", func(st Stats) bool { return st.Retries == badPartitionTries })
	createPartitions(t, c, "t", 3)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.DeadLettered != 1 || st.Delivered != n {
		t.Fatalf("stats %+v: the record for partition 2, created after its first try, was not delivered there", st)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := readTopic(t, c.ListenAddrs(), "t")
	checkOrder(t, got)
	if tl := countIDs(t, got); len(tl.copies) != n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n)
	}
	if len(got[2]) != 1 || recordIndex(t, got[2][0]) != n {
		t.Fatalf("partition 2 holds %d records, want the late one", len(got[2]))
	}
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if st := dl.Stats(); st.Pending != 1 {
		t.Fatalf("%d records in the dead-letter log, want 1", st.Pending)
	}
}

// createPartitions raises topic's partition count on c to count.
func createPartitions(t *testing.T, c *kfake.Cluster, topic string, count int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctxTimeout(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("creating partitions of %s: %v", r.Topic, err)
		}
	}
}

// TestAckRetried fails the journal's acknowledgements for a while: the
// records confirmed meanwhile are reported to OnDelivery only once their
// acknowledgement is journaled (each callback checks its record is gone from
// the journal), the failed acknowledgements are retried, and nothing is left
// pending to be resent by the next run.
func TestAckRetried(t *testing.T) {
	t.Parallel()
	t.Run("at least once", func(t *testing.T) { t.Parallel(); testAckRetried(t) })
	t.Run("exactly once", func(t *testing.T) { t.Parallel(); testAckRetried(t, WithExactlyOnce("")) })
}

func testAckRetried(t *testing.T, opts ...Option) {
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	const failures = 5
	var faults atomic.Int64
	var p *Producer
	var mu sync.Mutex
	var early []int
	delivered := 0
	p, _ = newTestProducer(t, kfaketest.URL(c, "t"), append(opts,
		withAckFault(func() error {
			if faults.Add(1) <= failures {
				return errors.New("injected ack failure")
			}
			return nil
		}),
		WithOnDelivery(func(r *kgo.Record) {
			i := recordIndex(t, r)
			mu.Lock()
			defer mu.Unlock()
			delivered++
			// A fresh journal written by one goroutine: record i is seq i+1.
			if _, err := p.journal.Get(uint64(i) + 1); !errors.Is(err, wal.ErrNotFound) {
				early = append(early, i)
			}
		}))...)
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 500
	writeRecords(t, ctx, p, n, 3, 10)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	pending := p.journal.Stats().Pending
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d acknowledgement calls, %d failed; stats %+v", faults.Load(), failures, st)
	if faults.Load() == 0 {
		t.Fatal("no acknowledgement was tried: the fault did not fire")
	}
	if len(early) > 0 {
		t.Fatalf("OnDelivery ran for %d records before their acknowledgement was journaled (first: %d)", len(early), early[0])
	}
	if delivered != n || st.Delivered != n || pending != 0 {
		t.Fatalf("OnDelivery %d times, stats %+v, %d pending in the journal after Flush; want %d delivered, 0 pending",
			delivered, st, pending, n)
	}
}

// TestCloseWithSmallClientBuffer lowers the client's buffer below the
// in-flight window while no broker answers: the sender blocks in the
// client's Produce, waiting for room, and Close must still return once its
// ctx ends, leaving the records journaled.
func TestCloseWithSmallClientBuffer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	url := fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t))
	p, err := NewProducer(url, WithJournal(dir), WithClient(kgo.MaxBufferedRecords(10)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 100
	writeRecords(t, ctx, p, n, 3, 10)
	// The client holds its 10 records; the sender waits in Produce.
	waitStats(t, ctx, p, "the client's buffer to fill", func(st Stats) bool { return st.InFlight > 10 })
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(short) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close: %v, want deadline exceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return 30 s after its ctx ended")
	}
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if st := l.Stats(); st.Pending != n {
		t.Fatalf("%d records left in the journal, want %d", st.Pending, n)
	}
}

// TestClusterAuthorizationRetried refuses the first InitProducerID with
// CLUSTER_AUTHORIZATION_FAILED (an ACL still propagating). The client keeps
// that error for every later record; the producer must not dead-letter
// them but ask again (with a new client) and deliver everything, including
// records written after the refusal.
func TestClusterAuthorizationRetried(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	var inits, refused atomic.Int64
	c.ControlKey(int16(kmsg.InitProducerID), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if inits.Add(1) > 1 {
			return nil, nil, false
		}
		refused.Add(1)
		resp := req.(*kmsg.InitProducerIDRequest).ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil, true
	})
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"))
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 1000
	writeRecords(t, ctx, p, n, 4, 10)
	waitStats(t, ctx, p, "the refusal", func(Stats) bool { return refused.Load() > 0 })
	for i := n; i < 2*n; i++ {
		if err := p.Write(ctx, testRecord(i, 4, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	t.Logf("InitProducerID requests %d (refused %d); stats %+v", inits.Load(), refused.Load(), st)
	if refused.Load() != 1 || inits.Load() < 2 {
		t.Fatalf("InitProducerID asked %d times, refused %d: want one refusal, then asked again", inits.Load(), refused.Load())
	}
	if st.DeadLettered != 0 || st.Delivered != 2*n {
		t.Fatalf("stats %+v: want %d delivered, none dead-lettered", st, 2*n)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := readTopic(t, c.ListenAddrs(), "t")
	checkOrder(t, got)
	if tl := countIDs(t, got); len(tl.copies) != 2*n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), 2*n)
	}
}

// TestNoSpuriousTooLarge writes records that each fit in the journal's
// bound alone but not two together, and makes the journal empty (the broker
// confirms the record that took the room) right between an append refused
// for room and the check that tells a record too large: no Write may fail
// with ErrRecordTooLarge.
func TestNoSpuriousTooLarge(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	var p *Producer
	var emptied atomic.Int64
	p, _ = newTestProducer(t, kfaketest.URL(c, "t"), WithWAL(wal.WithMaxBytes(64<<10)),
		withAfterFull(func() {
			for p.journal.Stats().Pending > 0 {
				time.Sleep(time.Millisecond)
			}
			emptied.Add(1)
		}))
	ctx := ctxTimeout(t, 60*time.Second)
	value := make([]byte, 40<<10)
	for i := 0; i < 20 || emptied.Load() == 0; i++ {
		if ctx.Err() != nil {
			t.Fatal("no append was refused for room")
		}
		if err := p.Write(ctx, &kgo.Record{Value: value}); err != nil {
			t.Fatalf("write %d (journal emptied %d times after a refused append): %v", i, emptied.Load(), err)
		}
	}
	t.Logf("the journal emptied %d times after an append refused for room", emptied.Load())
}

// TestDeadLetterBoundAndReclaim bounds the dead-letter log to two of three
// records too large for the broker: the third stays in the journal,
// retried. DropDeadLetters makes room (the third is then dead-lettered by
// the next producer), and RequeueDeadLetters puts it back in the journal,
// from where a producer on a broker that takes it delivers it, _id kept.
func TestDeadLetterBoundAndReclaim(t *testing.T) {
	t.Parallel()
	strict := kfaketest.New(t, kfake.SeedTopics(1, "t"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	ctx := ctxTimeout(t, 90*time.Second)
	dir := filepath.Join(t.TempDir(), "journal")
	open := func(url string) *Producer {
		p, err := NewProducer(url, append(fastRetries(), WithJournal(dir), withDeadLetterMax(100<<10))...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	closeShort := func(p *Producer) {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_ = p.Close(short)
	}
	p := open(kfaketest.URL(strict, "t"))
	writeRecords(t, ctx, p, 10, 2, 10)
	for i := range 3 {
		r := testRecord(10+i, 2, 0)
		big := make([]byte, 40<<10)
		rand.Read(big) // the client compresses batches
		r.Value = append(r.Value, big...)
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	st := waitStats(t, ctx, p, "two dead letters and the third retried", func(st Stats) bool {
		return st.Delivered == 10 && st.DeadLettered == 2 && st.Retries > 3
	})
	closeShort(p)
	t.Logf("stats at the dead-letter log's bound: %+v", st)

	rep, err := DropDeadLetters(dir)
	if err != nil || rep.Dropped != 2 {
		t.Fatalf("DropDeadLetters: %+v, %v; want 2 dropped", rep, err)
	}
	p = open(kfaketest.URL(strict, "t"))
	waitStats(t, ctx, p, "the third dead-lettered", func(st Stats) bool { return st.DeadLettered == 1 })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	rep, err = RequeueDeadLetters(dir)
	if err != nil || rep.Moved != 1 {
		t.Fatalf("RequeueDeadLetters: %+v, %v; want 1 moved", rep, err)
	}
	loose := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	var got deliveries
	p, err = NewProducer(kfaketest.URL(loose, "t"), WithJournal(dir), WithOnDelivery(got.add))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got.count() != 1 || recordIndex(t, got.recs[0]) != 12 || len(header(got.recs[0], idHeader)) != idLen {
		t.Fatalf("delivered after the requeue: %d records %v", got.count(), got.recs)
	}
	tl := countIDs(t, readTopic(t, loose.ListenAddrs(), "t"))
	if len(tl.copies) != 1 {
		t.Fatalf("%d records on the broker that takes large ones, want 1", len(tl.copies))
	}
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if n := dl.Stats().Pending; n != 0 {
		t.Fatalf("%d records left in the dead-letter log", n)
	}
}
