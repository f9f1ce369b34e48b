package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/wal/segment"
)

// fixFrameSum recomputes the checksum of the frame header at off in b, by
// the scheme its flags name, if the header and the payload its length
// claims fit.
func fixFrameSum(b []byte, off int64) {
	if off < 0 || off+segment.FrameHeaderSize > int64(len(b)) {
		return
	}
	n := int64(binary.LittleEndian.Uint32(b[off+8:]))
	if off+segment.FrameHeaderSize+n > int64(len(b)) {
		return
	}
	binary.LittleEndian.PutUint64(b[off:], segment.Checksum(b[off:], int(segment.FrameHeaderSize+n)))
}

// FuzzFrame fuzzes segment.DecodeFrame on arbitrary bytes placed after a
// 64-byte segment header, decoded at an arbitrary offset. With fix the
// harness first recomputes the checksum of the frame at that offset, so
// that the checks behind the checksum get fuzzed too.
//
// Invariants:
//   - DecodeFrame never panics; it allocates nothing when it decodes a
//     frame or returns ErrEnd, and on other errors only the *segment.Error
//     (a constant few allocations: the error and its formatted reason);
//   - every error is segment.ErrEnd or a *segment.Error at the offset asked;
//     ErrEnd only where the 32 bytes at the offset (or what is left of the
//     buffer) are zero;
//   - a decoded frame starts at the offset asked, lies within the buffer,
//     its payload aliases the buffer with no spare capacity (so that
//     appending to it cannot overwrite the buffer), its flags are known
//     ones and consistent, and its raw length is the stored length unless
//     compressed;
//   - a decoded frame re-encoded with segment.PutFrame gives back exactly
//     the bytes it was decoded from, padding included;
//   - the search for a valid frame (segment.Resync) from the
//     offset finds the offset itself when the frame decodes; it never
//     claims (sure) a frame that does not decode, and it hashes at most
//     4 bytes per byte of the buffer, plus 1 MiB.
func FuzzFrame(f *testing.F) {
	f.Add([]byte{}, uint32(64), false)
	f.Add(frameBytes(3, segment.FlagSumPayload|segment.FlagBatch, 5, []byte("hello")), uint32(64), false)
	f.Add(frameBytes(3, segment.FlagSumPayload|segment.FlagAck, 8, make([]byte, 8)), uint32(64), true)
	f.Fuzz(func(t *testing.T, data []byte, off uint32, fix bool) {
		buf := make([]byte, segment.HeaderSize+len(data))
		copy(buf[segment.HeaderSize:], data)
		o := int64(off)
		if fix {
			fixFrameSum(buf, o)
		}
		var fr segment.Frame
		var err error
		allocs := testing.AllocsPerRun(1, func() { fr, err = segment.DecodeFrame(buf, o) })
		if limit := 8.0; err == nil || errors.Is(err, segment.ErrEnd) {
			if allocs != 0 {
				t.Errorf("DecodeFrame allocated %v times (error %v)", allocs, err)
			}
		} else if allocs > limit {
			t.Errorf("DecodeFrame allocated %v times for an error: %v", allocs, err)
		}
		if err != nil {
			var se *segment.Error
			if isEnd := errors.Is(err, segment.ErrEnd); isEnd == errors.As(err, &se) {
				t.Fatalf("error %T %v is not either segment.ErrEnd or a *segment.Error", err, err)
			}
			if errors.Is(err, segment.ErrEnd) {
				if o < segment.HeaderSize || o%segment.Align != 0 || o > int64(len(buf)) {
					t.Fatalf("ErrEnd for invalid offset %d", o)
				}
				rest := buf[o:min(int64(len(buf)), o+segment.FrameHeaderSize)]
				if !segment.AllZero(rest) {
					t.Fatalf("ErrEnd at offset %d over non-zero bytes %x", o, rest)
				}
			} else if se.Offset != o {
				t.Fatalf("error at offset %d for a frame at %d: %v", se.Offset, o, err)
			}
			rs := segment.NewResync(buf)
			if nv, sure := rs.Next(o); nv == o {
				t.Fatalf("Resync.Next(%d) = %d, but the frame there does not decode: %v", o, nv, err)
			} else if nv >= 0 && sure {
				if _, err := segment.DecodeFrame(buf, nv); err != nil {
					t.Fatalf("Resync.Next returned %d, which does not decode: %v", nv, err)
				}
			}
			if bound := 4*int64(len(buf)) + 1<<20; rs.Hashed > bound {
				t.Fatalf("the search hashed %d bytes of a %d-byte buffer", rs.Hashed, len(buf))
			}
			return
		}
		if fr.Offset != o || fr.End() > int64(len(buf)) || fr.End() <= o {
			t.Fatalf("frame [%d, %d) outside the buffer of %d bytes (asked at %d)", fr.Offset, fr.End(), len(buf), o)
		}
		if cap(fr.Payload) != len(fr.Payload) {
			t.Fatalf("payload has spare capacity %d > %d", cap(fr.Payload), len(fr.Payload))
		}
		if len(fr.Payload) > 0 && unsafe.SliceData(fr.Payload) != &buf[o+segment.FrameHeaderSize] {
			t.Fatalf("payload does not alias the buffer at the frame")
		}
		if fr.Flags&^(segment.FlagZstd|segment.FlagBatch|segment.FlagCommit|segment.FlagAck|segment.FlagEncrypted|segment.FlagSumPayload) != 0 ||
			fr.Commits() && !fr.InBatch() ||
			fr.IsAck() && fr.Flags&(segment.FlagBatch|segment.FlagZstd|segment.FlagEncrypted) != 0 {
			t.Fatalf("inconsistent flags %#x accepted", fr.Flags)
		}
		// A sealed payload is the sealing's overhead longer than what it
		// seals: the raw record, or its compressed form.
		over := 0
		if fr.Flags&segment.FlagEncrypted != 0 {
			over = segment.Overhead
		}
		if !fr.Compressed() && int(fr.RawLen)+over != len(fr.Payload) || len(fr.Payload) < over ||
			fr.RawLen > segment.MaxPayload {
			t.Fatalf("raw length %d for %d stored bytes, flags %#x", fr.RawLen, len(fr.Payload), fr.Flags)
		}
		if fr.Seq == 0 && !fr.IsAck() {
			t.Fatalf("record frame with seq 0 accepted")
		}
		re := make([]byte, fr.Size())
		if n := segment.PutFrame(re, fr.Seq, fr.Flags, int(fr.RawLen), fr.Payload); n != fr.Size() {
			t.Fatalf("PutFrame wrote %d bytes, frame size %d", n, fr.Size())
		}
		if orig := buf[fr.Offset:fr.End()]; !bytes.Equal(re, orig) {
			t.Fatalf("re-encoded frame differs:\n got  %x\n want %x", re, orig)
		}
		if nv, _ := segment.NewResync(buf).Next(o); nv != o {
			t.Fatalf("Resync.Next(%d) = %d, but the frame there decodes", o, nv)
		}
	})
}

