package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Sizes and constants; part of the on-disk format.
const (
	Magic = "WALPUBSG"
	// Version is the format version of the segments this package writes.
	// Version 2 added FlagSumPayload; version 1 segments are read as
	// well.
	Version         = 2
	HeaderSize      = 64
	FrameHeaderSize = 32
	Align           = 8
	// MaxPayload is the largest stored or raw payload a frame may claim.
	MaxPayload = 1 << 30
	// MinSize is the smallest segment size.
	MinSize = 64 << 10
	// MaxSize is the largest segment size (offsets must fit 32 bits).
	MaxSize = 1<<32 - 4096
	// MaxSeq is the largest seq a segment may start at or a record may
	// have: larger is damage, so that the seq after a log's last never
	// wraps around to one already used.
	MaxSeq = 1<<63 - 1
)

// PageSize is the unit of segment sizes: a segment's size is a multiple
// of it, so that its mapping's pages line up with the file's.
const PageSize = 4096

// PageAlign rounds n up to a multiple of PageSize.
func PageAlign(n int64) int64 { return (n + PageSize - 1) &^ (PageSize - 1) }

// Ext is the file name extension of a segment; part of the on-disk format.
const Ext = ".seg"

// Name returns the file name of segment id: the id in 20 decimal digits,
// then Ext; part of the on-disk format.
func Name(id uint64) string { return fmt.Sprintf("%020d%s", id, Ext) }

// ParseName returns the id of the segment whose file name is name, or
// false if name is not one Name returns.
func ParseName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, Ext)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || id == 0 || Name(id) != name {
		return 0, false
	}
	return id, true
}

// Segment header flags; part of the on-disk format.
const (
	SegCompacted uint16 = 1 << 0
)

// Frame flags; part of the on-disk format.
const (
	FlagZstd   uint32 = 1 << 0
	FlagBatch  uint32 = 1 << 1
	FlagCommit uint32 = 1 << 2
	FlagAck    uint32 = 1 << 3
	// FlagEncrypted: the payload is sealed with AES-256-GCM (see Sealer):
	// a 12-byte nonce, the ciphertext, a 16-byte tag.
	FlagEncrypted uint32 = 1 << 4
	// FlagSumPayload: the checksum is the payload's xxhash64 folded with
	// the header's fields (format version 2, what a log writes); without
	// it, the xxhash64 of the header's fields and the payload (version
	// 1). See Checksum.
	FlagSumPayload uint32 = 1 << 5

	knownFlags = FlagZstd | FlagBatch | FlagCommit | FlagAck | FlagEncrypted | FlagSumPayload
)

// Header is a segment header.
type Header struct {
	// Version is the segment's format version: DecodeHeader's is the
	// file's, and PutHeader writes Version where it is 0.
	Version    uint16
	Flags      uint16
	ID         uint64
	FirstSeq   uint64
	Size       int64
	Generation uint64
	// MergedThrough is the last segment id whose records a compaction
	// merged into this file (0: none but its own).
	MergedThrough uint64
}

// formatVersion is the version PutHeader writes for h: h.Version, or
// Version where that is 0.
func (h Header) formatVersion() uint16 {
	if h.Version == 0 {
		return Version
	}
	return h.Version
}

// Compacted reports whether the segment was rewritten by compaction.
func (h Header) Compacted() bool { return h.Flags&SegCompacted != 0 }

// Error is a damaged header or frame. Offset is the byte offset of the
// damaged structure in its file.
type Error struct {
	Offset int64
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Reason) }

func errAt(off int64, format string, args ...any) *Error {
	return &Error{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// PutHeader encodes h into b[:HeaderSize].
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	copy(b[0:8], Magic)
	binary.LittleEndian.PutUint16(b[8:], h.formatVersion())
	binary.LittleEndian.PutUint16(b[10:], h.Flags)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], h.ID)
	binary.LittleEndian.PutUint64(b[24:], h.FirstSeq)
	binary.LittleEndian.PutUint64(b[32:], uint64(h.Size))
	binary.LittleEndian.PutUint64(b[40:], h.Generation)
	binary.LittleEndian.PutUint64(b[48:], h.MergedThrough)
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
}

