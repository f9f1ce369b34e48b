package kafka

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestStatsRecordAwaitingAck: a record the broker confirmed whose
// acknowledgement the journal has not taken (it failed) is in flight in
// Stats, not queued (it was handed to the client) and not delivered.
// Before, Stats counted it queued while the journal held it pending, and
// nowhere once an Ack whose sync failed had taken it out of the journal's
// pending count: walpub's summary then added up to fewer records than it
// journaled.
func TestStatsRecordAwaitingAck(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	fired := make(chan struct{})
	var once sync.Once
	var checked atomic.Bool // acknowledgements fail until the test looked
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"),
		WithRetryBackoff(10*time.Millisecond, 50*time.Millisecond),
		withAckFault(func() error {
			if checked.Load() {
				return nil
			}
			once.Do(func() { close(fired) })
			return errors.New("injected ack failure")
		}))
	ctx := ctxTimeout(t, 30*time.Second)
	writeRecords(t, ctx, p, 1, 1, 10)
	select {
	case <-fired:
	case <-ctx.Done():
		t.Fatal("the acknowledgement was never tried: the fault did not fire")
	}
	st := p.Stats()
	checked.Store(true)
	if st.Queued != 0 || st.InFlight != 1 || st.Delivered != 0 {
		t.Fatalf("stats %+v with the broker's confirmation not yet journaled; want 1 in flight, none queued or delivered", st)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Queued != 0 || st.InFlight != 0 || st.Delivered != 1 {
		t.Fatalf("stats %+v once the acknowledgement was journaled; want 1 delivered", st)
	}
}
