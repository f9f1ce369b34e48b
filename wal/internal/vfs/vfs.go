// Package vfs is the small file-system interface the log does all its I/O
// through, so that tests can inject faults (failed writes and syncs, short
// writes, a full disk) without hoping for them.
//
// Memory mapping needs a real file, so File exposes it (OS); every
// other operation — allocation, writes, syncs, renames, removals — goes
// through the interface and can fail on demand.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/walpub/walpub/internal/fsutil"
)

// FS is the subset of the operating system's file API the log uses.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	MkdirAll(name string, perm fs.FileMode) error
	// SyncDir makes the directory's entries (creations, renames,
	// removals) durable.
	SyncDir(name string) error
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Name() string
	// OS returns the operating-system file, for memory mapping.
	OS() *os.File
	Stat() (fs.FileInfo, error)
	Truncate(size int64) error
	// Sync makes the file's data durable (fdatasync on Linux). It also
	// writes back pages dirtied through a shared memory mapping.
	Sync() error
	// Allocate reserves size bytes of disk for the file, so that stores
	// into a mapping of it can never fail for want of space. Where the
	// file system cannot preallocate it writes the zeros out instead.
	Allocate(size int64) error
	// Reserve allocates disk for the file's first size bytes without
	// changing its size, so that writes there later need no new space:
	// a file rewritten in place on a disk that may be full when it is.
	// It does nothing where the file system cannot preallocate.
	Reserve(size int64) error
	// WriteVAt writes the buffers one after the other at off, as one
	// WriteAt of their concatenation would (pwritev on Linux: the bytes
	// go from where they are into the page cache, with no copy to join
	// them first). It returns the bytes written, all of them or an
	// error. It may change the elements of bufs.
	WriteVAt(bufs [][]byte, off int64) (int, error)
}

// OS is the real file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }

func (osFS) SyncDir(name string) error { return fsutil.SyncDir(name) }

type osFile struct{ *os.File }

func (f osFile) OS() *os.File              { return f.File }
func (f osFile) Sync() error               { return datasync(f.File) }
func (f osFile) Allocate(size int64) error { return allocate(f.File, size) }
func (f osFile) Reserve(size int64) error  { return reserve(f.File, size) }

func (f osFile) WriteVAt(bufs [][]byte, off int64) (int, error) { return writev(f.File, bufs, off) }

// writeZeros extends f to size by writing zeros: the fallback where the
// file system has no fallocate. The file is never left sparse.
func writeZeros(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := fi.Size(); off < size; {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// ErrInjected is the error a Faulty file system returns for an injected
// failure.
var ErrInjected = errors.New("vfs: injected fault")

// Faulty wraps an FS and fails chosen operations on demand. It is safe for
// concurrent use.
type Faulty struct {
	FS FS

	mu          sync.Mutex
	failSync    int   // fail the next n Syncs
	failWrite   int   // fail the next n WriteAts or WriteVAts (after a short write)
	failAlloc   int   // fail the next n Allocates with ENOSPC
	failRename  int   // fail the next n Renames
	failRemove  int   // fail the next n Removes
	failReserve int   // fail the next n Reserves
	writeErr    error // error for failed writes (default ErrInjected)
	reserveErr  error // error for failed Reserves (default ErrInjected)
	open        int   // files opened and not closed
	Syncs       int   // Syncs performed (successful or not)
	Allocations int
	// MostBuffers is the most buffers one WriteVAt was given.
	MostBuffers int
	// WriteVs counts the WriteVAt calls.
	WriteVs int
	// WriteVEnd is where the bytes the last WriteVAt was given end.
	WriteVEnd int64
}

// LastWriteVEnd returns WriteVEnd, read under the lock.
func (f *Faulty) LastWriteVEnd() int64 { f.mu.Lock(); defer f.mu.Unlock(); return f.WriteVEnd }

// WriteVCount returns WriteVs, read under the lock.
func (f *Faulty) WriteVCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.WriteVs }

// SyncCount returns Syncs, read under the lock (for tests that read it while
// the log runs).
func (f *Faulty) SyncCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.Syncs }

// FailNextSyncs makes the next n File.Sync or SyncDir calls fail.
func (f *Faulty) FailNextSyncs(n int) { f.mu.Lock(); f.failSync = n; f.mu.Unlock() }

// FailNextWrites makes the next n WriteAt or WriteVAt calls write half
// their bytes and fail with err (ErrInjected when nil).
func (f *Faulty) FailNextWrites(n int, err error) {
	f.mu.Lock()
	f.failWrite, f.writeErr = n, err
	f.mu.Unlock()
}

