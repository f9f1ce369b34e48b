package wal

import (
	"errors"
	"sync"
	"testing"
)

// TestSecondCloseWaitsForFirst holds the first Close in its final sync
// round until a second Close has come in, then reopens the directory as
// soon as the second Close returns: the log must be fully closed by then
// (lock released, goroutines joined). A second Close that returned
// ErrClosed while the first still held the lock made that Open fail with
// ErrLocked.
func TestSecondCloseWaitsForFirst(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	eventually(t, "the first checkpoint", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ckptEpoch == l.ackEpoch
	})
	if _, err := l.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}

	held := make(chan struct{})        // the first Close's sync round has begun
	secondIn := make(chan struct{})    // the second Close has come in (or returned)
	var heldOnce, secondOnce sync.Once // each closed once
	letFirstGo := func() { secondOnce.Do(func() { close(secondIn) }) }
	defer letFirstGo()
	hook := func() {
		l.mu.Lock()
		closing := l.closing
		l.mu.Unlock()
		if closing {
			heldOnce.Do(func() {
				close(held)
				<-secondIn
			})
		}
	}
	syncCapturedHook.Store(&hook)
	defer syncCapturedHook.Store(nil)
	waiting := func() { letFirstGo() }
	closeWaitHook.Store(&waiting)
	defer closeWaitHook.Store(nil)

	firstErr := make(chan error, 1)
	go func() { firstErr <- l.Close() }()
	select {
	case <-held:
	case err := <-firstErr:
		t.Fatalf("the first Close (%v) ran no sync round to hold: the scenario did not happen", err)
	}
	err := l.Close()
	letFirstGo() // whether or not the second Close waited
	if !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	// Right after the second Close returned: no wait for the first.
	l2, oerr := Open(dir, WithSegmentSize(smallSeg))
	if oerr != nil {
		t.Errorf("Open right after the second Close returned: %v", oerr)
	}
	if err := <-firstErr; err != nil {
		t.Errorf("first Close: %v", err)
	}
	if oerr == nil {
		if n := l2.Stats().NextSeq; n != 2 {
			t.Errorf("reopened log's next seq %d, want 2", n)
		}
		mustClose(t, l2)
	}
}
