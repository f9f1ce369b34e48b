package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/edsrzf/mmap-go"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// File is one segment file, mapped in full. A File is not safe for
// concurrent use except as the log arranges: one writer appending past the
// data that readers read.
type File struct {
	Path   string
	Header Header
	f      vfs.File
	m      mmap.MMap
	small  bool // see SmallPages
}

// Create creates the file at path with size bytes, allocated in full before
// it is mapped read-write. The header is not written: the file is all
// zeros until Init. Whatever fails, nothing is left behind.
func Create(fsys vfs.FS, path string, size int64, mode fs.FileMode) (_ *File, err error) {
	if size < HeaderSize || size > MaxSize {
		return nil, fmt.Errorf("segment: invalid size %d", size)
	}
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			fsys.Remove(path)
		}
	}()
	if err := f.Allocate(size); err != nil {
		return nil, err
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	return &File{Path: path, f: f, m: m}, nil
}

// Init writes the header h (with h.Size set to the file's size, and
// h.Version to Version where it is 0) into the mapping.
func (s *File) Init(h Header) {
	h.Size, h.Version = int64(len(s.m)), h.formatVersion()
	PutHeader(s.m[:HeaderSize], h)
	s.Header = h
}

// WriteHeader writes the header h (with h.Size and h.Version set as Init
// sets them) through the file, as Init does through the mapping: the first store
// into a mapped page the process has not touched takes a fault that
// reads the pages around it into the page cache (zeros, for the unwritten
// extents of a fresh file), which a write of the header's 64 bytes does
// not.
func (s *File) WriteHeader(h Header) error {
	h.Size, h.Version = int64(len(s.m)), h.formatVersion()
	var b [HeaderSize]byte
	PutHeader(b[:], h)
	if err := s.WriteAt(b[:], 0); err != nil {
		return err
	}
	s.Header = h
	return nil
}

