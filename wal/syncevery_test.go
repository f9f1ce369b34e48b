package wal

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// syncedTo reports whether a sync round has made everything up to the
// log's current end durable.
func syncedTo(l *Log, at pos) bool {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return !l.synced.less(at)
}

func endOf(l *Log) pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return pos{l.active.id, l.active.tail}
}

// TestSyncEveryTicks checks the SyncEvery(d) syncer against a ticker the
// test drives, with no timing in it: the syncer asks for a ticker of period
// exactly d, syncs nothing of a record appended until a tick comes, makes
// it durable on the next tick, and stops its ticker on Close. With the
// period d and a sync on every tick, all but the last d of records (and a
// sync's duration) are durable (issue 18 item 18).
func TestSyncEveryTicks(t *testing.T) {
	const d = 37 * time.Millisecond
	var (
		mu      sync.Mutex
		periods []time.Duration
		stopped bool
	)
	tick := make(chan time.Time) // unbuffered: a send returns once the syncer took it
	l := mustOpen(t, t.TempDir(), WithSync(SyncEvery(d)), withTicker(func(p time.Duration) (<-chan time.Time, func()) {
		mu.Lock()
		defer mu.Unlock()
		periods = append(periods, p)
		return tick, func() { mu.Lock(); stopped = true; mu.Unlock() }
	}))
	checkpointWritten(t, l) // Open's own work done
	mu.Lock()
	if len(periods) != 1 || periods[0] != d {
		t.Errorf("the syncer asked for tickers of periods %v, want one of %v", periods, d)
	}
	mu.Unlock()
	for i := range 3 {
		if _, err := l.Append([]byte("a record under SyncEvery")); err != nil {
			t.Fatal(err)
		}
		at := endOf(l)
		if syncedTo(l, at) {
			t.Fatalf("round %d: the record is durable before a tick", i)
		}
		select {
		case tick <- time.Now():
		case <-time.After(time.Minute):
			t.Fatalf("round %d: the syncer took no tick in a minute", i)
		}
		eventually(t, fmt.Sprintf("round %d: the record durable after a tick", i), func() bool { return syncedTo(l, at) })
	}
	mustClose(t, l)
	mu.Lock()
	defer mu.Unlock()
	if !stopped {
		t.Error("Close did not stop the syncer's ticker")
	}
}

// TestSyncEveryInterval checks the SyncEvery(d) syncer's interval, counting
// syncs through the vfs layer, with bounds that load cannot break: while
// records are appended, it syncs no more often than every d (a ticker
// drops ticks, it never adds any); each record appended becomes durable
// without a Sync call; an idle log is not synced at all. How soon after d
// a record is durable is measured by BenchmarkSyncEveryLag (issue 18
// item 18).
func TestSyncEveryInterval(t *testing.T) {
	const d = 20 * time.Millisecond
	fsys := &vfs.Faulty{FS: vfs.OS}
	l := mustOpen(t, t.TempDir(), WithSync(SyncEvery(d)), withFS(fsys))
	defer mustClose(t, l)
	// Let Open's own work (the first checkpoint, its sync) settle.
	if _, err := l.Append([]byte("first")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first record durable", func() bool { return syncedTo(l, endOf(l)) })
	time.Sleep(5 * d)

	start, before := time.Now(), fsys.SyncCount()
	var n int
	for time.Since(start) < 50*d {
		if _, err := l.Append([]byte("a record under SyncEvery")); err != nil {
			t.Fatal(err)
		}
		n++
		time.Sleep(d / 10)
	}
	last := endOf(l)
	// Each round syncs the active segment once (no rotation: the segment
	// is 64 MiB); rounds start at most once per tick.
	syncs := fsys.SyncCount() - before
	if limit := int(time.Since(start)/d) + 2; syncs > limit {
		t.Errorf("%d syncs in %v of appends with SyncEvery(%v): more than one per interval (limit %d)", syncs, time.Since(start), d, limit)
	}
	if syncs == 0 {
		t.Errorf("no sync in %v of %d appends with SyncEvery(%v)", time.Since(start), n, d)
	}
	// The last record becomes durable without a Sync call.
	deadline := time.Now().Add(30 * time.Second)
	for !syncedTo(l, last) && time.Now().Before(deadline) {
		time.Sleep(d / 4)
	}
	if !syncedTo(l, last) {
		t.Fatalf("the last record appended is not durable 30 s later with SyncEvery(%v)", d)
	}
	// Idle: nothing to sync, no sync.
	idle := fsys.SyncCount()
	time.Sleep(20 * d)
	if extra := fsys.SyncCount() - idle; extra != 0 {
		t.Errorf("%d syncs of an idle log in %v", extra, 20*d)
	}
	t.Logf("%d appends in %v: %d syncs with SyncEvery(%v)", n, time.Since(start), syncs, d)
}

// BenchmarkSyncEveryLag measures how long a record appended under
// SyncEvery(d) takes to become durable (a sync round covering it): about
// d/2 on average plus the time a sync takes, never much more than d plus
// that. Each op appends one record and waits for it to be durable;
// "max-ms" is the longest wait.
func BenchmarkSyncEveryLag(b *testing.B) {
	for _, d := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond} {
		b.Run(d.String(), func(b *testing.B) {
			l := mustOpen(b, b.TempDir(), WithSync(SyncEvery(d)))
			defer mustClose(b, l)
			var worst time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := l.Append([]byte("a record under SyncEvery")); err != nil {
					b.Fatal(err)
				}
				at := endOf(l)
				for !syncedTo(l, at) {
					time.Sleep(50 * time.Microsecond)
				}
				worst = max(worst, time.Since(t0))
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
		})
	}
}
