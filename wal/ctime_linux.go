package wal

import (
	"io/fs"
	"syscall"
)

// changeTime returns fi's status change time (ctime) in nanoseconds, and
// whether fi holds one. A write, a truncation, and setting the
// modification time back all set it; nothing sets it back.
func changeTime(fi fs.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Ctim.Nano(), true
}
