package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

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
		st, ok := pageStat(int(f.Fd()))
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
