package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestZstdClaimedRawLenBounded: a compressed frame of a few dozen bytes
// whose header claims a raw length of 1 GiB (xxhash fixed up) is damage
// that Get and Verify report without allocating the memory it claims.
func TestZstdClaimedRawLenBounded(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithCompression(CompressionZstd))
	seq, err := l.Append(bytes.Repeat([]byte("abcd"), 100))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	path, fr := sealedFrame(t, dir, seq) // any record frame
	if !fr.Compressed() {
		t.Fatal("not compressed")
	}
	b, _ := os.ReadFile(path)
	fb := b[fr.Offset:]
	binary.LittleEndian.PutUint32(fb[24:], segment.MaxPayload) // raw length: 1 GiB
	binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, 32+len(fr.Payload)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = l.Get(seq)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("Get of a %d-byte compressed frame claiming 1 GiB allocated %d bytes (%v)", len(fr.Payload), n, err)
	}
	mustClose(t, l)
	runtime.ReadMemStats(&before)
	err = Verify(dir)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("Verify allocated %d bytes (%v)", n, err)
	}
}
