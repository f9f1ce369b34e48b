//go:build !linux

package walpub

import "os"

// IsTerminal reports whether f is a character device, as a terminal is
// (so is /dev/null: progress there is harmless).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
