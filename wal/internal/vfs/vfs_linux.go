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

// AwaitWriteback starts the writeback awaitChunk bytes at a time, with at
// most awaitDepth chunks in flight: 8 MiB queued on the device at most.
// Started whole, a sealed segment's writeback (64 MiB) queued ahead of
// every journal commit on the device, and a sync of the log directory
// behind it took 10 to 30 ms instead of under one; a rotation, which
// waits for the rename before it to be durable, stalled the writer that
// long. Fewer bytes in flight write back more slowly: a 256 MiB file went
// back at about 2.9 GB/s started whole, 2.5 GB/s so, 0.9 GB/s a MiB at a
// time.
const (
	awaitChunk = 2 << 20
	awaitDepth = 4
)

// AwaitWriteback starts writing f's dirty pages back to the device
// (sync_file_range), a chunk at a time (see awaitChunk), and waits,
// asleep, while any are in flight, counting them with cachestat. It
// returns the naps it took. It returns at once, having done nothing,
// where fewer than awaitMin of f's pages are dirty or under writeback, or
// where the kernel lacks either call; and it stops waiting once no page is
// in flight, even if some are still dirty (pages the writeback skipped:
// the fdatasync after writes them). It changes no data and makes nothing
// durable; it leaves the fdatasync after it little to wait for.
//
// A goroutine blocked in fdatasync holds one of the process's GOMAXPROCS
// places to run Go code for the whole device write (tens of milliseconds
// for a 64 MiB segment); the runtime takes it back for the others only
// when it next looks, up to 10 ms later, while they wait. Asleep, the
// waiting goroutine holds none.
func AwaitWriteback(f *os.File) (naps int) {
	fd := int(f.Fd())
	defer runtime.KeepAlive(f)
	st, ok := pageStat(fd, 0, 0)
	if !ok || st.Dirty+st.Writeback < awaitMin {
		return 0
	}
	var fst unix.Stat_t
	if unix.Fstat(fd, &fst) != nil {
		return 0
	}
	return awaitChunks(fst.Size, fdWriteback(fd), time.Sleep, time.Now().Add(awaitLimit))
}

// WriteBack starts writing f's dirty pages in [off, off+n) back to the
// device (sync_file_range) and waits, asleep, while any of them are in
// flight, as AwaitWriteback does, for at most awaitLimit. It makes nothing
// durable, changes no data, and leaves any writeback error to the next
// fdatasync of f: it waits by counting pages (cachestat), not with
// sync_file_range's SYNC_FILE_RANGE_WAIT_AFTER, which would take the error
// for itself.
func WriteBack(f *os.File, off, n int64) {
	defer runtime.KeepAlive(f)
	wb := fdWriteback(f.Fd())
	if wb.start(off, n) == nil {
		awaitRange(wb, off, n, time.Sleep, time.Now().Add(awaitLimit))
	}
}

// writeback is what AwaitWriteback asks of the kernel about one file:
// start writing a range back, and count the range's pages in flight.
type writeback interface {
	start(off, n int64) error
	inFlight(off, n int64) (pages uint64, ok bool)
}

// fdWriteback is the writeback of an open file.
type fdWriteback int

func (fd fdWriteback) start(off, n int64) error {
	return unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

func (fd fdWriteback) inFlight(off, n int64) (uint64, bool) {
	st, ok := pageStat(int(fd), off, n)
	return st.Writeback, ok
}

// awaitChunks starts the writeback of a file of size bytes a chunk at a
// time, in order, each once the chunk awaitDepth before it has none in
// flight, and then waits until the last ones have none. Past deadline it
// waits no more (the chunks left are still started); a failed start ends
// it.
func awaitChunks(size int64, wb writeback, sleep func(time.Duration), deadline time.Time) (naps int) {
	chunk := func(off int64) int64 { return min(awaitChunk, size-off) }
	var started []int64 // chunks started and not yet waited for, oldest first
	for off := int64(0); off < size; off += chunk(off) {
		if len(started) == awaitDepth {
			naps += awaitRange(wb, started[0], chunk(started[0]), sleep, deadline)
			started = started[1:]
		}
		if wb.start(off, chunk(off)) != nil {
			return naps
		}
		started = append(started, off)
	}
	for _, off := range started {
		naps += awaitRange(wb, off, chunk(off), sleep, deadline)
	}
	return naps
}

// awaitRange naps until no page of [off, off+n) is in flight, the count
// fails, or deadline has passed, and returns the naps it took.
func awaitRange(wb writeback, off, n int64, sleep func(time.Duration), deadline time.Time) (naps int) {
	for nap := 50 * time.Microsecond; ; nap = min(2*nap, time.Millisecond) {
		if c, ok := wb.inFlight(off, n); !ok || c == 0 || time.Now().After(deadline) {
			return naps
		}
		sleep(nap)
		naps++
	}
}

// pageStat returns the page-cache counts of [off, off+n) of fd's file;
// n 0: to its end.
func pageStat(fd int, off, n int64) (unix.Cachestat_t, bool) {
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(fd), &unix.CachestatRange{Off: uint64(off), Len: uint64(n)}, &st, 0)
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
