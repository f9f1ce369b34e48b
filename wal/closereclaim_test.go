package wal

import (
	"bytes"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// inStack reports whether the calling goroutine's stack names fn.
func inStack(fn string) bool {
	buf := make([]byte, 64<<10)
	return bytes.Contains(buf[:runtime.Stack(buf, false)], []byte(fn))
}

// reclaimGateFS, once armed: an append's pwritev is slowed (so that the
// compactor, kicked by that append's rotation, most likely takes
// reclaimMu first), the compactor's checkpoint write fails (as on a full
// disk; it retries later), and the reclaim pass an appender runs itself
// (reclaimNow) is held just before it writes its checkpoint, until
// release is closed.
type reclaimGateFS struct {
	vfs.FS
	armed, once   atomic.Bool
	held, release chan struct{}
}

type reclaimGateFile struct {
	vfs.File
	g *reclaimGateFS
}

func (f reclaimGateFile) WriteVAt(b [][]byte, off int64) (int, error) {
	if f.g.armed.Load() && inStack("(*Log).append") {
		time.Sleep(300 * time.Millisecond)
	}
	return f.File.WriteVAt(b, off)
}

func (g *reclaimGateFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if g.armed.Load() && strings.HasSuffix(name, index.CheckpointName+tmpExt) {
		if inStack("(*Log).compactor") {
			return nil, vfs.ErrInjected
		}
		if inStack("(*Log).reclaimNow") && g.once.CompareAndSwap(false, true) {
			close(g.held)
			<-g.release
		}
	}
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return reclaimGateFile{f, g}, nil
}

// TestCloseWaitsForAppendersReclaim: a reclaim pass that an Append runs
// in its own goroutine (reclaimNow) is under way when Close is called.
// Close must not return until that pass is over: once it has, the
// directory may belong to another Log, whose checkpoint a late pass would
// overwrite with a stale one (the next Open then finds segments missing).
// After Close, nothing in the directory changes and the log opens.
func TestCloseWaitsForAppendersReclaim(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "log")
	g := &reclaimGateFS{FS: vfs.OS, held: make(chan struct{}), release: make(chan struct{})}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), withFS(g), WithLogger(quiet))
	checkpointWritten(t, l)
	if _, err := l.Append(make([]byte, 30<<10)); err != nil {
		t.Fatal(err)
	}
	if err := l.Ack(1); err != nil { // in the active segment: no compactor kick
		t.Fatal(err)
	}
	g.armed.Store(true)
	appendDone := make(chan error, 1)
	go func() { // rotates; the sealed segment has nothing pending: reclaimNow
		_, err := l.Append(make([]byte, 40<<10))
		appendDone <- err
	}()
	select {
	case <-g.held:
	case <-time.After(10 * time.Second):
		close(g.release)
		t.Fatal("the append's reclaim pass never reached its checkpoint write: the scenario did not happen")
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		close(g.release)
		<-appendDone
		t.Fatalf("Close returned (%v) while an append's reclaim pass was still under way", err)
	case <-time.After(500 * time.Millisecond):
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	before := readDir(t, dir)
	if err := <-appendDone; err != nil {
		t.Logf("the append during Close: %v", err)
	}
	after := readDir(t, dir)
	for _, n := range after.names() {
		if !bytes.Equal(before[n], after[n]) {
			t.Errorf("%s changed after Close returned", n)
		}
	}
	for _, n := range before.names() {
		if _, ok := after[n]; !ok {
			t.Errorf("%s removed after Close returned", n)
		}
	}
	l2, err := Open(dir, WithSegmentSize(smallSeg), WithLogger(quiet))
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	mustClose(t, l2)
}
