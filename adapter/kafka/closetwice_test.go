package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
)

// TestSecondCloseHonoursItsCtx: Close's documentation says later calls
// wait for the first to finish, or for their own ctx. A second Close while
// the first is still draining (the broker unreachable) returns when its
// own ctx ends, the first still running.
func TestSecondCloseHonoursItsCtx(t *testing.T) {
	p, _ := newTestProducer(t, fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t)))
	ctx := ctxTimeout(t, 60*time.Second)
	writeRecords(t, ctx, p, 10, 1, 10)

	long, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	first := make(chan error, 1)
	go func() { first <- p.Close(long) }()
	for !p.closeStarted.Load() { // the first Close is draining
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() { second <- p.Close(short) }()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Close: %v, want its ctx's DeadlineExceeded", err)
		}
		select {
		case err := <-first:
			t.Fatalf("the first Close returned (%v) before it was cancelled", err)
		default:
		}
	case <-time.After(20 * time.Second):
		cancelFirst()
		<-first
		t.Fatal("the second Close, its ctx ended, still waited for the first")
	}
	cancelFirst()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first Close: %v, want context.Canceled", err)
	}
}
