package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
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

// checkOrder fails unless, per partition and key, the first copies of the
// records appear in write order (duplicates from resends may come later).
func checkOrder(t *testing.T, parts map[int32][]*kgo.Record) {
	t.Helper()
	for p, rs := range parts {
		seen := map[string]bool{}
		last := map[string]int{}
		for _, r := range rs {
			id := string(header(r, idHeader))
			if seen[id] {
				continue
			}
			seen[id] = true
			i := recordIndex(t, r)
			if prev, ok := last[string(r.Key)]; ok && i < prev {
				t.Fatalf("partition %d key %s: record %d after %d", p, r.Key, i, prev)
			}
			last[string(r.Key)] = i
		}
	}
}

func TestDelivery(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(3, "events", "other"))
	const n = 2000
	var got deliveries
	var p *Producer
	var unacked []int // records reported before their ack was journaled
	p, _ = newTestProducer(t, kfaketest.URL(c, "events"), WithOnDelivery(func(r *kgo.Record) {
		// Written by one goroutine into a fresh journal: record i is seq
		// i+1, and the last one (index 99999999) seq n+1.
		seq := uint64(recordIndex(t, r)) + 1
		if seq > n {
			seq = n + 1
		}
		if _, err := p.journal.Get(seq); !errors.Is(err, wal.ErrNotFound) {
			got.mu.Lock()
			unacked = append(unacked, int(seq-1))
			got.mu.Unlock()
		}
		got.add(r)
	}))
	ctx := ctxTimeout(t, 60*time.Second)

	base := time.UnixMilli(1_700_000_000_000)
	for i := range n {
		r := testRecord(i, 7, 0)
		r.Headers = []kgo.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}, {Key: "empty", Value: []byte{}}}
		r.Timestamp = base.Add(time.Duration(i) * time.Millisecond)
		if i%10 == 0 {
			r.Topic = "other"
		}
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// A record without a timestamp gets the current time, and one with an
	// _id keeps it.
	before := time.Now().Truncate(time.Millisecond)
	if err := p.Write(ctx, &kgo.Record{Key: []byte("now"), Value: []byte("v99999999"),
		Headers: []kgo.RecordHeader{{Key: "_id", Value: []byte("0123456789abcdef")}}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got.count() != n+1 {
		t.Fatalf("OnDelivery called %d times, want %d", got.count(), n+1)
	}
	got.mu.Lock()
	if len(unacked) > 0 {
		t.Fatalf("OnDelivery ran for %d records whose ack was not journaled yet (first: record %d)", len(unacked), unacked[0])
	}
	got.mu.Unlock()
	st := p.Stats()
	if st.Delivered != n+1 || st.Queued != 0 || st.InFlight != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats after flush: %+v", st)
	}
	for _, r := range got.recs {
		if r.Offset < 0 {
			t.Fatalf("delivered record without offset: %+v", r)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	events := readTopic(t, c.ListenAddrs(), "events")
	other := readTopic(t, c.ListenAddrs(), "other")
	checkOrder(t, events)
	checkOrder(t, other)
	seen := map[int]bool{}
	for topic, parts := range map[string]map[int32][]*kgo.Record{"events": events, "other": other} {
		for _, rs := range parts {
			for _, r := range rs {
				i := recordIndex(t, r)
				if i == 99999999 {
					if !bytes.Equal(header(r, "_id"), []byte("0123456789abcdef")) || len(r.Headers) != 1 {
						t.Fatalf("caller's _id not kept: %v", r.Headers)
					}
					if r.Timestamp.Before(before) || r.Timestamp.After(time.Now()) {
						t.Fatalf("zero timestamp became %v, want about %v", r.Timestamp, before)
					}
					seen[i] = true
					continue
				}
				if seen[i] {
					t.Fatalf("record %d twice", i)
				}
				seen[i] = true
				want := testRecord(i, 7, 0)
				wantTopic := "events"
				if i%10 == 0 {
					wantTopic = "other"
				}
				switch {
				case topic != wantTopic:
					t.Fatalf("record %d on %s, want %s", i, topic, wantTopic)
				case !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value):
					t.Fatalf("record %d: key %q value %q", i, r.Key, r.Value)
				case !r.Timestamp.Equal(base.Add(time.Duration(i) * time.Millisecond)):
					t.Fatalf("record %d: timestamp %v", i, r.Timestamp)
				case len(r.Headers) != 3 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != fmt.Sprint(i) ||
					r.Headers[1].Key != "empty" || len(r.Headers[1].Value) != 0 || r.Headers[2].Key != "_id" || len(r.Headers[2].Value) != idLen:
					t.Fatalf("record %d: headers %v", i, r.Headers)
				}
			}
		}
	}
	if len(seen) != n+1 {
		t.Fatalf("read %d distinct records, want %d", len(seen), n+1)
	}
}

// TestConcurrentWriters writes from many goroutines and checks that Flush
// covers every record written before it.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(4, "t"))
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(64, 1<<20))
	ctx := ctxTimeout(t, 60*time.Second)
	const writers, each = 8, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := p.Write(ctx, testRecord(w*each+i, writers, 100)); err != nil {
					t.Error(err)
					return
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Delivered != writers*each {
		t.Fatalf("delivered %d, want %d (%+v)", st.Delivered, writers*each, st)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tl := countIDs(t, readTopic(t, c.ListenAddrs(), "t"))
	if len(tl.copies) != writers*each {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), writers*each)
	}
}

