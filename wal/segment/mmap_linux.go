//go:build linux

package segment

import "golang.org/x/sys/unix"

const pageSize = 4096

func pageRange(m []byte, start, end int64) []byte {
	start &^= pageSize - 1
	end = min((end+pageSize-1)&^(pageSize-1), int64(len(m)))
	if start >= end {
		return nil
	}
	return m[start:end]
}

func populate(m []byte, start, end int64) {
	if b := pageRange(m, start, end); b != nil {
		_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	}
}

func release(m []byte, start, end int64) {
	if b := pageRange(m, start, end); b != nil {
		_ = unix.Madvise(b, unix.MADV_DONTNEED)
	}
}
