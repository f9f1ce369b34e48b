package wal

import (
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
