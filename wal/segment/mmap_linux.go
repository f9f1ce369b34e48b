//go:build linux

package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

func pageRange(m []byte, start, end int64) []byte {
	start &^= PageSize - 1
	end = min(PageAlign(end), int64(len(m)))
	if start >= end {
		return nil
	}
	return m[start:end]
}

func populate(m []byte, start, end int64) {
	if b := pageRange(m, start, end); b != nil {
		// Read, not write: the pages come into the page cache (zeros
		// for the unwritten extents) and into the page tables without
		// being dirtied, so no zeros are ever written back and a sync
		// flushes only data. The first store to a page then costs a
		// cheap write-protect fault instead of a full one.
		_ = unix.Madvise(b, unix.MADV_POPULATE_READ)
	}
}

func populateWrite(m []byte, start, end int64) {
	if b := pageRange(m, start, end); b != nil {
		// A write fault for each page, as the first store would take:
		// the file system readies the page for writing (page_mkwrite)
		// and it is mapped writable and dirty. Kernels before 5.14 lack
		// MADV_POPULATE_WRITE: read-faulting the pages still saves the
		// store a full fault.
		if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
			_ = unix.Madvise(b, unix.MADV_POPULATE_READ)
		}
	}
}

func smallPages(m []byte, small bool) {
	advice := unix.MADV_NORMAL
	if small {
		advice = unix.MADV_RANDOM
	}
	_ = unix.Madvise(m, advice)
}

func release(m []byte, start, end int64) {
	if b := pageRange(m, start, end); b != nil {
		_ = unix.Madvise(b, unix.MADV_DONTNEED)
	}
}

func dropCache(f *os.File, m []byte, start, end int64) {
	start, end = PageAlign(start), min(end, int64(len(m)))
	if start >= end {
		return
	}
	// Unmapped from this process first: the page cache keeps mapped pages.
	_ = unix.Madvise(m[start:end], unix.MADV_DONTNEED)
	_ = unix.Fadvise(int(f.Fd()), start, end-start, unix.FADV_DONTNEED)
}

func dataFrom(f *os.File, off, size int64) int64 {
	d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO:
		return size
	case err != nil || d < off:
		return off
	}
	return min(d, size)
}

func holeFrom(f *os.File, off, size int64) int64 {
	h, err := unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
	if err != nil || h < off {
		return size
	}
	return min(h, size)
}
