package wal

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// renameOrderFS records the rotation renames (a prepared file to a
// segment's name) and the syncs of the log directory, in order.
type renameOrderFS struct {
	vfs.FS
	dir    string
	mu     sync.Mutex
	events []string // "rename NAME" or "syncdir"
}

func (f *renameOrderFS) Rename(oldpath, newpath string) error {
	err := f.FS.Rename(oldpath, newpath)
	if err == nil && strings.HasPrefix(filepath.Base(oldpath), "next-") {
		f.mu.Lock()
		f.events = append(f.events, "rename "+filepath.Base(newpath))
		f.mu.Unlock()
	}
	return err
}

func (f *renameOrderFS) SyncDir(name string) error {
	err := f.FS.SyncDir(name)
	if err == nil && filepath.Clean(name) == filepath.Clean(f.dir) {
		f.mu.Lock()
		f.events = append(f.events, "syncdir")
		f.mu.Unlock()
	}
	return err
}

func (f *renameOrderFS) renames() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Count(strings.Join(f.events, "\n"), "rename ")
}

// TestRotationRenamesInOrder: a rotation renames the prepared file to the
// next segment's name only once the rename before it is durable (the log
// directory synced in between). A file system may keep any subset of the
// directory operations not yet synced at a power cut (cutFS's subset
// mode): with two renames unsynced, it could keep segment N+1's name and
// lose segment N's, and the log would open with the records after the
// hole kept and those before it lost (not a prefix), or refuse to open
// ("checkpoint missing, yet segment N is gone") until a person repaired
// it. TestPowerCut found both, about once in a hundred runs of its
// SyncEvery subtests. Here the background sync rounds, which sync the
// directory after a rotation, are held (as when rotations come faster
// than they run), so that only the rotation itself can keep the order.
func TestRotationRenamesInOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	fsys := &renameOrderFS{FS: vfs.OS, dir: dir}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithSync(SyncNever), withFS(fsys))
	release := make(chan struct{})
	var once sync.Once
	letGo := func() { once.Do(func() { close(release) }) }
	defer letGo()
	hook := func() { <-release }
	syncCapturedHook.Store(&hook)
	defer syncCapturedHook.Store(nil)
	rec := make([]byte, 3000)
	for i := 0; fsys.renames() < 5; i++ {
		if i > 1000 {
			t.Fatalf("%d rotations after %d appends", fsys.renames(), i)
		}
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	letGo()
	mustClose(t, l)
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	last := ""
	for _, e := range fsys.events {
		switch {
		case e == "syncdir":
			last = ""
		case last != "":
			t.Fatalf("%s before %s was made durable (events: %v)", e, last, fsys.events)
		default:
			last = e
		}
	}
}
