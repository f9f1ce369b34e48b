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

// TestViewFrameBeingWritten: a view that finds the next frame of a log
// half written — its writer, in another process, is filling it right now
// — reports no torn tail once the writer has finished it (and gone on to
// the next): the view is the log as it was before that frame. Before,
// Info reported a torn tail of the frame's bytes, which walcat stats and
// verify print as "a write cut short; the next Open cuts it", for a
// healthy log that a busy writer appends to: about 1 look in 40. A tail
// that stays torn (a writer killed in the middle of a frame) is still
// reported.
func TestViewFrameBeingWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(frame []byte) (from, to int) // the bytes not written yet
		done bool                              // the writer finishes the frame
	}{
		{"payload", func(b []byte) (int, int) { return len(b) / 2, len(b) }, true},
		{"header", func(b []byte) (int, int) { return 0, segment.FrameHeaderSize }, true},
		{"killed", func(b []byte) (int, int) { return len(b) / 2, len(b) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir)
			for range 3 {
				if _, err := l.Append(bytes.Repeat([]byte("r"), 3000)); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, l)
			// The writer of another process appends seqs 4 and 5 as
			// Append does; the view comes when half of 4 is written.
			path := filepath.Join(dir, segment.Name(1))
			b, _ := readSegment(t, path)
			end := dataEnd(t, b)
			var frames []byte
			for seq := uint64(4); seq <= 5; seq++ {
				p := bytes.Repeat([]byte{byte('0' + seq)}, 3000)
				fr := make([]byte, segment.FrameSize(len(p)))
				segment.PutFrame(fr, seq, 0, len(p), p)
				frames = append(frames, fr...)
			}
			four := frames[:len(frames)/2]
			from, to := tc.cut(four)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			write := func(b []byte, off int) {
				if _, err := f.WriteAt(b, end+int64(off)); err != nil {
					t.Fatal(err)
				}
			}
			write(four[:from], 0)
			write(four[to:], to)
			looks := 0
			hook := func() {
				looks++
				if looks == 1 && tc.done {
					// The writer finishes 4, and writes half of 5.
					write(four[from:to], from)
					write(frames[len(four):len(four)+1000], len(four))
				}
			}
			tornHook.Store(&hook)
			defer tornHook.Store(nil)
			v, err := OpenView(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if looks == 0 {
				t.Fatal("the view never looked at the torn tail again")
			}
			in := v.Info()
			switch {
			case tc.done && (in.TornBytes != 0 || in.TornOffset != -1):
				t.Errorf("a frame the writer finished is reported torn: %d bytes at %d", in.TornBytes, in.TornOffset)
			case !tc.done && (in.TornOffset != end || in.TornBytes == 0):
				t.Errorf("a torn tail at %d is reported as %d bytes at %d", end, in.TornBytes, in.TornOffset)
			}
			if in.NextSeq != 4 || in.Segments[0].DataEnd != end {
				t.Errorf("view: next seq %d, data end %d; want the log before the frame: 4, %d",
					in.NextSeq, in.Segments[0].DataEnd, end)
			}
		})
	}
}
