package testutil

import (
	"net"
	"sync"
	"testing"
	"time"
)

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("ab"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("%d bytes, want 800", n)
	}
}

func TestDeadAddr(t *testing.T) {
	conn, err := net.DialTimeout("tcp", DeadAddr(t), 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("something listens on the dead address")
	}
}

func TestSeed(t *testing.T) {
	const env = "WALPUB_TESTUTIL_SEED"
	t.Setenv(env, "")
	if a, b := Seed(t, env), Seed(t, env); a == b {
		t.Errorf("two random seeds are both %d", a)
	}
	t.Setenv(env, "18446744073709551615")
	if got := Seed(t, env); got != 1<<64-1 {
		t.Errorf("Seed with $%s=18446744073709551615: %d", env, got)
	}
}

// allocSink keeps TestLeastAlloc's allocations on the heap.
var allocSink []byte

// TestLeastAlloc: a call that allocates the same each time counts in
// full; an allocation only the first call makes does not.
func TestLeastAlloc(t *testing.T) {
	if n := LeastAlloc(3, func() { allocSink = make([]byte, 64<<10) }); n < 64<<10 || n > 72<<10 {
		t.Errorf("64 KiB allocated per call: LeastAlloc = %d", n)
	}
	first := true
	if n := LeastAlloc(3, func() {
		if first {
			allocSink = make([]byte, 64<<10)
			first = false
		}
	}); n > 1<<10 {
		t.Errorf("64 KiB allocated by the first call only: LeastAlloc = %d", n)
	}
}