// Open maps an existing segment file and decodes its header. A writable
// file is allocated in full first (fallocate; see vfs.File.Allocate), as
// Create does. A file whose
// size is not the size its header names is reported as an *Error, with
// the File still returned (mapped) so that a caller may inspect or repair
// it; any other failure returns a nil File.
func Open(fsys vfs.FS, path string, writable bool) (*File, error) {
	flag, prot := os.O_RDONLY, mmap.RDONLY
	if writable {
		flag, prot = os.O_RDWR, mmap.RDWR
	}
	f, size, err := openSized(fsys, path, flag)
	if err != nil {
		return nil, err
	}
	if size < HeaderSize {
		f.Close()
		return nil, errAt(0, "file is %d bytes, shorter than a segment header", size)
	}
	if size > MaxSize {
		f.Close()
		return nil, errAt(0, "file is %d bytes, larger than any segment", size)
	}
	if writable {
		// The file may be sparse (copied with holes, restored from a
		// backup): a store into a hole of the mapping on a full disk
		// would be a SIGBUS. Allocated here, the full disk is ENOSPC.
		if err := f.Allocate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	m, err := mmap.MapRegion(f.OS(), int(size), prot, 0, 0)
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	s := &File{Path: path, f: f, m: m}
	h, err := DecodeHeader(m)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Header = h
	if h.Size != size {
		return s, errAt(size, "file is %d bytes but its header says %d", size, h.Size)
	}
	return s, nil
}

// openSized opens the file at path with flag and returns it with its
// size.
func openSized(fsys vfs.FS, path string, flag int) (vfs.File, int64, error) {
	f, err := fsys.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Map maps the file at path read-only, whole, whatever it holds: unlike
// Open it checks no header and no size, for a reader of damaged files.
// An empty file is a File with no bytes.
func Map(fsys vfs.FS, path string) (*File, error) {
	f, size, err := openSized(fsys, path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	s := &File{Path: path, f: f}
	if size == 0 {
		return s, nil
	}
	if s.m, err = mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	return s, nil
}

// WriteAt writes b at off through the file rather than the mapping: for
// large appends, the kernel's write path fills fresh page-cache pages
// without first faulting them in through the mapping. The mapping sees
// the same pages.
func (s *File) WriteAt(b []byte, off int64) error {
	n, err := s.f.WriteAt(b, off)
	if err == nil && n != len(b) {
		err = fmt.Errorf("segment: short write to %s: %d of %d bytes", s.Path, n, len(b))
	}
	return err
}

// WriteV writes the buffers one after the other at off through the file
// (pwritev), as WriteAt writes their concatenation, without joining them
// first: a large payload goes from the caller's memory into the page
// cache with no copy of its own. It may change the elements of bufs.
func (s *File) WriteV(bufs [][]byte, off int64) error {
	want := 0
	for _, b := range bufs {
		want += len(b)
	}
	n, err := s.f.WriteVAt(bufs, off)
	if err == nil && n != want {
		err = fmt.Errorf("segment: short write to %s: %d of %d bytes", s.Path, n, want)
	}
	return err
}

// ReadAt reads len(b) bytes at off through the file rather than the
// mapping (pread): the pages are copied out of the page cache without
// being mapped into the process, and an I/O error, or the file cut short,
// is an error instead of a fault. Reading fewer bytes is an error.
func (s *File) ReadAt(b []byte, off int64) error {
	n, err := s.f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("segment: read %s: %d of %d bytes at offset %d: %w", s.Path, n, len(b), off, err)
}

// DataFrom returns the offset of the first byte at or after off that the
// file system holds data for, or the file's size if it holds none (the
// rest is unwritten preallocation, which reads as zeros). Where it cannot
// tell, it returns off.
func (s *File) DataFrom(off int64) int64 { return dataFrom(s.f.OS(), off, s.Size()) }

// HoleFrom returns the offset of the first byte at or after off that the
// file system holds no data for (unwritten preallocation), or the file's
// size. Where it cannot tell, it returns the file's size.
func (s *File) HoleFrom(off int64) int64 { return holeFrom(s.f.OS(), off, s.Size()) }

// Bytes returns the whole mapping.
func (s *File) Bytes() []byte { return s.m }

// Size is the file's size.
func (s *File) Size() int64 { return int64(len(s.m)) }

// Stat returns the file's information.
func (s *File) Stat() (fs.FileInfo, error) { return s.f.Stat() }

// Sync makes everything stored into the mapping durable.
func (s *File) Sync() error { return s.f.Sync() }

// SyncAsleep is Sync for a file no longer written to that may hold many
// pages to write back (a sealed segment, a compacted copy): it waits for
// their writeback asleep rather than blocked in the system call
// (vfs.AwaitWriteback), then syncs.
func (s *File) SyncAsleep() error {
	vfs.AwaitWriteback(s.f.OS())
	return s.f.Sync()
}

// WriteZeros writes zeros over [off, off+n), where the log holds nothing
// (ahead of its tail), with one pwrite per ZeroChunk. It goes to the file
// itself, not through the file system layer the file was opened with
// (vfs.FS): the range reads as zeros before and after, so a test's model
// of what a crash keeps, or of which write fails, has nothing to see.
func (s *File) WriteZeros(off, n int64) error {
	for n > 0 {
		c := min(n, int64(len(zeroChunkBuf)))
		if _, err := s.f.OS().WriteAt(zeroChunkBuf[:c], off); err != nil {
			return &os.PathError{Op: "write zeros", Path: s.Path, Err: err}
		}
		off, n = off+c, n-c
	}
	return nil
}

// ZeroChunk is the most WriteZeros writes with one pwrite.
const ZeroChunk = 256 << 10

// zeroChunkBuf is zeros for WriteZeros, never written to.
var zeroChunkBuf = make([]byte, ZeroChunk)

// WriteBack writes the dirty pages of [off, off+n) back to the device and
// waits for them, asleep, without syncing the file: nothing is made
// durable, and a writeback error is left to the next Sync
// (vfs.WriteBack).
func (s *File) WriteBack(off, n int64) { vfs.WriteBack(s.f.OS(), off, n) }

// Populate pre-faults the pages of [start, end), off the append path. It
// changes no data and dirties no page. Errors are ignored: it is an
// optimisation only.
func (s *File) Populate(start, end int64) { populate(s.m, start, end) }

// PopulateWrite pre-faults the pages of [start, end) for writing, off the
// append path, so that the first store to each takes no fault at all. It
// changes no data but dirties the pages: a sync that comes before they are
// written writes their zeros back (and a store after it faults again).
// Errors are ignored: it is an optimisation only.
func (s *File) PopulateWrite(start, end int64) { populateWrite(s.m, start, end) }

// SmallPages sets how the pages the mapping faults in from now on come
// into the page cache: with small set, a page at a time (MADV_RANDOM: no
// read-around); otherwise as the kernel likes, in large folios of up to
// hundreds of KiB, which makes faults fewer and cheaper. A large folio
// costs a sync all its bytes, though: the first store after a sync
// dirties the whole folio (the file system's page_mkwrite works a folio
// at a time), so a sync after a few KiB of records writes back every page
// of the folio around them. Where a log syncs often, its pages are best
// small. Pages already in the page cache keep their size. Not safe for
// concurrent use.
func (s *File) SmallPages(small bool) {
	if small != s.small {
		s.small = small
		smallPages(s.m, small)
	}
}

// Release drops the pages of [start, end) from the process's resident set;
// the data stays in the page cache and on disk.
func (s *File) Release(start, end int64) { release(s.m, start, end) }

// DropCache drops the pages of [start, end) — start rounded up to a page —
// from the process's resident set and, those that are clean, from the page
// cache. It is for the unwritten preallocation after a segment's data,
// whose zero pages the log faulted in ahead of its writes: a file system
// counts cached pages of unwritten extents as data (DataFrom, HoleFrom),
// so until they go, every Open reads them to check that they are zeros.
// Errors are ignored: it is an optimisation only.
func (s *File) DropCache(start, end int64) { dropCache(s.f.OS(), s.m, start, end) }

// Close unmaps and closes the file. Stores made through the mapping stay
// in the page cache; Close does not sync.
func (s *File) Close() error {
	var err error
	if s.m != nil {
		err = s.m.Unmap()
		s.m = nil
	}
	if s.f != nil {
		err = errors.Join(err, s.f.Close())
		s.f = nil
	}
	return err
}
