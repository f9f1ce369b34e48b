//go:build !linux

package vfs

import "os"

func datasync(f *os.File) error { return f.Sync() }

// AwaitWriteback does nothing here (see the Linux version): the sync that
// follows it does all the waiting.
func AwaitWriteback(f *os.File) (naps int) { return 0 }

// WriteBack does nothing here (see the Linux version).
func WriteBack(f *os.File, off, n int64) {}

func allocate(f *os.File, size int64) error { return writeZeros(f, size) }

// writev writes bufs one WriteAt at a time, where there is no pwritev.
func writev(f *os.File, bufs [][]byte, off int64) (int, error) {
	n := 0
	for _, b := range bufs {
		m, err := f.WriteAt(b, off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// reserve does nothing here (see the Linux version).
func reserve(f *os.File, size int64) error { return nil }
