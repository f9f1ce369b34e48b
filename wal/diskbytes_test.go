package wal

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// removeFailFS fails the first Remove of a segment file once armed, and
// records its path.
type removeFailFS struct {
	vfs.FS
	armed  atomic.Bool
	failed atomic.Pointer[string]
}

func (f *removeFailFS) Remove(name string) error {
	if f.armed.Load() && strings.HasSuffix(name, segment.Ext) && f.failed.CompareAndSwap(nil, &name) {
		return &os.PathError{Op: "remove", Path: name, Err: vfs.ErrInjected}
	}
	return f.FS.Remove(name)
}

// segmentFileBytes returns the bytes of the segment files in dir, the
// prepared one included: what the log counts in Stats.DiskBytes besides
// its metadata files.
func segmentFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if name := e.Name(); strings.HasSuffix(name, segment.Ext) || strings.HasSuffix(name, segment.Ext+tmpExt) {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

// TestDiskBytesAfterFailedRemove fails the removal of a reclaimed
// segment: the file stays on disk, and the log's byte count must keep
// counting it. It was lowered before the Remove and not restored when the
// Remove failed.
func TestDiskBytesAfterFailedRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	fsys := &removeFailFS{FS: vfs.OS}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), withFS(fsys), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	for range 30 {
		if _, err := l.Append(make([]byte, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	if len(l.segs) < 2 {
		l.mu.Unlock()
		t.Fatalf("%d segments, want a sealed one", len(l.segs))
	}
	first := l.segs[0]
	from, to := first.firstSeq, l.segs[1].firstSeq
	l.mu.Unlock()
	fsys.armed.Store(true)
	for q := from; q < to; q++ {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the reclaimed segment's removal, and the next segment prepared", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return fsys.failed.Load() != nil && l.segs[0] != first && l.prepared != nil
	})
	if path := *fsys.failed.Load(); path != first.file.Path {
		t.Fatalf("the failed Remove was of %s, want the reclaimed %s", path, first.file.Path)
	}
	if _, err := os.Stat(first.file.Path); err != nil {
		t.Fatalf("the segment whose Remove failed: %v", err)
	}
	l.mu.Lock()
	counted := l.diskBytes
	l.mu.Unlock()
	if onDisk := segmentFileBytes(t, dir); counted != onDisk {
		t.Errorf("the log counts %d bytes of segment files, %d are on disk", counted, onDisk)
	}
}
