package wal

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRotationSyncsSealedAsleep: the background sync round after a
// rotation syncs the sealed segment through SyncAsleep (its writeback
// waited for asleep), before Close.
func TestRotationSyncsSealedAsleep(t *testing.T) {
	var mu sync.Mutex
	var synced []string
	hook := func(path string) {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, filepath.Base(path))
	}
	sealedSyncHook.Store(&hook)
	defer sealedSyncHook.Store(nil)

	l := mustOpen(t, t.TempDir(), WithSegmentSize(1<<20))
	rec := make([]byte, 1000)
	for l.Stats().Segments < 2 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the sealed segment's sync", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(synced, segment.Name(1))
	})
	mustClose(t, l)
}