// TestFaults drops produce requests (the connection closes before the broker
// acts), answers others with retriable error codes, and answers others with
// REQUEST_TIMED_OUT after writing them: every record lands, and duplicates
// are counted.
func TestFaults(t *testing.T) {
	t.Parallel()
	t.Run("at least once", func(t *testing.T) { t.Parallel(); testFaults(t, false) })
	t.Run("exactly once", func(t *testing.T) { t.Parallel(); testFaults(t, true) })
}

// testFaults is TestFaults; with exactly once, the consumer reads
// read_committed and must see no duplicate.
func testFaults(t *testing.T, eos bool) {
	c := kfaketest.New(t, kfake.SeedTopics(3, "t"))
	var mu sync.Mutex
	var produces, dropped, coded int
	const budget = 40
	retriable := []*kerr.Error{kerr.NotLeaderForPartition, kerr.RequestTimedOut, kerr.NotEnoughReplicas, kerr.LeaderNotAvailable}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		produces++
		switch {
		case dropped+coded >= budget:
			c.DropControl()
			return nil, nil, false
		case produces%3 == 0:
			dropped++
			return nil, errors.New("dropped"), true
		case produces%3 == 1:
			coded++
			preq := req.(*kmsg.ProduceRequest)
			resp := preq.ResponseKind().(*kmsg.ProduceResponse)
			code := retriable[coded%len(retriable)].Code
			for _, rt := range preq.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic, st.TopicID = rt.Topic, rt.TopicID
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})
	// Written, then answered with an error: the client resends what the
	// broker already has.
	timedOut := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 5})
	defer timedOut.Remove()

	var got deliveries
	// Small batches (about 10 records, 3 partitions a request): the 3000
	// records take well over the 3 x budget produce requests that use up
	// the faults even when load makes the client batch all it may (with
	// the default, a loaded run sent 59 requests and injected 39 faults).
	opts := []Option{WithOnDelivery(got.add), WithMaxInFlight(200, 1<<20),
		WithClient(kgo.MaxProduceRequestsInflightPerBroker(1), kgo.ProducerLinger(time.Millisecond),
			kgo.ProducerBatchMaxBytes(1024))}
	if eos {
		opts = append(opts, WithExactlyOnce(""))
	}
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), opts...)
	ctx := ctxTimeout(t, 90*time.Second)
	const n = 3000
	writeRecords(t, ctx, p, n, 5, 50)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got.count() != n {
		t.Fatalf("OnDelivery called %d times, want %d", got.count(), n)
	}
	mu.Lock()
	t.Logf("produce requests %d, dropped %d, answered with retriable codes %d, timed out after write %d",
		produces, dropped, coded, timedOut.Hits())
	if dropped == 0 || coded == 0 || dropped+coded != budget || timedOut.Hits() != 5 {
		t.Fatalf("faults injected: %d dropped, %d retriable codes (want %d in all, each kind at least once), %d timed out after write (want 5)",
			dropped, coded, budget, timedOut.Hits())
	}
	mu.Unlock()
	parts := readCommitted(t, c.ListenAddrs(), "t")
	checkOrder(t, parts)
	tl := countIDs(t, parts)
	if len(tl.copies) != n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n)
	}
	t.Logf("%d records, %d duplicates", n, tl.duplicates())
	if eos && tl.duplicates() != 0 {
		t.Fatalf("exactly once: %d duplicates read_committed", tl.duplicates())
	}
}

