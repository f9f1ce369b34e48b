//go:build linux

package vfs

import (
	"errors"
	"io"
	"os"
	"runtime"

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

func allocate(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
			return writeZeros(f, size)
		default:
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
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
