package kafka

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
)

// TestJournalSyncsByDefault checks the producer's default journal policy,
// SyncEvery(journalSyncEvery): with the broker down, records written and
// nothing else done (no Flush, no Close, no rotation) are synced within a
// few intervals, which the journal's durable high-water mark shows. Under
// wal's own default (SyncNever) the mark would not move, and a power cut
// would lose them. WithWAL still overrides it.
func TestJournalSyncsByDefault(t *testing.T) {
	t.Parallel()
	url := fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t))
	hwm := func(dir string) uint64 {
		v, err := wal.OpenView(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		return v.Info().HighWater.Seq
	}
	for _, c := range []struct {
		name   string
		opts   []Option
		synced bool
	}{{"default", nil, true}, {"never", []Option{WithWAL(wal.WithSync(wal.SyncNever))}, false}} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "journal")
			p, err := NewProducer(url, append([]Option{WithJournal(dir)}, c.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxTimeout(t, 60*time.Second)
			// waitFor waits until the mark reaches want, or for wait.
			waitFor := func(want uint64, wait time.Duration) uint64 {
				got := uint64(0)
				for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if got = hwm(dir); got >= want {
						break
					}
				}
				return got
			}
			// Opening a journal syncs once (before its first checkpoint),
			// under any policy: let that happen before writing, so that
			// it cannot sync the records written after.
			ckpt := filepath.Join(dir, index.CheckpointName)
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(ckpt); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no checkpoint 30 s after NewProducer")
				}
			}
			first := hwm(dir)
			const n = 20
			writeRecords(t, ctx, p, n, 1, 10)
			if c.synced {
				if got := waitFor(first+n, 30*time.Second); got < first+n {
					t.Errorf("durable high-water mark at seq %d 30 s after records %d..%d were written: the journal is not synced", got, first+1, first+n)
				}
			} else {
				// Ten default intervals: the default would have synced.
				if got := waitFor(first+n, 10*journalSyncEvery); got != first {
					t.Errorf("durable high-water mark moved from %d to %d under SyncNever without a Sync", first, got)
				}
			}
			closeCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			p.Close(closeCtx) // the broker is down: the records stay journaled
		})
	}
}
