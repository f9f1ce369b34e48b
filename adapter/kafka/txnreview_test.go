package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/wal"
)

// TestFloorsWaitForUnackedCommit: transaction T1 commits but its journal
// acknowledgement fails (its retry comes later); T2 commits on the same
// partition and is acknowledged. The partition's floor must not move past
// T1's committed, still pending records: the process stops before T1's
// acknowledgement is retried, and the next producer's reconcile must find
// T1 committed rather than send it again (read_committed sees each record
// once).
//
// T1 and T2 are 10 records each whatever the scheduling: a transaction
// ends once it holds the window's bytes, those of 10 records, never by
// time (its commit interval is an hour; the window's count would not do,
// as T1's unacknowledged records take their room in it). With the default
// interval (100 ms) a Write held up that long (a loaded machine) ended T1
// before its last records, whose acknowledgement then succeeded: 5
// pending instead of 10.
func TestFloorsWaitForUnackedCommit(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	url := kfaketest.URL(c, "t")
	dir := t.TempDir() + "/journal"
	var calls atomic.Int64
	size := encodedLen(testRecord(0, 1, 10), "t", make([]byte, idLen), 0, "") // every record's: same lengths
	p, err := NewProducer(url, WithJournal(dir), WithExactlyOnce(""),
		WithMaxInFlight(1000, 10*size), withCommitInterval(time.Hour),
		WithRetryBackoff(time.Hour, time.Hour), // the failed ack is retried only at Close
		withAckFault(func() error {
			if n := calls.Add(1); n == 1 || n >= 3 {
				return errors.New("injected ack failure")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	waitCalls := func(n int64) {
		for calls.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("ack calls %d, want %d", calls.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	writeRecords(t, ctx, p, 10, 1, 10) // T1
	waitCalls(1)                       // T1 committed, its ack failed
	for i := 10; i < 20; i++ {         // T2
		if err := p.Write(ctx, testRecord(i, 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	waitCalls(2) // T2 committed and acknowledged
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = p.Close(short) // T1's ack fails again: T1 stays journaled ("crash" before its retry)
	if n := journalPending(t, dir); n != 10 {
		t.Fatalf("%d pending, want T1's 10", n)
	}
	st, _ := openTxnState(dir, "")
	t.Logf("floors after T2: %v (T1 occupies offsets 0-9 and is pending)", st.file.Floors)

	p2, err := NewProducer(url, WithJournal(dir), WithExactlyOnce(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "t"))
	if len(tl.copies) != 20 || tl.duplicates() != 0 {
		t.Fatalf("read_committed: %d distinct, %d duplicates; want 20, 0", len(tl.copies), tl.duplicates())
	}
}

// TestReconcileReportsUnackedOnce: T1 commits but its journal
// acknowledgement keeps failing (it waits for a retry). T2's commit fails,
// so the sender fences and reconciles: reconcile finds T1 committed,
// acknowledges it and reports it to OnDelivery. Once acknowledgements work
// again, T1 must not be reported a second time.
func TestReconcileReportsUnackedOnce(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	var got deliveries
	var failAcks atomic.Bool
	failAcks.Store(true)
	var calls atomic.Int64
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithExactlyOnce(""), WithOnDelivery(got.add),
		withAckFault(func() error {
			calls.Add(1)
			if failAcks.Load() {
				return errors.New("injected ack failure")
			}
			return nil
		}))
	ctx := ctxTimeout(t, 30*time.Second)
	writeRecords(t, ctx, p, 10, 1, 10) // T1
	for calls.Load() < 1 {             // T1 committed, its ack failed
		if ctx.Err() != nil {
			t.Fatal("T1 never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, TopLevel: true})
	for i := 10; i < 20; i++ { // T2: its commit fails
		if err := p.Write(ctx, testRecord(i, 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	for got.count() < 10 { // reconcile found T1 and reported it
		if ctx.Err() != nil {
			t.Fatalf("reconcile never reported T1 (%d deliveries)", got.count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	failAcks.Store(false)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, st := got.count(), p.Stats(); n != 20 || st.Delivered != 20 {
		t.Fatalf("OnDelivery called %d times, Stats.Delivered %d, for 20 records", n, st.Delivered)
	}
}

// TestFencedWriteAtBound: a Write waiting at the journal's wal.WithMaxBytes
// bound when the producer is fenced returns ErrFenced, instead of waiting
// for room that never comes (the fenced sender acknowledges nothing).
func TestFencedWriteAtBound(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	const id = "walpub-fenced-at-bound"
	release := holdProduces(c)
	atBound := make(chan struct{})
	var once sync.Once
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithExactlyOnce(id),
		WithWAL(wal.WithMaxBytes(64<<10)),
		withAfterFull(func() { once.Do(func() { close(atBound) }) }))
	ctx := ctxTimeout(t, 60*time.Second)
	werr := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := p.Write(context.Background(), testRecord(i, 1, 1000)); err != nil {
				werr <- err
				return
			}
		}
	}()
	// A transaction is open, its produce held, and the writer has reached
	// the bound (the journal refused a record for room).
	waitStats(t, ctx, p, "a record in flight", func(st Stats) bool { return st.InFlight > 0 })
	select {
	case <-atBound:
	case err := <-werr:
		t.Fatalf("Write: %v before the bound", err)
	case <-ctx.Done():
		t.Fatal("the writer did not reach the journal's bound")
	}
	other, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, _, err := other.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, &kgo.Record{Value: []byte("newer")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("Flush: %v, want ErrFenced", err)
	}
	select {
	case err := <-werr:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("Write: %v, want ErrFenced", err)
		}
	case <-ctx.Done():
		t.Fatal("Write blocked at the journal bound still waits after the producer was fenced")
	}
}
