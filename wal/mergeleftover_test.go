package wal

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// mergeLeftoverFS, once armed, fails the first Sync of a compaction's
// copy and then the Remove of that copy, so that the copy stays on disk;
// it counts the creations of a copy that found one in the way.
type mergeLeftoverFS struct {
	vfs.FS
	armedSync, armedRemove atomic.Bool
	syncFired, removeFired atomic.Bool
	inTheWay               atomic.Int32
}

type mergeLeftoverFile struct {
	vfs.File
	fs *mergeLeftoverFS
}

func isMergeCopy(name string) bool { return strings.HasSuffix(name, ".compact"+tmpExt) }

func (f *mergeLeftoverFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if errors.Is(err, fs.ErrExist) && isMergeCopy(name) {
		f.inTheWay.Add(1)
	}
	if err != nil {
		return nil, err
	}
	return mergeLeftoverFile{file, f}, nil
}

func (f *mergeLeftoverFS) Remove(name string) error {
	if isMergeCopy(name) && f.syncFired.Load() && f.armedRemove.CompareAndSwap(true, false) {
		f.removeFired.Store(true)
		return &os.PathError{Op: "remove", Path: name, Err: vfs.ErrInjected}
	}
	return f.FS.Remove(name)
}

func (f mergeLeftoverFile) Sync() error {
	if isMergeCopy(f.Name()) && f.fs.armedSync.CompareAndSwap(true, false) {
		f.fs.syncFired.Store(true)
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: vfs.ErrInjected}
	}
	return f.File.Sync()
}

// TestMergeRetriedAfterLeftoverCopy: a compaction whose copy failed (its
// sync) and whose removal of that copy failed too leaves the copy on
// disk; the next pass removes it and merges, instead of failing to
// create the copy anew (it already exists) at every pass until the log
// is opened again, which removes temporary files.
func TestMergeRetriedAfterLeftoverCopy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	fsys := &mergeLeftoverFS{FS: vfs.OS}
	opts := []Option{WithSegmentSize(smallSeg), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	l, m := stuckSparseSegment(t, dir, fsys, opts, func() {
		fsys.armedSync.Store(true)
		fsys.armedRemove.Store(true)
	})
	eventually(t, "the copy's sync and removal failed, and the segment compacted", func() bool {
		l.mu.Lock()
		done := l.segs[0].compacted()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("the log is poisoned: %v", err)
		}
		if n := fsys.inTheWay.Load(); n >= 3 {
			t.Fatalf("%d passes found the copy left over in the way and did not merge", n)
		}
		if fsys.removeFired.Load() && !done {
			l.kick(l.compactKick) // a postponed compaction waits for the next pass
		}
		return fsys.removeFired.Load() && done
	})
	if ents, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range ents {
			if isMergeCopy(e.Name()) {
				t.Errorf("%s left in the log's directory", e.Name())
			}
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	m.checkReopened(t, l, dir, opts...)
}
