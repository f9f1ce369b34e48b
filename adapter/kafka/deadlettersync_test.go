package kafka

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// TestDeadLetterSyncFailureNoDuplicate: the first sync of the dead-letter
// log fails (the log stays usable, as when only its high-water mark found
// no room on a full disk). The record stays journaled and is moved again;
// the dead-letter log must then hold it once, not once per try, and
// OnDeadLetter must report it once.
func TestDeadLetterSyncFailureNoDuplicate(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	invalid := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.InvalidTopicException, Count: -1})
	defer invalid.Remove()
	var syncs, reported atomic.Int64
	p, dir := newTestProducer(t, kfaketest.URL(c, "t"),
		WithOnDeadLetter(func(*kgo.Record, error) { reported.Add(1) }),
		withDeadLetterSyncFault(func() error {
			if syncs.Add(1) == 1 {
				return errors.New("injected dead-letter sync failure")
			}
			return nil
		}))
	ctx := ctxTimeout(t, 30*time.Second)
	if err := p.Write(ctx, &kgo.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := syncs.Load(); n < 2 {
		t.Fatalf("the dead-letter log was synced %d times: the failure did not fire, or the record was not moved again", n)
	}
	if n := reported.Load(); n != 1 {
		t.Errorf("OnDeadLetter called %d times, want 1", n)
	}
	if n := deadLetters(t, dir); n != 1 {
		t.Fatalf("the dead-letter log holds %d copies of the record, want 1", n)
	}
}

// TestDeadLetterSyncFailureThenDelivered: a record fails for good once
// (an invalid topic, one produce request), and its move to the
// dead-letter log fails at the sync; it stays journaled, is sent again
// and delivered (committed, with exactly once). The copy that move
// appended must not stay in the dead-letter log: walcat dead-letters
// --requeue would publish the delivered record again, and the log would
// report a record no retry could fix that was delivered.
func TestDeadLetterSyncFailureThenDelivered(t *testing.T) {
	t.Parallel()
	for _, eos := range []bool{false, true} {
		t.Run(fmt.Sprintf("exactly-once=%v", eos), func(t *testing.T) {
			t.Parallel()
			c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
			invalid := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.InvalidTopicException, Count: 1})
			defer invalid.Remove()
			var syncs atomic.Int64
			opts := []Option{withDeadLetterSyncFault(func() error {
				if syncs.Add(1) == 1 {
					return errors.New("injected dead-letter sync failure")
				}
				return nil
			})}
			if eos {
				opts = append(opts, WithExactlyOnce(""))
			}
			p, dir := newTestProducer(t, kfaketest.URL(c, "t"), opts...)
			ctx := ctxTimeout(t, 30*time.Second)
			if err := p.Write(ctx, &kgo.Record{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			// Acknowledged at delivery, not only by Close: a killed
			// process does not close. The sender set p.snd.dl before
			// the delivery Flush waited for.
			if p.snd.dl == nil {
				t.Fatal("the dead-letter log was never opened: no move was tried")
			}
			if n := p.snd.dl.Stats().Pending; n != 0 {
				t.Fatalf("after the delivery, the dead-letter log holds %d records, want 0", n)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if n := invalid.Hits(); n != 1 {
				t.Fatalf("the invalid-topic fault answered %d produce requests, want 1", n)
			}
			if n := syncs.Load(); n != 1 {
				t.Fatalf("the dead-letter log was synced %d times, want 1 (the injected failure)", n)
			}
			if st := p.Stats(); st.Delivered != 1 || st.DeadLettered != 0 {
				t.Fatalf("delivered %d, dead-lettered %d; want 1, 0", st.Delivered, st.DeadLettered)
			}
			var read []kgo.Opt
			if eos {
				read = append(read, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			}
			if got := readTopicWith(t, c.ListenAddrs(), "t", read...); len(got[0]) != 1 {
				t.Fatalf("the topic holds %d records, want 1", len(got[0]))
			}
			if n := deadLetters(t, dir); n != 0 {
				t.Fatalf("the dead-letter log holds %d records after the record was delivered, want 0", n)
			}
		})
	}
}

// TestDeadLetterSyncFailureThenClosed: every sync of the dead-letter log
// fails, so the record that fails for good stays journaled; the producer
// is closed before it is sent again. The copy a failed move appended must
// not outlive the run (the record is in the journal, and the next run
// knows nothing of the copy): the next run delivers the record, and the
// dead-letter log must then be empty.
func TestDeadLetterSyncFailureThenClosed(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	invalid := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "t", Err: kerr.InvalidTopicException, Count: -1})
	failed := make(chan struct{})
	var once sync.Once
	p, dir := newTestProducer(t, kfaketest.URL(c, "t"),
		withDeadLetterSyncFault(func() error {
			once.Do(func() { close(failed) })
			return errors.New("injected dead-letter sync failure")
		}))
	ctx := ctxTimeout(t, 30*time.Second)
	if err := p.Write(ctx, &kgo.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("the dead-letter log's sync never failed: the record was not moved")
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Close(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v, want context.Canceled (the record left in the journal)", err)
	}
	invalid.Remove()
	if st := p.Stats(); st.Delivered != 0 || st.DeadLettered != 0 {
		t.Fatalf("delivered %d, dead-lettered %d; want 0, 0 (the record left in the journal)", st.Delivered, st.DeadLettered)
	}

	p2, err := NewProducer(kfaketest.URL(c, "t"), append([]Option{WithJournal(dir)}, fastRetries()...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p2.Stats(); st.Delivered != 1 || st.DeadLettered != 0 {
		t.Fatalf("the next run delivered %d, dead-lettered %d; want 1, 0", st.Delivered, st.DeadLettered)
	}
	if n := deadLetters(t, dir); n != 0 {
		t.Fatalf("the dead-letter log holds %d records after the record was delivered, want 0", n)
	}
}

// deadLetters returns how many records the dead-letter log of the journal
// in dir holds.
func deadLetters(t *testing.T, dir string) int {
	t.Helper()
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	return dl.Stats().Pending
}
