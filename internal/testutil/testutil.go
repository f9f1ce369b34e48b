// Package testutil holds the small helpers the tests of several packages
// share.
package testutil

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a
// process's output or a logger's, read while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DeadPort returns a loopback port nothing listens on (a closed
// listener's), for a broker that is down or not started yet.
func DeadPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// DeadAddr is DeadPort as "127.0.0.1:port".
func DeadAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(DeadPort(t))
}

// FlipByte XORs the byte at off of the file at path with 0x5a, through the
// file (a mapping of it sees the change): flipping it again mends it.
func FlipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Seed returns the seed of a randomized test: the value of the environment
// variable env when it is set, to replay a failure, or else a random one.
// It logs the seed and how to pass it back; a value that is not a decimal
// uint64 fails the test.
func Seed(t testing.TB, env string) uint64 {
	t.Helper()
	if s := os.Getenv(env); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: not a seed: %v", env, s, err)
		}
		t.Logf("seed %d, from $%s", seed, env)
		return seed
	}
	seed := rand.Uint64()
	t.Logf("seed %d (to replay: %s=%d go test -run '^%s$')", seed, env, seed, t.Name())
	return seed
}

// VmFlags returns the VmFlags that /proc/self/smaps lists for the
// process's mapping of the file at path (nil if it has none); it skips
// the test where there is no /proc/self/smaps.
func VmFlags(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = len(f) >= 6 && f[5] == path
		case in && len(f) >= 1 && f[0] == "VmFlags:":
			return f[1:]
		}
	}
	return nil
}

// MountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends. It skips the test where mounting is not allowed.
func MountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill (%v: %s); the disk-full test needs root (CAP_SYS_ADMIN)", size, err, out)
	}
	// Registered before anything that uses the mount, so it runs last.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// LeastAlloc returns the fewest bytes the heap grew by over rounds calls of
// f (runtime.MemStats.TotalAlloc, which counts every goroutine's
// allocations): an allocation bound checked against one call could fail
// because something else in the process allocated meanwhile, or because
// the first call set up what later calls reuse. f must do the same work
// each time.
func LeastAlloc(rounds int, f func()) uint64 {
	least := ^uint64(0)
	for range rounds {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
