package kafka

import (
	"errors"
	"path/filepath"
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
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if n := dl.Stats().Pending; n != 1 {
		t.Fatalf("the dead-letter log holds %d copies of the record, want 1", n)
	}
}
