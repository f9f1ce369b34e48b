package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairUndecodableRecord: a compressed record whose zstd frame does
// not decode (altered with its checksum fixed up) is damage that Verify
// reports and that walcat then tells to repair; Repair cuts the log there
// as at any damage. Before, Repair checked the frames (what Open checks)
// and not the records (what Verify checks), called the log healthy and
// changed nothing: Verify still failed after it, with no fix.
func TestRepairUndecodableRecord(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithCompression(CompressionZstd))
	for range 3 {
		if _, err := l.Append(bytes.Repeat([]byte("abcd"), 100)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	path, fr := sealedFrame(t, dir, 2)
	if !fr.Compressed() {
		t.Fatal("not compressed")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fb := b[fr.Offset:]
	fb[segment.FrameHeaderSize+6] ^= 0xff
	binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, segment.FrameHeaderSize+len(fr.Payload)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Verify(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v; want the damage", err)
	}
	rep, err := Repair(dir)
	if err != nil || rep.Path != path || rep.Offset != fr.Offset || rep.Moved == 0 {
		t.Fatalf("Repair: %+v, %v; want a cut of %s at %d", rep, err, path, fr.Offset)
	}
	if err := Verify(dir); err != nil {
		t.Fatalf("Verify after the repair: %v", err)
	}
	l = mustOpen(t, dir)
	defer mustClose(t, l)
	if next := l.Stats().NextSeq; next != 2 {
		t.Fatalf("NextSeq after the repair %d, want 2", next)
	}
}
