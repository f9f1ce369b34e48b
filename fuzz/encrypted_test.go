package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/wal/segment"
)

// Regions of an encrypted frame FuzzEncryptedFrame damages; part of the
// seed corpus format.
const (
	encNone       = iota // no damage
	encHeader            // the header bytes the tag binds or not (8..31)
	encNonce             // the nonce
	encCiphertext        // the ciphertext
	encTag               // the tag
	encAnywhere          // any byte of the frame, checksum included
	encRegions
)

var (
	fuzzKey      = bytes.Repeat([]byte{0x42}, segment.KeySize)
	fuzzSealer   = mustSealer(fuzzKey)
	fuzzOtherKey = mustSealer(bytes.Repeat([]byte{0x24}, segment.KeySize))
)

func mustSealer(key []byte) *segment.Sealer {
	s, err := segment.NewSealer(key)
	if err != nil {
		panic(err)
	}
	return s
}

// FuzzEncryptedFrame seals a record (segment.Sealer.PutFrame, compressed
// flag or not, in a batch or not, either checksum), damages the frame — one byte of a region
// (header, nonce, ciphertext, tag, anywhere) xored with a fuzzer-chosen
// value, with the checksum recomputed after the damage or not — and
// decodes and opens it with the right key and with another.
//
// Invariants:
//   - nothing panics;
//   - undamaged, the frame decodes (segment.DecodeFrame) as encrypted, with
//     the seq, raw length and flags given, and opens to exactly the record;
//     it never opens under another key (segment.ErrAuth);
//   - damaged without the checksum fixed up, DecodeFrame rejects it with a
//     *segment.Error (the checksum covers every byte that was changed);
//   - damaged with the checksum fixed up, either DecodeFrame rejects it, or
//     it opens to exactly the record (only when the damage touched header
//     bits the tag does not bind: the batch, commit and payload sum
//     flags), or Open
//     fails with segment.ErrAuth and returns nothing: never other bytes;
//   - arbitrary bytes decoded as a frame and opened never give a plaintext
//     (the fuzzer cannot forge a tag).
func FuzzEncryptedFrame(f *testing.F) {
	f.Add([]byte{}, uint64(1), uint8(0), uint8(encNone), uint32(0), uint8(0), false)
	f.Add([]byte("a record"), uint64(7), uint8(1), uint8(encTag), uint32(3), uint8(1), true)
	f.Add([]byte("a folded record"), uint64(7), uint8(5), uint8(encHeader), uint32(4), uint8(0x20), true)
	f.Add(bytes.Repeat([]byte("secret "), 100), uint64(1<<40), uint8(3), uint8(encHeader), uint32(4), uint8(0x10), true)
	f.Add([]byte("flip the zstd flag"), uint64(2), uint8(0), uint8(encHeader), uint32(4), uint8(1), true)
	f.Add([]byte("raw length"), uint64(2), uint8(1), uint8(encHeader), uint32(16), uint8(1), true)
	f.Add([]byte("seq"), uint64(2), uint8(0), uint8(encHeader), uint32(8), uint8(0x80), true)
	f.Add([]byte("nonce"), uint64(9), uint8(2), uint8(encNonce), uint32(11), uint8(0xff), false)
	f.Add([]byte("ciphertext"), uint64(9), uint8(0), uint8(encCiphertext), uint32(5), uint8(2), true)
	f.Fuzz(func(t *testing.T, rec []byte, seq uint64, kind uint8, region uint8, pos uint32, x uint8, fix bool) {
		if len(rec) > 1<<16 {
			t.Skip("input too large")
		}
		if seq == 0 {
			seq = 1
		}
		// kind: bit 0 compressed (the record stands for a zstd frame: its
		// raw length is another), bit 1 in a batch (and the commit), bit 2
		// the folded checksum (FlagSumPayload).
		var flags uint32
		rawLen := len(rec)
		if kind&1 != 0 {
			flags |= segment.FlagZstd
			rawLen = len(rec)*3 + 1
		}
		if kind&2 != 0 {
			flags |= segment.FlagBatch | segment.FlagCommit
		}
		if kind&4 != 0 {
			flags |= segment.FlagSumPayload
		}
		buf := make([]byte, segment.HeaderSize+segment.SealedSize(len(rec)))
		fb := buf[segment.HeaderSize:]
		fuzzSealer.PutFrame(fb, seq, flags, rawLen, rec)

		fr, err := segment.DecodeFrame(buf, segment.HeaderSize)
		if err != nil {
			t.Fatalf("a sealed frame does not decode: %v", err)
		}
		if !fr.Encrypted() || fr.Seq != seq || int(fr.RawLen) != rawLen || fr.Flags != flags|segment.FlagEncrypted {
			t.Fatalf("decoded %+v, sealed seq %d raw %d flags %#x", fr, seq, rawLen, flags)
		}
		if got, err := fuzzSealer.Open(nil, fr); err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("undamaged frame opens to %q, %v", got, err)
		}
		if got, err := fuzzOtherKey.Open(nil, fr); !errors.Is(err, segment.ErrAuth) || got != nil {
			t.Fatalf("another key opens the frame: %q, %v", got, err)
		}

		// Damage one byte of the region.
		stored := len(fr.Payload)
		lo, hi := 0, 0
		switch region % encRegions {
		case encNone:
			return
		case encHeader:
			lo, hi = 8, segment.FrameHeaderSize
		case encNonce:
			lo, hi = segment.FrameHeaderSize, segment.FrameHeaderSize+segment.NonceSize
		case encCiphertext:
			lo, hi = segment.FrameHeaderSize+segment.NonceSize, segment.FrameHeaderSize+stored-segment.TagSize
		case encTag:
			lo, hi = segment.FrameHeaderSize+stored-segment.TagSize, segment.FrameHeaderSize+stored
		case encAnywhere:
			lo, hi = 0, len(fb)
		}
		if hi <= lo || x == 0 {
			return // an empty ciphertext, or no change
		}
		at := lo + int(pos%uint32(hi-lo))
		damaged := bytes.Clone(buf)
		db := damaged[segment.HeaderSize:]
		db[at] ^= x
		if fix {
			if n := int(binary.LittleEndian.Uint32(db[8:])); segment.FrameHeaderSize+n <= len(db) {
				binary.LittleEndian.PutUint64(db, segment.Checksum(db, segment.FrameHeaderSize+n))
			}
		}
		dfr, err := segment.DecodeFrame(damaged, segment.HeaderSize)
		if err != nil {
			var se *segment.Error
			if !errors.As(err, &se) && !errors.Is(err, segment.ErrEnd) {
				t.Fatalf("damaged frame: error %T %v", err, err)
			}
			return
		}
		if !fix && at >= 8 && at < segment.FrameHeaderSize+stored {
			t.Fatalf("byte %d changed, checksum not fixed, yet the frame decodes", at)
		}
		if !dfr.Encrypted() {
			return // the damage cleared the flag: a plain record, not ours to open
		}
		got, err := fuzzSealer.Open(nil, dfr)
		switch {
		case err == nil && !bytes.Equal(got, rec):
			t.Fatalf("byte %d ^ %#x: the damaged frame opens to other bytes: %q", at, x, got)
		case err == nil && at >= segment.FrameHeaderSize && at < segment.FrameHeaderSize+stored:
			t.Fatalf("byte %d ^ %#x of the sealed payload went unnoticed", at, x)
		case err == nil && dfr.Seq != seq:
			t.Fatalf("the seq changed to %d, yet the frame opens", dfr.Seq)
		case err != nil && (!errors.Is(err, segment.ErrAuth) || got != nil):
			t.Fatalf("Open of a damaged frame: %q, %v", got, err)
		}

		// Arbitrary bytes as a frame: never a plaintext.
		junk := make([]byte, segment.HeaderSize+segment.FrameHeaderSize+len(rec))
		copy(junk[segment.HeaderSize+segment.FrameHeaderSize:], rec)
		h := junk[segment.HeaderSize:]
		binary.LittleEndian.PutUint32(h[8:], uint32(len(rec)))
		binary.LittleEndian.PutUint32(h[12:], segment.FlagEncrypted|flags&segment.FlagZstd)
		binary.LittleEndian.PutUint64(h[16:], seq)
		binary.LittleEndian.PutUint32(h[24:], uint32(max(len(rec)-segment.Overhead, 0)))
		if flags&segment.FlagZstd != 0 {
			binary.LittleEndian.PutUint32(h[24:], uint32(rawLen))
		}
		binary.LittleEndian.PutUint64(h, xxhash.Sum64(h[8:segment.FrameHeaderSize+len(rec)]))
		if jfr, err := segment.DecodeFrame(junk, segment.HeaderSize); err == nil {
			if got, err := fuzzSealer.Open(nil, jfr); err == nil {
				t.Fatalf("forged frame opens: %q", got)
			}
		}
	})
}
