//go:build linux

package vfs

import (
	"errors"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// awaitMin is the fewest pages dirty or under writeback for which
// AwaitWriteback starts the writeback and waits for it: for fewer an
// fdatasync has little to wait for.
const awaitMin = 256

// awaitLimit is the longest AwaitWriteback waits: a device slower than
// that finishes under the fdatasync that follows.
const awaitLimit = 5 * time.Second

// AwaitWriteback starts writing f's dirty pages back to the device
// (sync_file_range) and waits, asleep, while any are in flight, counting
// them with cachestat. It returns the naps it took. It returns at once,
// having done nothing, where fewer than awaitMin of f's pages are dirty or
// under writeback, or where the kernel lacks either call; and it stops
// waiting once no page is in flight, even if some are still dirty (pages
// the writeback skipped: the fdatasync after writes them). It changes no
// data and makes nothing durable; it leaves the fdatasync after it little
// to wait for.
//
// A goroutine blocked in fdatasync holds one of the process's GOMAXPROCS
// places to run Go code for the whole device write (tens of milliseconds
// for a 64 MiB segment); the runtime takes it back for the others only
// when it next looks, up to 10 ms later, while they wait. Asleep, the
// waiting goroutine holds none.
func AwaitWriteback(f *os.File) (naps int) {
	fd := int(f.Fd())
	defer runtime.KeepAlive(f)
	st, ok := pageStat(fd)
	if !ok || st.Dirty+st.Writeback < awaitMin {
		return 0
	}
	if unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE) != nil {
		return 0
	}
	deadline := time.Now().Add(awaitLimit)
	for nap := 100 * time.Microsecond; ; nap = min(2*nap, 2*time.Millisecond) {
		if st, ok := pageStat(fd); !ok || st.Writeback == 0 || time.Now().After(deadline) {
			return naps
		}
		time.Sleep(nap)
		naps++
	}
}

// pageStat returns the page-cache counts of the whole of fd's file.
func pageStat(fd int) (unix.Cachestat_t, bool) {
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(fd), &unix.CachestatRange{}, &st, 0)
	return st, err == nil
}

func allocate(f *os.File, size int64) error {
	ok, err := fallocate(f, 0, size)
	if !ok {
		return writeZeros(f, size)
	}
	return err
}

// fallocate calls fallocate(2) with mode for f's first size bytes,
// again when interrupted. ok is false where the file system or the
// kernel cannot preallocate.
func fallocate(f *os.File, mode uint32, size int64) (ok bool, err error) {
	for {
		err := unix.Fallocate(int(f.Fd()), mode, 0, size)
		switch {
		case err == nil:
			return true, nil
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
			return false, nil
		default:
			return true, &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
	}
}

// iovMax is the most buffers one pwritev takes (IOV_MAX).
const iovMax = 1024

// writev writes bufs at off with pwritev, as many calls as IOV_MAX and
// short writes take.
func writev(f *os.File, bufs [][]byte, off int64) (int, error) {
	fd := int(f.Fd())
	defer runtime.KeepAlive(f)
	n := 0
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return n, nil
		}
		m, err := unix.Pwritev(fd, bufs[:min(len(bufs), iovMax)], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return n, &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		n += m
		// Drop what was written: whole buffers, then the written part of
		// the next.
		for m > 0 {
			if m < len(bufs[0]) {
				bufs[0] = bufs[0][m:]
				break
			}
			m -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
}

// reserve allocates disk space for the first size bytes of f without
// changing its size (fallocate with FALLOC_FL_KEEP_SIZE), so that writes
// there later need no new space: a file rewritten in place on a disk that
// may be full when it is. It does nothing where the file system cannot
// preallocate.
func reserve(f *os.File, size int64) error {
	_, err := fallocate(f, unix.FALLOC_FL_KEEP_SIZE, size)
	return err
}
