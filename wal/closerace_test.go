package wal

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestCloseRacingSyncAlwaysAppend makes Close take its final position
// while a sync round is held, appends under SyncAlways after that, and
// holds that append's own round until Close has retired the files; then
// it cuts the power (cutFS: only what was synced survives). The append
// must return ErrClosed, or nil with its record durable: a Close that let
// it in after taking its final position returned nil for a record never
// synced, its round skipping the retired file (issue 10 item 5). Each
// step waits until the one before has happened (a goroutine blocked
// where it should be, seen in its stack), not for a time.
func TestCloseRacingSyncAlwaysAppend(t *testing.T) {
	// After the compactor's first checkpoint, Close has none to write
	// (and no round of its own to run).
	l, cfs, quiet := openCutSyncAlways(t)
	closedNow := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.closed
	}
	held := make(chan struct{})    // the first round has taken its position
	release := make(chan struct{}) // ... and may go on
	rounds := 0
	hook := func() {
		rounds++
		switch rounds {
		case 1:
			close(held)
			<-release
		case 2:
			// Until Close has retired the files (with the fix, no append
			// makes this round: the late one is refused), or waits for
			// this round itself (a Close that syncs the late append).
			for !closedNow() && !goroutineIn("(*Log).Close(", "(*Log).syncTo(", "[sync.Cond.Wait") {
				time.Sleep(time.Millisecond)
			}
		}
	}
	syncCapturedHook.Store(&hook)
	defer syncCapturedHook.Store(nil)

	type result struct {
		seq uint64
		err error
	}
	first := make(chan result, 1)
	go func() {
		q, err := l.Append([]byte("before Close"))
		first <- result{q, err}
	}()
	<-held
	closeErr := make(chan error, 1)
	go func() { closeErr <- l.Close() }()
	// Close stops the background work, then takes the position its final
	// sync must reach (the first append's) and waits in syncTo for the
	// held round to reach it.
	eventually(t, "Close waiting for the held round", func() bool {
		return goroutineIn("(*Log).Close(", "(*Log).syncTo(", "[sync.Cond.Wait")
	})
	late := make(chan result, 1)
	go func() {
		q, err := l.Append([]byte("during Close"))
		late <- result{q, err}
	}()
	// The late append is refused, or writes and then waits for the held
	// round (the first append's goroutine runs that one, in doSync).
	eventually(t, "the append during Close refused or waiting for the held round", func() bool {
		return len(late) > 0 || goroutineIn("(*Log).Append(", "(*Log).syncTo(", "[sync.Cond.Wait")
	})
	close(release)
	if r := <-first; r.err != nil {
		t.Fatalf("the append before Close: %v", r.err)
	}
	res := <-late
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if rounds < 1 {
		t.Fatal("no sync round was held: the scenario did not happen")
	}
	cfs.cut()
	after := filepath.Join(t.TempDir(), "after")
	snapshot(cfs.image).write(t, after)
	l2 := mustOpen(t, after, WithSegmentSize(smallSeg), WithLogger(quiet))
	kept := l2.Stats().NextSeq - 1
	mustClose(t, l2)
	switch {
	case errors.Is(res.err, ErrClosed):
		t.Logf("the append during Close returned ErrClosed")
	case res.err != nil:
		t.Fatalf("the append during Close returned %v, want ErrClosed or nil", res.err)
	case res.seq > kept:
		t.Fatalf("the append during Close returned seq %d under SyncAlways, but only seqs through %d were synced", res.seq, kept)
	default:
		t.Logf("the append during Close returned seq %d, durable", res.seq)
	}
}

// goroutineIn reports whether a goroutine's stack names every one of
// frames; "[sync.Cond.Wait" is in the header of one blocked in a
// sync.Cond's Wait (one woken by a Broadcast, not yet run, is runnable).
func goroutineIn(frames ...string) bool {
	buf := make([]byte, 1<<20)
	for _, g := range bytes.Split(buf[:runtime.Stack(buf, true)], []byte("\n\n")) {
		if !slices.ContainsFunc(frames, func(f string) bool { return !bytes.Contains(g, []byte(f)) }) {
			return true
		}
	}
	return false
}

// openCutSyncAlways opens a SyncAlways log on a cutFS (only what was
// synced survives cfs.cut) with a quiet logger, and waits for the
// compactor's first checkpoint. The test closes the log.
func openCutSyncAlways(t *testing.T) (*Log, *cutFS, *slog.Logger) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "log")
	cfs := newCutFS(dir, 1, 0)
	t.Cleanup(cfs.close)
	l, err := Open(dir, WithSegmentSize(smallSeg), WithSync(SyncAlways), withFS(cfs), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first checkpoint", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ckptEpoch == l.ackEpoch
	})
	return l, cfs, quiet
}
