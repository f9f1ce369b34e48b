package wal

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// keepFS pretends to remove the files named name: Remove reports success
// and leaves them. It counts the pretended removals.
type keepFS struct {
	vfs.FS
	name string
	kept atomic.Int64
}

func (k *keepFS) Remove(path string) error {
	if filepath.Base(path) == k.name {
		k.kept.Add(1)
		return nil
	}
	return k.FS.Remove(path)
}

// TestRepairStopsWhenFixChangesNothing: a fix that leaves the damage as
// it was (here a damaged checkpoint that will not go away) ends Repair at
// once with an error saying so, instead of applying it again and again
// until Repair gives up.
func TestRepairStopsWhenFixChangesNothing(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	for range 10 {
		if _, err := l.Append([]byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ack(1, 2); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	flipFileByte(t, filepath.Join(dir, index.CheckpointName))
	k := &keepFS{FS: vfs.OS, name: index.CheckpointName}
	rep, err := repair(k, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "changed nothing") {
		t.Fatalf("Repair: %+v, %v; want an error saying the fix changed nothing", rep, err)
	}
	if n := k.kept.Load(); n != 1 {
		t.Fatalf("the checkpoint was moved aside %d times, want once", n)
	}
	t.Logf("Repair: %v", err)
}
