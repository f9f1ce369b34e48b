package wal

import (
	"errors"
	"sync"
	"testing"
)

// TestClosed checks that after Close every method returns ErrClosed (and
// Stats its last values), and that Close stopped every goroutine the log
// started: TestMain's goleak check fails the package otherwise.
func TestClosed(t *testing.T) {
	for _, p := range []SyncPolicy{SyncNever, SyncAlways, SyncEvery(1)} {
		t.Run(p.String(), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), WithSync(p), WithCompression(CompressionZstd), WithSegmentSize(smallSeg))
			for range 40 {
				if _, err := l.Append(make([]byte, 3000)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Ack(1, 2, 3); err != nil {
				t.Fatal(err)
			}
			before := l.Stats()
			mustClose(t, l)
			if err := l.Close(); !errors.Is(err, ErrClosed) {
				t.Errorf("second Close: %v", err)
			}
			if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Append: %v", err)
			}
			if _, err := l.AppendBatch([][]byte{[]byte("x"), []byte("y")}); !errors.Is(err, ErrClosed) {
				t.Errorf("AppendBatch: %v", err)
			}
			if _, err := l.AppendBatch(nil); !errors.Is(err, ErrClosed) {
				t.Errorf("AppendBatch(nil): %v", err)
			}
			if _, err := l.Get(5); !errors.Is(err, ErrClosed) {
				t.Errorf("Get: %v", err)
			}
			if err := l.Ack(5); !errors.Is(err, ErrClosed) {
				t.Errorf("Ack: %v", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrClosed) {
				t.Errorf("Sync: %v", err)
			}
			n := 0
			for _, err := range l.Pending() {
				n++
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Pending: %v", err)
				}
			}
			if n != 1 {
				t.Errorf("Pending after Close yielded %d times, want one ErrClosed", n)
			}
			if st := l.Stats(); st.NextSeq != before.NextSeq || st.Pending != before.Pending {
				t.Errorf("Stats after Close: %+v, before %+v", st, before)
			}
		})
	}
}

// TestConcurrentClose closes a log from several goroutines at once:
// exactly one Close does the work, the others return ErrClosed.
func TestConcurrentClose(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	if _, err := l.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			errs[i] = l.Close()
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrClosed):
			t.Errorf("Close: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d Close calls succeeded, want 1: %v", ok, errs)
	}
}

// TestPendingDuringClose iterates Pending while another goroutine closes
// the log: the iteration ends with ErrClosed or completes, never faults.
func TestPendingDuringClose(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	for range 300 {
		if _, err := l.Append(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			for _, err := range l.Pending() {
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Pending: %v", err)
					}
					return
				}
			}
		}
	})
	mustClose(t, l)
	wg.Wait()
}
