// Package fsutil holds the file-system steps the module's packages share.
package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs the directory dir, so that the names created, renamed
// or removed in it are on stable storage.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAllSynced creates dir and its missing parents with mkdirAll (an
// os.MkdirAll) and mode perm, then syncs, with syncDir, the directory
// holding each one it created: a new directory's name is an entry of its
// parent, which a power cut may take until that is synced, and with it
// everything synced into the new directory.
func MkdirAllSynced(dir string, perm fs.FileMode, mkdirAll func(string, fs.FileMode) error, syncDir func(string) error) error {
	var made []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) || filepath.Dir(p) == p {
			break
		}
		made = append(made, p)
	}
	if err := mkdirAll(dir, perm); err != nil {
		return err
	}
	for _, p := range made {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}
