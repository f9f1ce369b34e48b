package wal

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// TestCompactedLastSegmentKeepsRecords: a log whose last segment is a
// compacted one (as Repair can leave it) opens, starts a new active segment
// after it, and keeps its records pending across Close and Open. The
// compacted segment must count as sealed, or the checkpoint written at
// Close leaves it out while covering its seqs, and they come back as
// acknowledged.
func TestCompactedLastSegmentKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	f, err := segment.Create(vfs.OS, filepath.Join(dir, segName(1)), 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Init(segment.Header{ID: 1, FirstSeq: 1, Flags: segment.SegCompacted})
	want := [][]byte{[]byte("first record"), []byte("second record")}
	off := int64(segment.HeaderSize)
	for i, d := range want {
		off += int64(segment.PutFrame(f.Bytes()[off:], uint64(i+1), 0, len(d), d))
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for round := range 3 {
		l := mustOpen(t, dir)
		var got [][]byte
		for r, err := range l.Pending() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, bytes.Clone(r.Data))
		}
		if len(got) != len(want) || !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) {
			t.Fatalf("round %d: pending %q, want %q", round, got, want)
		}
		// Each round appends a record and acknowledges it, so that only
		// the compacted records stay pending.
		seq, err := l.Append([]byte("more"))
		if err != nil || seq != 3+uint64(round) {
			t.Fatalf("round %d: Append = %d, %v; want seq %d", round, seq, err, 3+round)
		}
		if err := l.Ack(seq); err != nil {
			t.Fatal(err)
		}
		mustClose(t, l)
	}
}