// TestSurfacedFailures makes the client give up on records (one try only)
// while the broker answers with retriable errors, so that the producer's own
// requeueing does the retrying: every record must land.
func TestSurfacedFailures(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(3, "t"))
	f := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: 30})
	defer f.Remove()
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(300, 1<<20),
		WithClient(kgo.RecordRetries(1), kgo.ProducerLinger(time.Millisecond)))
	ctx := ctxTimeout(t, 90*time.Second)
	const n = 2000
	writeRecords(t, ctx, p, n, 5, 20)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Retries == 0 {
		t.Fatalf("no record was requeued (faults hit %d times): %+v", f.Hits(), st)
	}
	if st.Delivered != n {
		t.Fatalf("delivered %d, want %d", st.Delivered, n)
	}
	// No order check here: with a record retry limit (a WithClient option
	// documented to weaken the guarantees) the client fails a record while
	// later ones already handed to it go on, so they may land first. The
	// tests with the default configuration check the order.
	parts := readTopic(t, c.ListenAddrs(), "t")
	tl := countIDs(t, parts)
	if len(tl.copies) != n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n)
	}
	t.Logf("retries %d, duplicates %d", st.Retries, tl.duplicates())
}

// TestBrokerUnreachableAtStart starts the producer against a port nobody
// listens on, writes, then starts the broker there; with exactly once too
// (NewProducer does not fail: it fences once the broker answers).
func TestBrokerUnreachableAtStart(t *testing.T) {
	t.Parallel()
	t.Run("at least once", func(t *testing.T) { t.Parallel(); testBrokerUnreachableAtStart(t) })
	t.Run("exactly once", func(t *testing.T) { t.Parallel(); testBrokerUnreachableAtStart(t, WithExactlyOnce("")) })
}

func testBrokerUnreachableAtStart(t *testing.T, opts ...Option) {
	port := testutil.DeadPort(t)
	url := fmt.Sprintf("kafka://127.0.0.1:%d/t", port)
	p, _ := newTestProducer(t, url, opts...)
	ctx := ctxTimeout(t, 90*time.Second)
	const n = 500
	writeRecords(t, ctx, p, n, 3, 10)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := p.Flush(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with no broker: %v, want deadline exceeded", err)
	}
	if st := p.Stats(); st.Delivered != 0 || st.Queued+st.InFlight != n {
		t.Fatalf("stats with no broker: %+v", st)
	}
	c := kfaketest.New(t, kfake.Ports(port), kfake.SeedTopics(2, "t"))
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "t")); len(tl.copies) != n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n)
	}
}

// TestCloseTimeoutKeepsJournal closes with the broker down: Close returns
// the context's error, and a later producer on the journal delivers the
// records.
func TestCloseTimeoutKeepsJournal(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	p, err := NewProducer(fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t)), WithJournal(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 300
	writeRecords(t, ctx, p, n, 3, 10)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = p.Close(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with no broker: %v, want deadline exceeded", err)
	}
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Close: %v, want the first one's result", err)
	}
	if err := p.Write(ctx, testRecord(0, 1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	if err := p.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
	if st := p.Stats(); st.Queued != n || st.Delivered != 0 {
		t.Fatalf("stats after Close: %+v", st)
	}

	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	var got deliveries
	p2, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir), WithOnDelivery(got.add))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got.count() != n {
		t.Fatalf("resent %d records, want %d", got.count(), n)
	}
	parts := readTopic(t, c.ListenAddrs(), "t")
	var idx []int
	for _, r := range parts[0] {
		idx = append(idx, recordIndex(t, r))
	}
	if !slices.IsSorted(idx) || len(idx) != n {
		t.Fatalf("resent %d records, in order %v", len(idx), slices.IsSorted(idx))
	}
}

// TestDeadLetter sends a record larger than the broker accepts among small
// ones: it ends in the dead-letter log; the small ones are delivered, and so
// is a record to a topic whose authorization is refused for a while.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	t.Run("at least once", func(t *testing.T) { t.Parallel(); testDeadLetter(t) })
	t.Run("exactly once", func(t *testing.T) { t.Parallel(); testDeadLetter(t, WithExactlyOnce("")) })
}