// DecodeHeader decodes and checks a segment header. It never panics: a
// short or damaged header is an *Error at offset 0.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errAt(0, "segment header truncated: %d of %d bytes", len(b), HeaderSize)
	}
	if string(b[0:8]) != Magic {
		if allZero(b[:HeaderSize]) {
			return Header{}, errAt(0, "segment header is all zeros")
		}
		return Header{}, errAt(0, "bad segment magic %q", b[0:8])
	}
	if sum := binary.LittleEndian.Uint64(b[56:]); sum != xxhash.Sum64(b[:56]) {
		return Header{}, errAt(0, "segment header checksum mismatch")
	}
	v := binary.LittleEndian.Uint16(b[8:])
	if v < 1 || v > Version {
		return Header{}, errAt(0, "unsupported segment format version %d", v)
	}
	h := Header{
		Version:       v,
		Flags:         binary.LittleEndian.Uint16(b[10:]),
		ID:            binary.LittleEndian.Uint64(b[16:]),
		FirstSeq:      binary.LittleEndian.Uint64(b[24:]),
		Size:          int64(binary.LittleEndian.Uint64(b[32:])),
		Generation:    binary.LittleEndian.Uint64(b[40:]),
		MergedThrough: binary.LittleEndian.Uint64(b[48:]),
	}
	switch {
	case h.Flags&^SegCompacted != 0:
		return Header{}, errAt(0, "unknown segment flags %#x", h.Flags)
	case binary.LittleEndian.Uint32(b[12:]) != 0:
		return Header{}, errAt(0, "reserved header bytes are not zero")
	case h.MergedThrough != 0 && (h.MergedThrough <= h.ID || h.Flags&SegCompacted == 0):
		return Header{}, errAt(0, "invalid merged-through segment id %d", h.MergedThrough)
	case h.ID == 0 || h.FirstSeq == 0:
		return Header{}, errAt(0, "segment id and first seq must be positive")
	case h.FirstSeq > MaxSeq:
		return Header{}, errAt(0, "first seq %d is beyond the largest, %d", h.FirstSeq, uint64(MaxSeq))
	case h.Size < HeaderSize || h.Size > MaxSize || h.Size%Align != 0:
		return Header{}, errAt(0, "invalid segment size %d", h.Size)
	}
	return h, nil
}

// FrameSize is the aligned size of a frame holding n stored payload bytes.
func FrameSize(n int) int {
	return FrameHeaderSize + (n+Align-1)&^(Align-1)
}

// Frame is a decoded frame. Payload aliases the buffer it was decoded from.
type Frame struct {
	Offset  int64 // where the frame starts
	Seq     uint64
	Flags   uint32
	RawLen  uint32
	Payload []byte // stored bytes (compressed when Flags&FlagZstd != 0)
}

// Size is the frame's aligned size on disk.
func (f Frame) Size() int { return FrameSize(len(f.Payload)) }

// End is the offset just past the frame.
func (f Frame) End() int64 { return f.Offset + int64(f.Size()) }

// PutFrame encodes a frame into dst, which must hold FrameSize(len(payload))
// bytes (the padding is written as zeros), and returns the bytes written.
// The checksum is the one flags name (FlagSumPayload or not).
func PutFrame(dst []byte, seq uint64, flags uint32, rawLen int, payload []byte) int {
	copy(startFrame(dst, seq, flags, rawLen, len(payload)), payload)
	if flags&FlagSumPayload == 0 {
		return finishFrame(dst, len(payload))
	}
	// The payload is hashed where it is, not read back from dst: right
	// after the copy, dst's lines may still be on their way to the cache
	// (a fresh page of a mapping), and loads from them would wait. The
	// header's words are read back: measured, that is faster than
	// keeping the arguments they are made of across the hash.
	return closeFrame(dst, len(payload), foldHeader(xxhash.Sum64(payload), dst))
}

// PutFrameHeader encodes the header of a frame holding payload into
// dst[:FrameHeaderSize], its checksum included, for a writer that writes
// the payload from where it is (a gathering write) rather than copying it
// behind the header: on disk the payload follows the header, then
// FramePadding(len(payload)) zero bytes.
func PutFrameHeader(dst []byte, seq uint64, flags uint32, rawLen int, payload []byte) {
	_ = dst[FrameHeaderSize-1]
	putFrameFields(dst, seq, flags, rawLen, len(payload))
	if flags&FlagSumPayload != 0 {
		binary.LittleEndian.PutUint64(dst[0:], foldHeader(xxhash.Sum64(payload), dst))
		return
	}
	var d xxhash.Digest
	d.Reset()
	d.Write(dst[8:FrameHeaderSize])
	d.Write(payload)
	binary.LittleEndian.PutUint64(dst[0:], d.Sum64())
}

