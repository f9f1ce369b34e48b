package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// compactorRunning reports whether l's compactor goroutine is still
// running (its frame names l as the receiver).
func compactorRunning(l *Log) bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], fmt.Appendf(nil, "(*Log).compactor(%p", l))
}

// TestPoisonStopsReclaimRetries: once a failure has poisoned the log,
// every reclaim pass returns that failure; the compactor stops at the
// first, logging no retry, instead of logging "will retry" and trying
// again every reclaimRetry until Close.
func TestPoisonStopsReclaimRetries(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	var logs testutil.SyncBuffer
	l := mustOpen(t, t.TempDir(), withFS(fsys), WithSync(SyncAlways), WithSegmentSize(smallSeg),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	checkpointWritten(t, l)
	if !compactorRunning(l) {
		t.Fatal("no compactor goroutine found for the log")
	}
	fsys.FailNextSyncs(1)
	if _, err := l.Append([]byte("not synced")); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Append with a failing sync: %v, want the injected error", err)
	}
	// A pass after the poisoning, as an Ack's or a rotation's kick would
	// start.
	l.kick(l.compactKick)
	// The deadline only bounds the test: the compactor stops at its next
	// pass, or never.
	for deadline := time.Now().Add(30 * time.Second); compactorRunning(l); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the compactor still runs 30 s after the log was poisoned; it logged %d retries",
				strings.Count(logs.String(), "will retry"))
		}
	}
	if n := strings.Count(logs.String(), "will retry"); n != 0 {
		t.Errorf("the compactor logged %d retries after the log was poisoned, want none:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "log failed"); n != 1 {
		t.Errorf("the failure was logged %d times, want once", n)
	}
	if err := l.Close(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Close: %v, want the injected error", err)
	}
}
