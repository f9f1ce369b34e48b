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