// FramePadding is the number of zero bytes that follow n stored payload
// bytes in their frame.
func FramePadding(n int) int { return FrameSize(n) - FrameHeaderSize - n }

// startFrame writes the header fields of a frame of stored payload bytes
// into dst, which must hold FrameSize(stored) bytes, and returns the
// payload's place for the caller to fill before finishFrame.
func startFrame(dst []byte, seq uint64, flags uint32, rawLen, stored int) []byte {
	_ = dst[FrameSize(stored)-1]
	putFrameFields(dst, seq, flags, rawLen, stored)
	return dst[FrameHeaderSize : FrameHeaderSize+stored]
}

// Where a frame header's fields are, after its checksum (at 0): see
// putFrameFields.
const (
	offStored   = 8
	offFlags    = 12
	offSeq      = 16
	offRawLen   = 24
	offReserved = 28
)

// HeaderStored, HeaderFlags, HeaderSeq and HeaderRawLen read a field of
// the frame header at the start of h, for a reader that takes a few fields
// of many frames a Scanner has checked before, without decoding each one.
func HeaderStored(h []byte) uint32 { return binary.LittleEndian.Uint32(h[offStored:]) }

// HeaderFlags: see HeaderStored.
func HeaderFlags(h []byte) uint32 { return binary.LittleEndian.Uint32(h[offFlags:]) }

// HeaderSeq: see HeaderStored.
func HeaderSeq(h []byte) uint64 { return binary.LittleEndian.Uint64(h[offSeq:]) }

// HeaderRawLen: see HeaderStored.
func HeaderRawLen(h []byte) uint32 { return binary.LittleEndian.Uint32(h[offRawLen:]) }

// putFrameFields writes a frame header's fields after the checksum.
func putFrameFields(dst []byte, seq uint64, flags uint32, rawLen, stored int) {
	binary.LittleEndian.PutUint32(dst[offStored:], uint32(stored))
	binary.LittleEndian.PutUint32(dst[offFlags:], flags)
	binary.LittleEndian.PutUint64(dst[offSeq:], seq)
	binary.LittleEndian.PutUint32(dst[offRawLen:], uint32(rawLen))
	binary.LittleEndian.PutUint32(dst[offReserved:], 0)
}

// finishFrame writes the padding and the checksum of the frame startFrame
// began in dst, and returns the frame's size.
func finishFrame(dst []byte, stored int) int {
	return closeFrame(dst, stored, Checksum(dst, FrameHeaderSize+stored))
}

// closeFrame writes the padding after the stored bytes of the frame begun
// in dst and sum as its checksum, and returns the frame's size.
func closeFrame(dst []byte, stored int, sum uint64) int {
	n := FrameSize(stored)
	clear(dst[FrameHeaderSize+stored : n])
	binary.LittleEndian.PutUint64(dst[0:], sum)
	return n
}

// Checksum returns the checksum of the frame at the start of b, whose
// header and payload end at end, by the scheme its flags name: with
// FlagSumPayload, the xxhash64 of the payload folded with the header's
// fields (foldHeader); without, the xxhash64 of the header's fields and
// the payload, bytes 8 to end.
func Checksum(b []byte, end int) uint64 {
	if HeaderFlags(b)&FlagSumPayload != 0 {
		return foldHeader(xxhash.Sum64(b[FrameHeaderSize:end]), b)
	}
	return xxhash.Sum64(b[8:end])
}

// xxhash64's primes.
const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
)

// foldHeader folds the three 8-byte words of the frame header h after its
// checksum (offsets 8, 16 and 24: stored length and flags, seq, raw length
// and the reserved bytes) into sum, the payload's xxhash64: each word goes
// through a bijection of its own (a multiplication by an odd constant, a
// rotation, another, with constants and rotations that differ by
// position), and the three results are xored into sum. A change in any
// one header field therefore always changes the checksum; a change in the
// payload changes sum, xxhash64's. The words are mixed apart from sum, so
// that a reader verifying frames waits for one xor after the payload's
// hash.
func foldHeader(sum uint64, h []byte) uint64 {
	le := binary.LittleEndian
	return sum ^ bits.RotateLeft64(le.Uint64(h[8:])*prime2, 31)*prime1 ^
		bits.RotateLeft64(le.Uint64(h[16:])*prime3, 29)*prime2 ^
		bits.RotateLeft64(le.Uint64(h[24:])*prime4, 27)*prime1
}

