//go:build !linux

package segment

import "os"

func populate(m []byte, start, end int64) {}

func populateWrite(m []byte, start, end int64) {}

func release(m []byte, start, end int64) {}

func dropCache(f *os.File, m []byte, start, end int64) {}

func smallPages(m []byte, small bool) {}

func dataFrom(f *os.File, off, size int64) int64 { return off }

func holeFrom(f *os.File, off, size int64) int64 { return size }
