package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

// FuzzSideFile: the reader of Repair's side files (RequeueCut) never
// panics, whatever the file holds; what it cannot read is a
// *CorruptionError naming the side file and an offset in it, and every
// record it yields lies inside the file. The seeds are the side files of
// real repairs (a record cut in the middle of a segment, later segments
// and metadata moved whole) and a few malformed piece lines.
func FuzzSideFile(f *testing.F) {
	for _, damaged := range []uint64{3, 300} {
		dir := filepath.Join(f.TempDir(), "log")
		l := mustOpen(f, dir, WithSegmentSize(smallSeg))
		for i := range 400 {
			if _, err := l.Append(requeueRecord(i)[:200+i%100]); err != nil {
				f.Fatal(err)
			}
		}
		if err := l.Ack(2, 41, 250); err != nil {
			f.Fatal(err)
		}
		mustClose(f, l)
		flipAt(f, dir, damaged)
		rep, err := Repair(dir)
		if err != nil || rep.SideFile == "" {
			f.Fatalf("Repair: %+v, %v", rep, err)
		}
		b, err := os.ReadFile(rep.SideFile)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("walpub-repair 00000000000000000001.seg 64 10\n0123456789"))
	f.Add([]byte("walpub-repair 00000000000000000001.seg 0 99999\n"))
	f.Add([]byte("walpub-repair ../x 0 0\n"))
	// One file, written again by each input: a directory per input
	// would cost more than reading it.
	path := filepath.Join(f.TempDir(), "repair-x.cut")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for r, err := range sideRecords(vfs.OS, path, nil) {
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.Path != path || ce.Offset < 0 || ce.Offset > int64(len(b)) {
					t.Fatalf("error %v: want a *CorruptionError naming %s at an offset in it", err, path)
				}
				continue
			}
			if r.Path != path || r.Offset < 0 || r.Offset >= int64(len(b)) {
				t.Fatalf("record %d at %s offset %d: not in the side file (%d bytes)", r.Seq, r.Path, r.Offset, len(b))
			}
		}
	})
}