// ErrPartial stops a scan of a window (NewVerifiedScannerAt) at a frame
// that runs past the window's end. Test for it with errors.Is; it is not
// an *Error.
var ErrPartial = errors.New("segment: frame runs past the window")

// ErrEnd is returned by DecodeFrame where the data ends: the frame header
// is all zeros. Test for it with errors.Is; it is not an *Error.
var ErrEnd = errors.New("segment: end of data")

// DecodeFrameVerified decodes a frame whose checksum was verified before
// (by DecodeFrame when the file was opened, or because this process wrote
// it): every structural check of DecodeFrame is made, but the checksum is
// not computed again. Readers of a log's own mapping use it; the file is
// not written by anyone else while the log holds its lock.
func DecodeFrameVerified(seg []byte, off int64) (Frame, error) {
	return decodeFrame(seg, off, false)
}

// DecodeFrame decodes and verifies the frame at off in seg, the whole
// segment's bytes. At the end of the data (a zero header, or too little room
// left for a header) it returns ErrEnd; a damaged frame is an *Error. It
// never panics, and allocates nothing for a valid frame or at the end of
// the data (an *Error, with its reason, is allocated).
func DecodeFrame(seg []byte, off int64) (Frame, error) {
	return decodeFrame(seg, off, true)
}

func decodeFrame(seg []byte, off int64, verify bool) (f Frame, err error) {
	s := Scanner{b: seg, lim: int64(len(seg)), next: off, verify: verify}
	if s.step() {
		f = s.Frame()
	}
	return f, s.err
}

// step decodes the frame at s.next into s.fr and moves s.next past it;
// it sets s.err and returns false if there is none. Scanner.Next and
// decodeFrame share it, so that a scan costs one call a frame.
func (s *Scanner) step() bool {
	off := s.next
	s.off = off
	if off < HeaderSize || off%Align != 0 || off < s.base || off-s.base > int64(len(s.b)) {
		s.err = errAt(off, "frame offset out of range")
		return false
	}
	rest := s.b[off-s.base:]
	if len(rest) < FrameHeaderSize {
		if s.window {
			s.err = ErrPartial
			return false
		}
		if allZero(rest) {
			s.err = ErrEnd
			return false
		}
		s.err = errAt(off, "frame header truncated at end of segment")
		return false
	}
	h := rest[:FrameHeaderSize]
	if allZero(h) {
		s.err = ErrEnd
		return false
	}
	stored := HeaderStored(h)
	if stored > MaxPayload || int64(FrameSize(int(stored))) > int64(len(rest)) {
		if s.window && stored <= MaxPayload {
			s.err = ErrPartial
			return false
		}
		s.err = errAt(off, "frame length %d exceeds the segment", stored)
		return false
	}
	end, size := FrameHeaderSize+int(stored), FrameSize(int(stored))
	// The padding is outside the checksum: it must be zeros, so that a
	// frame has one encoding and damage there is not ignored. It is the
	// top size-end (< Align) bytes of the frame's last word.
	if pad := size - end; pad != 0 && binary.LittleEndian.Uint64(rest[size-Align:size])>>(8*(Align-pad)) != 0 {
		s.err = errAt(off, "non-zero frame padding")
		return false
	}
	// Field by field, not as one composite value: that is built on the
	// stack and copied (a store-forwarding stall on every frame).
	fr := &s.fr
	fr.Offset = off
	fr.Flags = HeaderFlags(h)
	fr.Seq = HeaderSeq(h)
	fr.RawLen = HeaderRawLen(h)
	s.pay, s.n = int(off-s.base)+FrameHeaderSize, int(stored)
	// Every check that costs nothing comes before the checksum, which
	// costs the whole payload: the search for a valid frame after damage
	// (Resync) hashes only what could be a frame.
	switch {
	case s.fr.Flags&^knownFlags != 0:
		s.err = errAt(off, "unknown frame flags %#x", s.fr.Flags)
		return false
	case binary.LittleEndian.Uint32(h[offReserved:]) != 0:
		s.err = errAt(off, "reserved frame bytes are not zero")
		return false
	case s.fr.Flags&FlagCommit != 0 && s.fr.Flags&FlagBatch == 0:
		s.err = errAt(off, "commit flag without batch flag")
		return false
	case s.fr.Flags&FlagAck != 0 && s.fr.Flags&(FlagBatch|FlagZstd|FlagEncrypted) != 0:
		s.err = errAt(off, "ack frame with record flags")
		return false
	case s.fr.RawLen > MaxPayload:
		s.err = errAt(off, "raw length %d too large", s.fr.RawLen)
		return false
	case !lengthsAgree(s.fr.Flags, stored, s.fr.RawLen):
		s.err = errAt(off, "raw length %d does not fit stored length %d", s.fr.RawLen, stored)
		return false
	case s.fr.Seq == 0 && s.fr.Flags&FlagAck == 0:
		s.err = errAt(off, "record frame with seq 0")
		return false
	}
	if s.verify && !checksumOK(rest, end) {
		s.err = errAt(off, "frame checksum mismatch")
		return false
	}
	s.next = off + int64(size)
	return true
}