// FuzzSegmentHeader fuzzes segment.DecodeHeader. With fix the harness
// first recomputes the header checksum (bytes 56..63), so that the checks
// behind it get fuzzed too.
//
// Invariants:
//   - DecodeHeader never panics; every error is a *segment.Error at offset 0;
//   - a decoded header has a known version's fields in range (positive id
//     and first seq, a size that is aligned and within [HeaderSize,
//     MaxSize], known flags);
//   - a decoded header re-encoded with segment.PutHeader gives back exactly
//     the 64 bytes it was decoded from.
func FuzzSegmentHeader(f *testing.F) {
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix && len(data) >= segment.HeaderSize {
			data = bytes.Clone(data)
			binary.LittleEndian.PutUint64(data[56:], xxhash.Sum64(data[:56]))
		}
		h, err := segment.DecodeHeader(data)
		if err != nil {
			var se *segment.Error
			if !errors.As(err, &se) || se.Offset != 0 {
				t.Fatalf("error %T %v is not a *segment.Error at offset 0", err, err)
			}
			return
		}
		if h.ID == 0 || h.FirstSeq == 0 || h.Size < segment.HeaderSize || h.Size > segment.MaxSize ||
			h.Size%segment.Align != 0 || h.Flags&^segment.SegCompacted != 0 {
			t.Fatalf("header out of range accepted: %+v", h)
		}
		re := make([]byte, segment.HeaderSize)
		segment.PutHeader(re, h)
		if !bytes.Equal(re, data[:segment.HeaderSize]) {
			t.Fatalf("re-encoded header differs:\n got  %x\n want %x", re, data[:segment.HeaderSize])
		}
	})
}