// FailNextAllocates makes the next n Allocate calls fail with ENOSPC.
func (f *Faulty) FailNextAllocates(n int) { f.mu.Lock(); f.failAlloc = n; f.mu.Unlock() }

// FailNextReserves makes the next n Reserve calls fail with err
// (ErrInjected when nil).
func (f *Faulty) FailNextReserves(n int, err error) {
	f.mu.Lock()
	f.failReserve, f.reserveErr = n, err
	f.mu.Unlock()
}

// OpenFiles returns how many files OpenFile opened that are not closed
// yet: a test's check for a leaked descriptor.
func (f *Faulty) OpenFiles() int { f.mu.Lock(); defer f.mu.Unlock(); return f.open }

// FailNextRenames makes the next n Rename calls fail.
func (f *Faulty) FailNextRenames(n int) { f.mu.Lock(); f.failRename = n; f.mu.Unlock() }

// FailNextRemoves makes the next n Remove calls fail.
func (f *Faulty) FailNextRemoves(n int) { f.mu.Lock(); f.failRemove = n; f.mu.Unlock() }

func (f *Faulty) take(counter *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *counter > 0 {
		*counter--
		return true
	}
	return false
}

func (f *Faulty) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.open++
	f.mu.Unlock()
	return &faultyFile{File: file, fs: f}, nil
}

func (f *Faulty) Remove(name string) error {
	if f.take(&f.failRemove) {
		return &os.PathError{Op: "remove", Path: name, Err: ErrInjected}
	}
	return f.FS.Remove(name)
}

func (f *Faulty) ReadDir(name string) ([]fs.DirEntry, error)   { return f.FS.ReadDir(name) }
func (f *Faulty) MkdirAll(name string, perm fs.FileMode) error { return f.FS.MkdirAll(name, perm) }

func (f *Faulty) Rename(oldpath, newpath string) error {
	if f.take(&f.failRename) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: ErrInjected}
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f *Faulty) SyncDir(name string) error {
	f.mu.Lock()
	f.Syncs++
	f.mu.Unlock()
	if f.take(&f.failSync) {
		return &os.PathError{Op: "fsync", Path: name, Err: ErrInjected}
	}
	return f.FS.SyncDir(name)
}

type faultyFile struct {
	File
	fs     *Faulty
	closed bool // under fs.mu
}

func (f *faultyFile) Close() error {
	f.fs.mu.Lock()
	if !f.closed {
		f.closed = true
		f.fs.open--
	}
	f.fs.mu.Unlock()
	return f.File.Close()
}

func (f *faultyFile) Reserve(size int64) error {
	f.fs.mu.Lock()
	err := f.fs.reserveErr
	f.fs.mu.Unlock()
	if f.fs.take(&f.fs.failReserve) {
		if err == nil {
			err = ErrInjected
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
	return f.File.Reserve(size)
}

func (f *faultyFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.Syncs++
	f.fs.mu.Unlock()
	if f.fs.take(&f.fs.failSync) {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: ErrInjected}
	}
	return f.File.Sync()
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.take(&f.fs.failWrite) {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, f.writeError()
	}
	return f.File.WriteAt(p, off)
}

func (f *faultyFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	f.fs.mu.Lock()
	f.fs.MostBuffers = max(f.fs.MostBuffers, len(bufs))
	f.fs.WriteVs++
	f.fs.WriteVEnd = off
	for _, b := range bufs {
		f.fs.WriteVEnd += int64(len(b))
	}
	f.fs.mu.Unlock()
	if f.fs.take(&f.fs.failWrite) {
		// Half the bytes, from the start: the buffers holding them, the
		// last one cut.
		half := 0
		for _, b := range bufs {
			half += len(b)
		}
		half /= 2
		var part [][]byte
		for _, b := range bufs {
			if half == 0 {
				break
			}
			b = b[:min(len(b), half)]
			part = append(part, b)
			half -= len(b)
		}
		n, _ := f.File.WriteVAt(part, off)
		return n, f.writeError()
	}
	return f.File.WriteVAt(bufs, off)
}

func (f *faultyFile) writeError() error {
	err := f.fs.writeErr
	if err == nil {
		err = ErrInjected
	}
	return &os.PathError{Op: "write", Path: f.Name(), Err: err}
}

func (f *faultyFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	f.fs.Allocations++
	f.fs.mu.Unlock()
	if f.fs.take(&f.fs.failAlloc) {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Allocate(size)
}

// Join is filepath.Join, here so callers need not import both.
func Join(elem ...string) string { return filepath.Join(elem...) }