// plausibleHeader reports whether h, a frame header, has known flags, zero
// reserved bytes and, when not compressed, equal stored and raw lengths:
// a filter for Resync that allocates nothing (decodeFrame makes every
// check, these included, and names what failed).
func plausibleHeader(h []byte) bool {
	flags := HeaderFlags(h)
	stored, raw := HeaderStored(h), HeaderRawLen(h)
	return flags&^knownFlags == 0 && binary.LittleEndian.Uint32(h[offReserved:]) == 0 &&
		lengthsAgree(flags, stored, raw)
}

// lengthsAgree reports whether a frame's stored and raw lengths fit its
// flags: equal for a plain record, the sealing's overhead apart for an
// encrypted one; a compressed payload's stored length is only bounded
// below (by the overhead, when it is sealed too).
func lengthsAgree(flags, stored, raw uint32) bool {
	var over uint32
	if flags&FlagEncrypted != 0 {
		over = Overhead
	}
	if flags&FlagZstd != 0 {
		return stored >= over
	}
	return uint64(stored) == uint64(raw)+uint64(over)
}

// checksumOK reports whether the frame at the start of b, whose header and
// payload end at end, has the checksum it claims.
func checksumOK(b []byte, end int) bool {
	return binary.LittleEndian.Uint64(b[0:]) == Checksum(b, end)
}

