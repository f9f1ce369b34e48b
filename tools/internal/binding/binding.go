// Package binding reads and writes where a walpub journal's records are
// bound: the file File in the journal directory names the brokers the
// records were journaled for (sorted, comma-separated, one line), or
// Embedded for walpub's in-memory broker. walpub refuses to send records
// to a place other than the one they are bound to (the embedded broker
// would confirm and forget records meant for a real one), and walcat's
// import-hop, which adds records meant for a real broker, keeps a journal
// bound to the embedded broker from taking them.
package binding

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/internal/fsutil"
)

const (
	// File names the binding in the journal directory.
	File = "walpub-target"
	// Embedded is the binding of records journaled for walpub's
	// embedded broker.
	Embedded = "embedded"
)

// ErrBusy is returned by Lock when another process holds the lock.
var ErrBusy = errors.New("binding: the journal's binding is locked by another process")

// Lock takes an exclusive lock of dir's binding (a flock of File.lock,
// the directory made if missing) and returns its release; ErrBusy if
// another process holds it. Whoever reads a binding to decide what
// records may go where holds the lock until it is done with the journal,
// so that no other run rebinds it meanwhile.
func Lock(dir string) (unlock func(), err error) {
	// The journal's directory is made here, before the log is opened in
	// it: its name is synced into its parent as wal.Open does.
	if err := fsutil.MkdirAllSynced(dir, 0o700, os.MkdirAll, fsutil.SyncDir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, File+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Read returns dir's binding, "" if it has none.
func Read(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Write replaces dir's binding atomically (write, sync, rename, sync the
// directory).
func Write(dir, binding string) error {
	tmp := filepath.Join(dir, File+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(binding + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, File))
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	return err
}

// Remove deletes dir's binding, if it has one: the journal is then bound
// to no place walpub knows, and walpub's embedded broker refuses its
// records until a run for a real broker binds it.
func Remove(dir string) error {
	err := os.Remove(filepath.Join(dir, File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	return err
}
