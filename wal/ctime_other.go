//go:build !linux

package wal

import "io/fs"

// changeTime reports no status change time where the stat structure's
// field for it is not known (see ctime_linux.go).
func changeTime(fs.FileInfo) (int64, bool) { return 0, false }
