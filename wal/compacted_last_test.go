package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/index"
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

// TestFarApartSegmentIDs: segment ids come from file names and may be far
// apart (a checkpoint covering the gap says the segments between were
// reclaimed). Open judges the gap without walking it id by id.
func TestFarApartSegmentIDs(t *testing.T) {
	dir := t.TempDir()
	const far = 1 << 60
	for _, s := range []struct {
		id, first uint64
		data      []string
	}{{1, 1, []string{"a", "b"}}, {far, 3, []string{"c"}}} {
		f, err := segment.Create(vfs.OS, filepath.Join(dir, segName(s.id)), 4096, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Init(segment.Header{ID: s.id, FirstSeq: s.first})
		off := int64(segment.HeaderSize)
		for i, d := range s.data {
			off += int64(segment.PutFrame(f.Bytes()[off:], s.first+uint64(i), 0, len(d), []byte(d)))
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	c := index.Checkpoint{Through: far - 1, NextSeq: 3, SealedEnd: 3,
		Segments: []index.SegmentAcks{{ID: 1, Acks: index.NewAcks(1, 2)}}}
	if err := os.WriteFile(filepath.Join(dir, index.CheckpointName), index.AppendCheckpoint(nil, c), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		l, err := Open(dir)
		if err == nil {
			var n int
			for _, err := range l.Pending() {
				if err != nil {
					t.Error(err)
				}
				n++
			}
			if n != 3 {
				t.Errorf("%d pending, want 3", n)
			}
			err = l.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open walks the gap between segment ids 1 and 2^60")
	}
	// Without the checkpoint, the gap is a lost checkpoint, reported at
	// once too.
	if err := os.Remove(filepath.Join(dir, index.CheckpointName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without the checkpoint: %v", err)
	}
}