func allZero(b []byte) bool {
	for len(b) >= 32 {
		le := binary.LittleEndian
		if le.Uint64(b)|le.Uint64(b[8:])|le.Uint64(b[16:])|le.Uint64(b[24:]) != 0 {
			return false
		}
		b = b[32:]
	}
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// AllZero reports whether b holds only zero bytes.
func AllZero(b []byte) bool { return allZero(b) }

// Resync searches one segment's bytes for valid frames after damage (Salvage
// reads on from them), with work bounded by the segment's size whatever the
// bytes hold. Every
// aligned offset is a candidate; the checks that cost nothing rule out
// almost every one, and the checksum, which costs the frame's length, is
// computed only for a candidate that passes them. Crafted bytes can hold
// many such candidates each claiming a long frame: the bytes hashed over
// every call of one Resync are bounded by a few times the segment's size.
// A Resync is not safe for concurrent use.
type Resync struct {
	seg    []byte
	base   int64 // the segment offset of seg[0]: 0, or a window's (NewResyncAt)
	budget int64 // bytes left to hash
	// zeroTail: seg is a window whose trailing zeros were left out
	// (NewResyncAt).
	zeroTail bool
	// Hashed counts the bytes hashed so far.
	Hashed int64
}

// NewResync returns a Resync over seg, the whole segment's bytes.
func NewResync(seg []byte) *Resync {
	return &Resync{seg: seg, budget: 4*int64(len(seg)) + 1<<20}
}

// NewResyncAt is NewResync for a window of a segment whose trailing zeros
// may have been left out (what a cut moved aside: see wal.Repair): win
// holds the segment's bytes from offset base (a multiple of Align) on, and
// every offset (Next's argument and result) is the segment's. A frame
// that runs past win's end is checked as if zeros followed win.
func NewResyncAt(win []byte, base int64) *Resync {
	r := NewResync(win)
	r.base, r.zeroTail = base, true
	return r
}

// Budget returns how many bytes the Resync may still hash.
func (r *Resync) Budget() int64 { return r.budget }

// SetBudget sets how many bytes the Resync may still hash: a reader of
// many windows of one file (the pieces of what Repair moved aside) shares
// one bound over them, passing what one left to the next.
func (r *Resync) SetBudget(n int64) { r.budget = n }

// Next returns the offset of the first frame at or after off (aligned)
// that decodes without error, or -1 when there is none; sure is true.
// When the bound on work is reached first, it returns the offset of the
// first candidate it could not check, with sure false: a frame may or may
// not start there. In a window (NewResyncAt), a candidate that runs past
// its end and that the bound cannot afford is passed over: only the
// window's last frame may run past it, so a frame found after it is the
// next; if none is, the search ends unsure at it.
func (r *Resync) Next(off int64) (next int64, sure bool) {
	seg, base := r.seg, r.base
	end := base + int64(len(seg))
	off = (off + Align - 1) &^ (Align - 1)
	off = max(off, HeaderSize, base)
	// unsure: the first candidate running past the window's end that
	// the bound kept from being checked, or -1.
	unsure := int64(-1)
	for ; off < end; off += Align {
		h := seg[off-base : min(off-base+FrameHeaderSize, int64(len(seg)))]
		if len(h) < FrameHeaderSize {
			if !r.zeroTail {
				break
			}
			var padded [FrameHeaderSize]byte
			copy(padded[:], h)
			h = padded[:]
		}
		// Skip zero words quickly: a zero header, all of it, is the end
		// of the data, never a frame. Its first 16 bytes are not enough:
		// an empty record frame whose checksum is 0 has them zero.
		if allZero(h) {
			continue
		}
		if !plausibleHeader(h) {
			continue
		}
		stored := HeaderStored(h)
		if stored > MaxPayload {
			continue
		}
		fits := off+int64(FrameSize(int(stored))) <= end
		if !fits && !r.zeroTail {
			continue
		}
		if fits {
			s := Scanner{b: seg, base: base, lim: end, next: off}
			if !s.step() {
				continue
			}
		}
		cost := int64(FrameHeaderSize - 8 + int(stored))
		if cost > r.budget {
			if !fits {
				// Only the window's last frame runs past its end: if
				// this is one, no frame follows; if not (a header a
				// payload happens to hold), one may. The search goes on,
				// and ends unsure here if it finds none.
				if unsure < 0 {
					unsure = off
				}
				continue
			}
			if unsure >= 0 {
				return unsure, false
			}
			return off, false
		}
		r.budget -= cost
		r.Hashed += cost
		if fits && checksumOK(seg[off-base:], FrameHeaderSize+int(stored)) ||
			!fits && checksumZeroTail(h, seg[off-base:], FrameHeaderSize+int(stored)) == binary.LittleEndian.Uint64(h) {
			return off, true
		}
	}
	if unsure >= 0 {
		return unsure, false
	}
	return -1, true
}

// checksumZeroTail is Checksum of a frame of which part holds only the
// start, as if zeros followed part up to end; h is its header, padded
// with zeros where part is shorter.
func checksumZeroTail(h, part []byte, end int) uint64 {
	part = part[:min(len(part), end)] // the padding is not hashed
	d := xxhash.New()
	sumPayload := HeaderFlags(h)&FlagSumPayload != 0
	if !sumPayload {
		_, _ = d.Write(h[8:FrameHeaderSize])
	}
	if len(part) > FrameHeaderSize {
		_, _ = d.Write(part[FrameHeaderSize:])
	}
	for n := end - max(len(part), FrameHeaderSize); n > 0; n -= PageSize {
		_, _ = d.Write(zeroPage[:min(n, PageSize)])
	}
	if sumPayload {
		return foldHeader(d.Sum64(), h)
	}
	return d.Sum64()
}

var zeroPage [PageSize]byte

// LastNonZero returns the offset just past the last non-zero byte of seg at
// or after off, or off when everything from off on is zero.
func LastNonZero(seg []byte, off int64) int64 {
	end := int64(len(seg))
	for end > off {
		start := max(off, end-PageSize)
		// bytes.Equal compares a page at a time with vector instructions.
		if !bytes.Equal(seg[start:end], zeroPage[:end-start]) {
			for end > start && seg[end-1] == 0 {
				end--
			}
			return end
		}
		end = start
	}
	return off
}
