package wal

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// tmpSyncFailFS fails the first Sync of a checkpoint's temporary file and
// the first of a compaction's copy, each once armed, and counts them.
type tmpSyncFailFS struct {
	vfs.FS
	ckpt, compact           atomic.Bool // armed
	ckptFired, compactFired atomic.Bool
}

type tmpSyncFailFile struct {
	vfs.File
	fs *tmpSyncFailFS
}

func (f *tmpSyncFailFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return tmpSyncFailFile{file, f}, nil
}

func (f tmpSyncFailFile) Sync() error {
	name := f.Name()
	if strings.HasSuffix(name, index.CheckpointName+tmpExt) && f.fs.ckpt.CompareAndSwap(true, false) {
		f.fs.ckptFired.Store(true)
		return &os.PathError{Op: "fdatasync", Path: name, Err: vfs.ErrInjected}
	}
	if strings.HasSuffix(name, ".compact"+tmpExt) && f.fs.compact.CompareAndSwap(true, false) {
		f.fs.compactFired.Store(true)
		return &os.PathError{Op: "fdatasync", Path: name, Err: vfs.ErrInjected}
	}
	return f.File.Sync()
}

// TestTempSyncFailureRetried: a failed sync of a file that is discarded
// rather than renamed into place (the checkpoint's temporary file, a
// compaction's copy) leaves the log as it was, not poisoned: nothing
// that counts as durable depended on that sync, and the retry writes a
// fresh file (fsyncgate is about trusting a retried fsync of the same
// data; here the data whose sync failed is never used). The checkpoint
// and the compaction are retried and succeed, and every record reads back
// after a reopen. Passes on the current code: it keeps that decision.
func TestTempSyncFailureRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	fsys := &tmpSyncFailFS{FS: vfs.OS}
	opts := []Option{WithSegmentSize(smallSeg), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	l, m := stuckSparseSegment(t, dir, fsys, opts, func() {
		fsys.ckpt.Store(true)
		fsys.compact.Store(true)
	})
	eventually(t, "both syncs failed, the checkpoint written and the segment compacted", func() bool {
		l.mu.Lock()
		done := l.ckptEpoch == l.ackEpoch && l.segs[0].compacted()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("the log is poisoned: %v", err)
		}
		if fsys.compactFired.Load() && !done {
			l.kick(l.compactKick) // a postponed compaction waits for the next pass
		}
		return fsys.ckptFired.Load() && fsys.compactFired.Load() && done
	})
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	m.checkReopened(t, l, dir, opts...)
}

// stuckSparseSegment opens a log in dir on fsys with opts, appends two
// segments' worth and more of 4000-byte records, calls arm, and then
// acknowledges every record of the first segment but its last: a sparse
// segment, stuck, which the compactor merges into a copy of one record.
func stuckSparseSegment(t *testing.T, dir string, fsys vfs.FS, opts []Option, arm func()) (*Log, *model) {
	t.Helper()
	l := mustOpen(t, dir, append(opts, withFS(fsys))...)
	checkpointWritten(t, l)
	m := newModel()
	for i := range 45 {
		d := make([]byte, 4000)
		d[0] = byte(i)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	rs := segRanges(l)
	if len(rs) < 3 {
		t.Fatalf("segments %v, want two sealed", rs)
	}
	arm()
	for q := rs[0][0]; q < rs[0][1]-1; q++ {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		m.acked[q] = true
	}
	return l, m
}
