package wal

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// listHookFS runs hook once, the first time the directory is listed
// after it is armed, between the listing and what the caller does with
// it: the moment a writer in another process may change the directory
// under a view.
type listHookFS struct {
	vfs.FS
	hook  func()
	fired atomic.Bool
}

func (h *listHookFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := h.FS.ReadDir(name)
	if err == nil && h.fired.CompareAndSwap(false, true) {
		h.hook()
	}
	return ents, err
}

// liveLog opens a log of 64 KiB segments and appends 10 KiB records to
// it until it has at least segs segment files; it returns the log and
// the seqs of the first segment's records.
func liveLog(t *testing.T, dir string, segs int, opts ...Option) (*Log, []uint64) {
	t.Helper()
	l := mustOpen(t, dir, append([]Option{WithSegmentSize(64 << 10)}, opts...)...)
	var first []uint64
	for i := 0; len(segFiles(t, dir)) < segs; i++ {
		seq, err := l.Append(bytes.Repeat([]byte{byte('a' + i%26)}, 10<<10))
		if err != nil {
			t.Fatal(err)
		}
		if len(segFiles(t, dir)) == 1 {
			first = append(first, seq)
		}
	}
	return l, first
}

// TestViewSegmentReclaimedWhileOpening: a view opened while the log's
// writer reclaims a segment the view has listed but not opened yet (its
// records all acknowledged) is the log without it, not an error. Before,
// OpenView failed with the file's "no such file or directory", which it
// did not look at again as it does damage: walcat stats, dump and verify
// on a busy journal failed now and then.
func TestViewSegmentReclaimedWhileOpening(t *testing.T) {
	dir := t.TempDir()
	l, first := liveLog(t, dir, 3)
	defer mustClose(t, l)
	seg1 := filepath.Join(dir, segment.Name(1))
	h := &listHookFS{FS: vfs.OS, hook: func() {
		if err := l.Ack(first...); err != nil {
			t.Fatal(err)
		}
		eventually(t, "segment 1 reclaimed", func() bool {
			_, err := os.Stat(seg1)
			return os.IsNotExist(err)
		})
	}}
	v, err := openView(h, dir)
	if !h.fired.Load() {
		t.Fatal("the hook never ran: the directory was not listed")
	}
	if err != nil {
		t.Fatalf("OpenView with segment 1 reclaimed while it ran: %v", err)
	}
	defer v.Close()
	in := v.Info()
	if in.Segments[0].ID == 1 || in.Pending != in.Records {
		t.Errorf("view: segments %+v, %d records, %d pending", in.Segments, in.Records, in.Pending)
	}
	want := first[len(first)-1] + 1
	for r, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != want {
			t.Fatalf("record %d, want %d", r.Seq, want)
		}
		want++
	}
	if want != in.NextSeq {
		t.Fatalf("records end before %d, the next seq is %d", want, in.NextSeq)
	}
}
