package wal

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/walpub/walpub/wal/segment"
)

// TestDecompressStopsAtRawLen: a compressed record is decoded into a
// buffer of the raw length its frame declares and no further. One whose
// data decodes to more (a damaged frame whose checksum still holds, or a
// hostile one: 64 KiB of zeros compress to a few bytes) is a
// *CorruptionError, and the decoder stops at the declared length instead
// of growing the buffer to whatever the data expands to.
func TestDecompressStopsAtRawLen(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64<<10)
	z := enc.EncodeAll(raw, nil)
	enc.Close()
	if len(z) > 1000 {
		t.Fatalf("64 KiB of zeros compressed to %d bytes", len(z))
	}
	out, err := decompress(segment.Frame{RawLen: uint32(len(raw))}, z, "seg", nil)
	if err != nil || !bytes.Equal(out, raw) {
		t.Fatalf("decompress at the right raw length: %d bytes, %v", len(out), err)
	}
	// The decoder stops at the declared length: it does not allocate the
	// 64 KiB the data expands to.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = decompress(segment.Frame{RawLen: 1000}, z, "seg", nil)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("64 KiB decoded where 1000 bytes were declared, and no error")
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<10 {
		t.Errorf("decoding a record that declares 1000 bytes allocated %d bytes", n)
	}
	// A buffer with room to spare is decoded into and handed back whole,
	// for the next record.
	spare := make([]byte, 0, 1<<20)
	if out, err := decompress(segment.Frame{RawLen: uint32(len(raw))}, z, "seg", spare); err != nil || !bytes.Equal(out, raw) || cap(out) != cap(spare) {
		t.Fatalf("decompress into a 1 MiB buffer: %d bytes (cap %d), %v", len(out), cap(out), err)
	}
	// Reusing a larger buffer does not lift the limit either.
	big := make([]byte, 0, 1<<20)
	for _, rawLen := range []uint32{0, 1000, 64<<10 - 1} {
		out, err := decompress(segment.Frame{RawLen: rawLen, Offset: 4096, Seq: 7}, z, "seg", big)
		var ce *CorruptionError
		if !errors.As(err, &ce) || ce.Offset != 4096 {
			t.Fatalf("raw length %d declared, 64 KiB decoded: %v (%d bytes), want a *CorruptionError at offset 4096", rawLen, err, len(out))
		}
	}
}
