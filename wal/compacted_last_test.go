package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
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
	f, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(1)), 4096, 0o600)
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
		f, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(s.id)), 4096, 0o600)
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
	openWithin(t, dir, "Open walks the gap between segment ids 1 and 2^60", func(l *Log) {
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
	})
	// Without the checkpoint, the gap is a lost checkpoint, reported at
	// once too.
	if err := os.Remove(filepath.Join(dir, index.CheckpointName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without the checkpoint: %v", err)
	}
}

// openWithin opens the log in dir, runs check on it and closes it, failing
// with hung if that takes more than 3 minutes (a bound for a hang, not a
// timing assertion: it takes seconds at most, even under -race on a
// loaded machine).
func openWithin(t *testing.T, dir, hung string, check func(*Log)) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		l, err := Open(dir)
		if err == nil {
			check(l)
			err = l.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal(hung)
	}
}

// TestCheckpointHugeSpans: a checkpoint whose entries claim index.MaxSpan
// seqs each, all acknowledged (24 bytes apiece, no bitmap words), opens
// at once: neither decoding nor checking it walks the seqs.
func TestCheckpointHugeSpans(t *testing.T) {
	dir := t.TempDir()
	const entries = 200
	base := 1 + entries*uint64(index.MaxSpan) // the first seq after them
	// The header as the encoder writes it, then the entries by hand
	// (building 200 bitmaps of 2^28 bits to encode would take 6 GiB).
	b := index.AppendCheckpoint(nil, index.Checkpoint{Through: entries, NextSeq: base, SealedEnd: base})
	b = b[:len(b)-8]
	binary.LittleEndian.PutUint32(b[12:], entries)
	for i := range uint64(entries) {
		b = binary.LittleEndian.AppendUint64(b, i+1)
		b = binary.LittleEndian.AppendUint64(b, 1+i*index.MaxSpan)
		b = binary.LittleEndian.AppendUint64(b, 1<<62|index.MaxSpan) // every seq acknowledged
	}
	b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
	if _, err := index.DecodeCheckpoint(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, index.CheckpointName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(entries+1)), 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Init(segment.Header{ID: entries + 1, FirstSeq: base})
	segment.PutFrame(f.Bytes()[segment.HeaderSize:], base, 0, 1, []byte("x"))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	openWithin(t, dir, "Open walks the seqs of checkpoint entries", func(l *Log) {
		if st := l.Stats(); st.Pending != 1 || st.NextSeq != base+1 {
			t.Errorf("stats %+v, want 1 pending, next seq %d", st, base+1)
		}
	})
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]ackRange{{10, 5}, {1, 2}, {3, 1}, {12, 10}, {30, 1}, {2, 1}})
	want := []ackRange{{1, 3}, {10, 12}, {30, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("mergeRanges = %v, want %v", got, want)
	}
	if got := mergeRanges(nil); len(got) != 0 {
		t.Fatalf("mergeRanges(nil) = %v", got)
	}
}
