package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/wal"
)

// readCommitted consumes every committed record of topic, per partition in
// offset order, as a read_committed consumer sees them.
func readCommitted(t testing.TB, addrs []string, topic string) map[int32][]*kgo.Record {
	t.Helper()
	return readTopicWith(t, addrs, topic, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
}

func TestExactlyOnceDelivers(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(3, "eos"))
	var got deliveries
	p, _ := newTestProducer(t, kfaketest.URL(c, "eos"), WithExactlyOnce(""), WithOnDelivery(got.add))
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
}

// storedTxnID returns the transactional ID kept in the journal dir.
func storedTxnID(t *testing.T, dir string) string {
	t.Helper()
	st, err := openTxnState(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return st.file.TransactionalID
}

func TestExactlyOnceTransactionalID(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "ids"))
	url := kfaketest.URL(c, "ids")
	ctx := ctxTimeout(t, 30*time.Second)
	open := func(dir, id string) {
		t.Helper()
		p, err := NewProducer(url, WithJournal(dir), WithExactlyOnce(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dirA, dirB := t.TempDir()+"/a", t.TempDir()+"/b"
	open(dirA, "")
	idA := storedTxnID(t, dirA)
	open(dirA, "")
	if got := storedTxnID(t, dirA); got != idA || !strings.HasPrefix(idA, txnIDPrefix) {
		t.Fatalf("derived ID %q, then %q after a restart; want the same, starting %q", idA, got, txnIDPrefix)
	}
	open(dirB, "")
	if idB := storedTxnID(t, dirB); idB == idA {
		t.Fatalf("two journals derived the same ID %q", idA)
	}
	open(dirA, "app-1")
	if got := storedTxnID(t, dirA); got != "app-1" {
		t.Fatalf("WithExactlyOnce(\"app-1\"): stored %q", got)
	}
}

func TestExactlyOnceTransactionsRefused(t *testing.T) {
	t.Parallel()
	noTxn := kversion.Stable()
	noTxn.SetMaxKeyVersion(kmsg.InitProducerID.Int16(), -1)
	noTxn.SetMaxKeyVersion(kmsg.EndTxn.Int16(), -1)
	old := kfaketest.New(t, kfake.SeedTopics(1, "t"), kfake.MaxVersions(noTxn))

	acl := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	secured := kfaketest.New(t, kfake.SeedTopics(1, "t"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("PLAIN", "app", "pw",
			acl(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationAll),
			acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationIdempotentWrite)))

	for _, tc := range []struct {
		name string
		c    *kfake.Cluster
		opts []Option
	}{
		{"no transaction API", old, nil},
		{"transactional ID not authorized", secured, []Option{WithSASL("PLAIN", "app", "pw")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir() + "/journal"
			p, err := NewProducer(kfaketest.URL(tc.c, "t"),
				append([]Option{WithJournal(dir), WithExactlyOnce("")}, tc.opts...)...)
			if err == nil {
				_ = p.Close(ctxTimeout(t, 10*time.Second))
				t.Fatal("NewProducer succeeded")
			}
			if !errors.Is(err, ErrTransactionsUnavailable) {
				t.Fatalf("NewProducer: %v, want ErrTransactionsUnavailable", err)
			}
			t.Logf("NewProducer: %v", err)
			// Without exactly once the same broker is fine.
			p, err = NewProducer(kfaketest.URL(tc.c, "t"), append([]Option{WithJournal(dir)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			_ = p.Close(ctxTimeout(t, 10*time.Second))
		})
	}
}

// TestExactlyOnceCloseAbortsOpenTransaction closes while a transaction
// cannot end (one partition refuses every produce with a retriable error):
// Close returns its context's error, the records stay journaled, and the
// transaction is aborted, so that read_committed consumers of the other
// partition are not held back (its last stable offset reaches its end).
func TestExactlyOnceCloseAbortsOpenTransaction(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(2, "t"))
	stuck := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Partitions: []int32{1},
		Err: kerr.NotEnoughReplicas, Count: -1})
	defer stuck.Remove()
	dir := t.TempDir() + "/journal"
	p, err := NewProducer(kfaketest.URL(c, "t"), append(fastRetries(), WithJournal(dir), WithExactlyOnce(""),
		WithClient(kgo.RecordPartitioner(kgo.ManualPartitioner())))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	for i := range 100 {
		r := testRecord(i, 1, 10)
		r.Partition = int32(i % 2)
		if err := p.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Records of partition 0 reach the broker inside the transaction.
	ends := map[int32]int64{}
	for ends[0] == 0 {
		if ctx.Err() != nil {
			t.Fatal("nothing reached partition 0")
		}
		ends = endOffsets(t, c, 0)
		time.Sleep(10 * time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := p.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want deadline exceeded", err)
	}
	if stuck.Hits() == 0 {
		t.Fatal("the fault on partition 1 never fired")
	}
	hw, lso := endOffsets(t, c, 0), endOffsets(t, c, 1)
	if lso[0] != hw[0] {
		t.Fatalf("partition 0: last stable offset %d, high watermark %d: the transaction is still open", lso[0], hw[0])
	}
	if js := journalPending(t, dir); js != 100 {
		t.Fatalf("%d records left in the journal, want 100", js)
	}
}

// endOffsets lists the end offsets of topic "t": isolation 0 gives the high
// watermarks, 1 the last stable offsets.
func endOffsets(t *testing.T, c *kfake.Cluster, isolation int8) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "t"
	for p := range int32(2) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctxTimeout(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = rp.Offset
		}
	}
	return out
}

// journalPending opens the journal in dir and returns its pending count.
func journalPending(t *testing.T, dir string) int {
	t.Helper()
	j, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	return j.Stats().Pending
}

// TestExactlyOnceCheckOwner: after trouble, a producer asks the coordinator
// whether another producer took its transactional ID over before it
// initializes the ID again (which would fence the newer one). Here another
// client initializes the ID behind the producer's back: the producer must
// find itself fenced.
func TestExactlyOnceCheckOwner(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "owner"))
	const id = "walpub-owner-test"
	p, _ := newTestProducer(t, kfaketest.URL(c, "owner"), WithExactlyOnce(id))
	ctx := ctxTimeout(t, 30*time.Second)
	writeRecords(t, ctx, p, 50, 1, 10)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.snd.checkOwner(ctx); err != nil {
		t.Fatalf("checkOwner with nobody else on the ID: %v, want nil", err)
	}
	other, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, _, err := other.ProducerID(ctx); err != nil {
		t.Fatalf("the other client initializing the ID: %v", err)
	}
	if err := p.snd.checkOwner(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("checkOwner after another client initialized the ID: %v, want ErrFenced", err)
	}
}
