package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestAwaitWriteback: the dirty pages of a file written through the page
// cache are written back, none left dirty or in flight, when
// AwaitWriteback returns; a file with fewer than awaitMin dirty pages is
// left as it is. Skipped where the file system or the kernel keeps no such
// counts (tmpfs, a kernel without cachestat).
func TestAwaitWriteback(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, which never writes back")
	}
	write := func(name string, size int) *os.File {
		t.Helper()
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i)
		}
		for off := 0; off < size; off += len(buf) {
			if _, err := f.WriteAt(buf[:min(len(buf), size-off)], int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		return f
	}
	stat := func(f *os.File) unix.Cachestat_t {
		t.Helper()
		st, ok := pageStat(int(f.Fd()), 0, 0)
		if !ok {
			t.Skip("no cachestat in this kernel")
		}
		return st
	}

	small := write("small", (awaitMin/2)*4096)
	before := stat(small)
	if naps := AwaitWriteback(small); naps != 0 {
		t.Errorf("a file of %d dirty pages: %d naps, want none", before.Dirty, naps)
	}
	if after := stat(small); after.Dirty+after.Writeback < before.Dirty {
		t.Errorf("a file of %d dirty pages: written back (%+v)", before.Dirty, after)
	}

	big := write("big", 32<<20)
	if st := stat(big); st.Dirty+st.Writeback < awaitMin {
		t.Skipf("32 MiB written, %d pages dirty: the file system writes through", st.Dirty)
	}
	naps := AwaitWriteback(big)
	if st := stat(big); st.Dirty != 0 || st.Writeback != 0 {
		t.Fatalf("after AwaitWriteback (%d naps): %d pages dirty, %d in flight; want none", naps, st.Dirty, st.Writeback)
	}
	t.Logf("32 MiB written back in %d naps", naps)
}

// TestReserve: Reserve takes the space of a file's first bytes without
// changing its size, so that writing them later succeeds on a file system
// that has filled up meanwhile. Without it the write fails (asserted, so
// that the test shows the disk was full).
func TestReserve(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "256k")
	for _, reserve := range []bool{true, false} {
		f, err := os.OpenFile(filepath.Join(mnt, fmt.Sprint("file-", reserve)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if reserve {
			if err := (osFile{f}).Reserve(1024); err != nil {
				t.Fatal(err)
			}
			if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
				t.Fatalf("after Reserve the file has %v bytes (%v), want 0", fi.Size(), err)
			}
		}
		filler := filepath.Join(mnt, "filler")
		if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling the file system: %v, want ENOSPC", err)
		}
		_, err = f.WriteAt(make([]byte, 64), 512)
		switch {
		case reserve && err != nil:
			t.Fatalf("writing reserved bytes on a full file system: %v", err)
		case !reserve && !errors.Is(err, syscall.ENOSPC):
			t.Fatalf("writing unreserved bytes on a full file system: %v, want ENOSPC", err)
		}
		f.Close()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeWriteback models a device that finishes a started range's
// writeback after polls looks at it, and records what was asked of it.
type fakeWriteback struct {
	polls    int
	started  [][2]int64    // the ranges started, in order
	left     map[int64]int // range start -> looks left before its writeback is done
	maxAhead int64         // the most bytes in flight just after a start
	never    bool          // writeback never finishes
	t        *testing.T
}

func (w *fakeWriteback) start(off, n int64) error {
	w.started = append(w.started, [2]int64{off, n})
	w.left[off] = w.polls
	var ahead int64
	for _, r := range w.started {
		if w.left[r[0]] > 0 {
			ahead += r[1]
		}
	}
	w.maxAhead = max(w.maxAhead, ahead)
	return nil
}

func (w *fakeWriteback) inFlight(off, n int64) (uint64, bool) {
	l, ok := w.left[off]
	if !ok {
		w.t.Errorf("waited for [%d, +%d), which was never started", off, n)
		return 0, true
	}
	if l == 0 {
		return 0, true
	}
	if !w.never {
		w.left[off] = l - 1
	}
	return uint64(n / 4096), true
}

// TestAwaitChunks: AwaitWriteback starts a file's writeback a chunk at a
// time, in order, with at most awaitDepth chunks in flight, and returns
// with none in flight. Started whole, a sealed segment's writeback (64
// MiB) queues ahead of every journal commit on the device: a directory
// sync behind it took 10 to 30 ms instead of under 1, and rotations, which
// wait for the last rotation's rename to be durable, stalled the writer
// for up to 50 ms a run (benchmarks, batch100-1KiB).
func TestAwaitChunks(t *testing.T) {
	for _, size := range []int64{awaitChunk, 3*awaitChunk + 4096, 6*awaitChunk + 4096, 64 << 20} {
		w := &fakeWriteback{polls: 3, left: map[int64]int{}, t: t}
		naps := awaitChunks(size, w, func(time.Duration) {}, time.Now().Add(time.Hour))
		var next int64
		for _, r := range w.started {
			if r[0] != next || r[1] != min(awaitChunk, size-next) {
				t.Fatalf("size %d: ranges started %v: [%d, +%d) does not follow on at %d", size, w.started, r[0], r[1], next)
			}
			next += r[1]
		}
		if next != size {
			t.Errorf("size %d: the ranges started end at %d", size, next)
		}
		if w.maxAhead > 8<<20 {
			t.Errorf("size %d: %d bytes in flight at once, want at most 8 MiB", size, w.maxAhead)
		}
		for off, l := range w.left {
			if l != 0 {
				t.Errorf("size %d: returned with [%d, +%d) in flight", size, off, awaitChunk)
			}
		}
		if naps == 0 {
			t.Errorf("size %d: no naps, yet every range took 3 looks", size)
		}
	}
	// A device slower than the deadline: every range is started, and
	// AwaitWriteback returns without waiting for them.
	w := &fakeWriteback{polls: 1, left: map[int64]int{}, never: true, t: t}
	awaitChunks(8*awaitChunk, w, func(time.Duration) {}, time.Now().Add(-time.Second))
	if len(w.started) != 8 {
		t.Errorf("past the deadline: %d ranges started, want 8", len(w.started))
	}
}
