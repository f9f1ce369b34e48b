//go:build unix

package wal

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/wal/internal/vfs"
)

const lockName = "LOCK"

// lockDir takes the exclusive flock of dir. flock conflicts between open
// file descriptions, so a second Open in the same process fails too.
func lockDir(fsys vfs.FS, dir string, mode os.FileMode) (vfs.File, error) {
	f, err := fsys.OpenFile(vfs.Join(dir, lockName), os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return nil, fmt.Errorf("wal: lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.OS().Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	return f, nil
}

// unlockDir releases the flock taken by lockDir and closes its file. The
// explicit unlock matters: a child process forked by another goroutine
// holds a copy of the descriptor until it execs, and closing ours alone
// would leave the lock held through that copy.
func unlockDir(f vfs.File) error {
	uerr := unix.Flock(int(f.OS().Fd()), unix.LOCK_UN)
	return errors.Join(uerr, f.Close())
}