// testDeadLetter is TestDeadLetter; the consumer reads read_committed.
func testDeadLetter(t *testing.T, opts ...Option) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t", "denied"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	// A refused authorization can change without the record changing (an
	// ACL granted later): it is retried, not dead-lettered.
	const refusals = 5
	deny := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "denied", Err: kerr.TopicAuthorizationFailed, Count: refusals})
	defer deny.Remove()

	var mu sync.Mutex
	var buried []error
	var got deliveries
	p, dir := newTestProducer(t, kfaketest.URL(c, "t"), append([]Option{WithOnDelivery(got.add),
		WithOnDeadLetter(func(r *kgo.Record, err error) {
			mu.Lock()
			buried = append(buried, err)
			mu.Unlock()
		}),
		WithClient(kgo.ProducerLinger(20 * time.Millisecond))}, opts...)...)
	ctx := ctxTimeout(t, 60*time.Second)
	const n = 200
	big := make([]byte, 50000) // random: the client compresses batches
	rand.Read(big)
	for i := range n {
		r := testRecord(i, 1, 0)
		if i == n/2 {
			r.Value = append(r.Value, big...)
		}
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Write(ctx, &kgo.Record{Topic: "denied", Value: []byte("v00000000")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", st)
	if deny.Hits() != refusals {
		t.Fatalf("the authorization was refused %d times, want %d", deny.Hits(), refusals)
	}
	if st.DeadLettered != 1 || st.Delivered != n || got.count() != n {
		t.Fatalf("stats %+v, OnDelivery %d; want 1 dead letter and %d delivered", st, got.count(), n)
	}
	mu.Lock()
	if len(buried) != 1 || !errors.Is(buried[0], kerr.MessageTooLarge) {
		t.Fatalf("OnDeadLetter errors: %v", buried)
	}
	mu.Unlock()

	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	var reasons []string
	for rec, err := range dl.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		r, reason, err := DecodeDeadLetter(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch r.Topic {
		case "t":
			if recordIndex(t, r) != n/2 || len(r.Value) != 9+len(big) {
				t.Fatalf("dead letter %d with %d bytes", recordIndex(t, r), len(r.Value))
			}
		default:
			t.Fatalf("dead letter for topic %q", r.Topic)
		}
		if len(header(r, idHeader)) != idLen {
			t.Fatalf("dead letter lost its _id: %v", r.Headers)
		}
		reasons = append(reasons, reason)
	}
	if len(reasons) != 1 {
		t.Fatalf("%d dead letters in the log, want 1: %q", len(reasons), reasons)
	}
	if tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "denied")); len(tl.copies) != 1 {
		t.Fatalf("%d records on the topic whose authorization was refused for a while, want 1", len(tl.copies))
	}
	parts := readCommitted(t, c.ListenAddrs(), "t")
	tl := countIDs(t, parts)
	if len(tl.copies) != n-1 {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n-1)
	}
	checkOrder(t, parts)
}

// TestUndecodableJournalRecord journals, before the producer opens, a
// record it cannot decode (its fields, headers and timestamp included,
// decode, then a trailing byte fails it) between two it can: that one goes
// to the dead-letter log, and the record after it is sent as journaled,
// with nothing of the one that failed (the sender decodes both into the
// same slot of its entry slab).
func TestUndecodableJournalRecord(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	stamp := time.UnixMilli(1_000_000_000_000)
	bad := append(EncodeRecord(&kgo.Record{Topic: "t", Key: []byte("k"), Value: []byte("bad"), Timestamp: stamp,
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}}), 0)
	dir := journalOf(t, EncodeRecord(&kgo.Record{Topic: "t", Value: []byte("before")}), bad,
		EncodeRecord(&kgo.Record{Topic: "t", Value: []byte("after")}))
	p, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Delivered != 2 || st.DeadLettered != 1 {
		t.Fatalf("stats %+v, want 2 delivered and 1 dead letter", st)
	}
	got := readTopic(t, c.ListenAddrs(), "t")[0]
	if len(got) != 2 || string(got[0].Value) != "before" || string(got[1].Value) != "after" {
		t.Fatalf("topic holds %d records, want before and after", len(got))
	}
	if r := got[1]; r.Key != nil || len(r.Headers) != 0 || r.Timestamp.Equal(stamp) {
		t.Fatalf("the record after the undecodable one has key %q, headers %v, timestamp %v", r.Key, r.Headers, r.Timestamp)
	}
}

// corruptionPattern fills the values of records that TestCorruptJournal
// damages, so that the test finds them in whatever files the journal keeps.
var corruptionPattern = bytes.Repeat([]byte("CORRUPT-ME-"), 40)

