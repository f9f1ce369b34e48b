package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/walpub/walpub/wal/segment"
)

// toVersion1 rewrites every segment of the closed log in dir as segment
// format version 1 writes it: each frame's checksum the xxhash64 of its
// header fields and payload, without the payload sum flag, and the
// header's version 1. It returns how many frames it rewrote.
func toVersion1(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, path := range segFiles(t, dir) {
		b, h := readSegment(t, path)
		for _, fr := range framesOf(t, b) {
			// Version 1's checksum, computed here as segment/doc.go
			// describes it, not by the segment package.
			fb := b[fr.Offset:]
			le := binary.LittleEndian
			le.PutUint32(fb[12:], fr.Flags&^segment.FlagSumPayload)
			le.PutUint64(fb, xxhash.Sum64(fb[8:segment.FrameHeaderSize+len(fr.Payload)]))
			n++
		}
		h.Version = 1
		segment.PutHeader(b, h)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// frameKinds counts the frames of dir's segments with and without the
// payload sum flag, and the segments of each format version.
func frameKinds(t *testing.T, dir string) (folded, plain int, versions map[uint16]int) {
	t.Helper()
	versions = map[uint16]int{}
	for _, path := range segFiles(t, dir) {
		b, h := readSegment(t, path)
		versions[h.Version]++
		for _, fr := range framesOf(t, b) {
			if fr.Flags&segment.FlagSumPayload != 0 {
				folded++
			} else {
				plain++
			}
		}
	}
	return folded, plain, versions
}

// TestReadsVersion1 opens a log whose segments are all of format version
// 1 (records one by one and in batches, compressed and not, acks),
// reads every pending record, appends to it, and reads everything again
// after a reopen: the version 1 frames and the new ones side by side in
// the same segment.
func TestReadsVersion1(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(segment.MinSize), WithCompression(CompressionZstd)}
	l := mustOpen(t, dir, opts...)
	want := map[uint64][]byte{}
	add := func(l *Log, i int) {
		d := bytes.Repeat([]byte(fmt.Sprintf("record %d ", i)), 1+i%40) // some compress
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		want[q] = d
	}
	for i := range 1500 {
		add(l, i)
	}
	batch := [][]byte{[]byte("b1"), []byte("b2"), bytes.Repeat([]byte("b3"), 500)}
	first, err := l.AppendBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range batch {
		want[first+uint64(i)] = d
	}
	for q := uint64(1); q <= 1500; q += 7 {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		delete(want, q)
	}
	mustClose(t, l)

	if n := toVersion1(t, dir); n == 0 {
		t.Fatal("no frame rewritten")
	}
	folded, plain, versions := frameKinds(t, dir)
	if folded != 0 || plain == 0 || len(versions) != 1 || versions[1] == 0 || len(segFiles(t, dir)) < 2 {
		t.Fatalf("after the rewrite: %d folded and %d plain frames, segment versions %v: not a version 1 log of several segments", folded, plain, versions)
	}

	check := func(l *Log) {
		t.Helper()
		recs, err := collectPending(l)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(want) {
			t.Fatalf("Pending yielded %d records, want %d", len(recs), len(want))
		}
		for _, r := range recs {
			if !bytes.Equal(r.Data, want[r.Seq]) {
				t.Fatalf("seq %d: %q, want %q", r.Seq, r.Data, want[r.Seq])
			}
			d, err := l.Get(r.Seq)
			if err != nil || !bytes.Equal(d, want[r.Seq]) {
				t.Fatalf("Get(%d) = %q, %v", r.Seq, d, err)
			}
		}
	}
	l = mustOpen(t, dir, opts...)
	check(l)
	for i := 1500; i < 1520; i++ {
		add(l, i)
	}
	mustClose(t, l)
	folded, plain, _ = frameKinds(t, dir)
	if folded == 0 || plain == 0 {
		t.Fatalf("after appending: %d folded and %d plain frames, want both", folded, plain)
	}
	l = mustOpen(t, dir, opts...)
	check(l)
	mustClose(t, l)
}