func TestCorruptJournal(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "journal")
	url := fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t))
	p, err := NewProducer(url, WithJournal(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	for range 20 {
		if err := p.Write(ctx, &kgo.Record{Value: corruptionPattern}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_ = p.Close(short) // the broker is down: the records stay journaled
	cancel()

	// Flip a byte in the middle of the tenth copy of the pattern.
	flipped := false
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || flipped {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		off, seen := 0, 0
		for {
			i := bytes.Index(b[off:], corruptionPattern)
			if i < 0 {
				return nil
			}
			off += i
			if seen++; seen == 10 {
				break
			}
			off += len(corruptionPattern)
		}
		b[off+len(corruptionPattern)/2] ^= 0x40
		flipped = true
		return os.WriteFile(path, b, d.Type().Perm()|0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !flipped {
		t.Fatal("the records' bytes were not found in the journal")
	}
	p2, err := NewProducer(url, WithJournal(dir))
	if err == nil {
		_ = p2.Close(short)
		t.Fatal("NewProducer on a corrupt journal succeeded")
	}
	var ce *wal.CorruptionError
	if !errors.Is(err, wal.ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("NewProducer on a corrupt journal: %v, want a *wal.CorruptionError", err)
	}
	t.Logf("%v", err)
}

func TestLockedJournal(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	_, dir := newTestProducer(t, kfaketest.URL(c, "t"))
	p2, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir))
	if err == nil {
		_ = p2.Close(context.Background())
		t.Fatal("second producer on one journal")
	}
	if !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second producer: %v, want wal.ErrLocked", err)
	}
}

// TestJournalBound fills a journal bounded by wal.WithMaxBytes while the
// broker is down: Write waits for room until its ctx ends, and resumes once
// deliveries make room.
func TestJournalBound(t *testing.T) {
	t.Parallel()
	port := testutil.DeadPort(t)
	p, _ := newTestProducer(t, fmt.Sprintf("kafka://127.0.0.1:%d/t", port),
		WithWAL(wal.WithMaxBytes(64<<10)))
	ctx := ctxTimeout(t, 60*time.Second)

	big := &kgo.Record{Value: make([]byte, 100<<10)}
	if err := p.Write(ctx, big); !errors.Is(err, ErrRecordTooLarge) || !errors.Is(err, wal.ErrFull) {
		t.Fatalf("Write of a record beyond the bound: %v", err)
	}
	written := 0
	for {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := p.Write(short, testRecord(written, 2, 1000))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		written++
	}
	if written == 0 || written > 64 {
		t.Fatalf("%d 1 KiB records fit in a 64 KiB journal", written)
	}
	c := kfaketest.New(t, kfake.Ports(port), kfake.SeedTopics(1, "t"))
	const more = 200 // several times the bound: Write waits for acks
	for i := range more {
		if err := p.Write(ctx, testRecord(written+i, 2, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if tl := countIDs(t, readTopic(t, c.ListenAddrs(), "t")); len(tl.copies) != written+more {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), written+more)
	}
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	p, _ := newTestProducer(t, "kafka://"+c.ListenAddrs()[0]) // no topic
	ctx := ctxTimeout(t, 30*time.Second)
	if err := p.Write(ctx, &kgo.Record{Value: []byte("x")}); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("Write without topic: %v", err)
	}
	if err := p.Write(ctx, nil); err == nil {
		t.Fatal("Write(nil) succeeded")
	}
	if err := p.Write(ctx, &kgo.Record{Topic: "no spaces"}); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("Write with an invalid topic: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Write(done, &kgo.Record{Topic: "t"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled ctx: %v", err)
	}
	r := &kgo.Record{Topic: "t", Value: []byte("v00000001"), Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("b")}}}
	if err := p.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	if len(r.Headers) != 1 || !r.Timestamp.IsZero() {
		t.Fatalf("Write modified the caller's record: %+v", r)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Write(ctx, r); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

// TestBacklogNotOnHeap reopens a journal holding far more than the
// in-flight window, with the broker down: the heap holds the window, not
// the backlog.
func TestBacklogNotOnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	dir := filepath.Join(t.TempDir(), "journal")
	url := fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t))
	ctx := ctxTimeout(t, 60*time.Second)
	const n, size = 100_000, 1000 // 100 MB
	func() {
		l, err := wal.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		b := EncodeRecord(&kgo.Record{Topic: "t", Value: make([]byte, size)})
		for range n {
			if _, err := l.Append(b); err != nil {
				t.Fatal(err)
			}
		}
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	p, err := NewProducer(url, WithJournal(dir), WithMaxInFlight(1000, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	for p.Stats().InFlight < 1000 {
		if ctx.Err() != nil {
			t.Fatalf("window never filled: %+v", p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	st := p.Stats()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_ = p.Close(short)
	cancel()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("backlog %d records (%d MB), heap grew by %.1f MB, stats %+v", n, n*size>>20, float64(grown)/(1<<20), st)
	if st.InFlight+st.Queued != n {
		t.Fatalf("stats %+v, want %d records pending", st, n)
	}
	if grown > 30<<20 {
		t.Fatalf("heap grew by %d MB for a %d MB backlog", grown>>20, n*size>>20)
	}
}
