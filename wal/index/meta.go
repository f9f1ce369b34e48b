package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/walpub/walpub/wal/segment"
)

// File names and sizes; part of the on-disk format.
const (
	CheckpointName  = "checkpoint"
	SuperblockName  = "superblock"
	CheckpointMagic = "WALPUBCK"
	SuperblockMagic = "WALPUBSB"
	Version         = 1
	// CheckpointVersion is the version of a checkpoint that holds a
	// sparse entry; one without is written as Version, which code older
	// than sparse entries reads too.
	CheckpointVersion = 2
	SuperblockSlot    = 512
	SuperblockSize    = 2 * SuperblockSlot
	checkpointHeader  = 40
)

// FormatError is a damaged checkpoint or superblock. Offset is the byte
// offset of the damaged structure in its file.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Reason) }

// Checkpoint is the persisted acknowledgement state of the sealed segments.
type Checkpoint struct {
	Through   uint64 // ack frames of segments up to this id are included
	NextSeq   uint64
	SealedEnd uint64 // seqs below it that no entry covers are acknowledged
	Segments  []SegmentAcks
}

// Fill sets in a the bits of every seq of its range that the checkpoint
// records as acknowledged (see Acked). For a sparse a, only its listed
// seqs are looked up; for another, every seq of its range.
func (c *Checkpoint) Fill(a *Acks) {
	if a.seqs != nil {
		for i, q := range a.seqs {
			if c.Acked(q) {
				a.setBit(uint64(i))
			}
		}
		return
	}
	end := min(a.base+a.n, c.SealedEnd)
	q := a.base
	for _, e := range c.Segments[c.entryAt(q):] {
		eb, ee := e.Acks.base, e.Acks.base+e.Acks.n
		if eb >= end {
			break
		}
		if q < eb {
			a.SetRange(q, eb) // a reclaimed segment's seqs
			q = eb
		}
		hi := min(ee, end)
		if e.Acks.seqs == nil && e.Acks.words == nil {
			// No seq or every seq acknowledged: a whole range at once,
			// not a test a seq (a live segment of small records holds
			// hundreds of thousands).
			if e.Acks.full {
				a.SetRange(q, hi)
			}
			q = max(q, hi)
			continue
		}
		for ; q < hi; q++ {
			if e.Acks.Has(q) {
				a.Set(q)
			}
		}
	}
	a.SetRange(q, end)
}

// entryAt returns the index of the first entry whose range ends after
// seq.
func (c *Checkpoint) entryAt(seq uint64) int {
	return sort.Search(len(c.Segments), func(i int) bool {
		a := c.Segments[i].Acks
		return a.base+a.n > seq
	})
}

// Acked reports whether the checkpoint records seq as acknowledged: below
// SealedEnd, and set in the entry covering it or covered by none.
func (c *Checkpoint) Acked(seq uint64) bool {
	if seq >= c.SealedEnd {
		return false
	}
	i := c.entryAt(seq)
	if i < len(c.Segments) && c.Segments[i].Acks.Covers(seq) {
		return c.Segments[i].Acks.Has(seq)
	}
	return true
}

// AckedUntil returns the end of a run of seqs from seq, below to, that the
// checkpoint records as acknowledged (Acked): every seq of [seq, end) is.
// It returns seq if seq is not acknowledged. The run may go on past end
// (it stops at an entry's edge): callers call again from end. Its cost is
// that of the bitmap words it reads, not of the seqs it skips.
func (c *Checkpoint) AckedUntil(seq, to uint64) uint64 {
	to = min(to, c.SealedEnd)
	if seq >= to {
		return seq
	}
	i := c.entryAt(seq)
	if i == len(c.Segments) {
		return to
	}
	a := c.Segments[i].Acks
	if seq < a.base {
		return min(a.base, to) // covered by no entry
	}
	if u, ok := a.NextUnacked(seq, to); ok {
		return u
	}
	return min(a.base+a.n, to)
}

// SegmentAcks is one sealed segment's acknowledgement bitmap.
type SegmentAcks struct {
	ID   uint64
	Acks *Acks
}

// AppendCheckpoint encodes c, appended to dst. Each entry takes the
// smallest of its encodings: a flag for a bitmap with no bit or every bit
// set, else the list of its unacknowledged seqs (a sparse entry) if that
// is shorter than its bitmap words, else the words.
func AppendCheckpoint(dst []byte, c Checkpoint) []byte {
	start := len(dst)
	dst = append(dst, CheckpointMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, Version)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(c.Segments)))
	dst = binary.LittleEndian.AppendUint64(dst, c.Through)
	dst = binary.LittleEndian.AppendUint64(dst, c.NextSeq)
	dst = binary.LittleEndian.AppendUint64(dst, c.SealedEnd)
	for _, s := range c.Segments {
		a := s.Acks
		dst = binary.LittleEndian.AppendUint64(dst, s.ID)
		dst = binary.LittleEndian.AppendUint64(dst, a.base)
		unacked := a.n - uint64(a.Count())
		switch words := (a.n + 63) / 64; {
		case a.n == 0:
			dst = binary.LittleEndian.AppendUint64(dst, 0)
		case unacked == a.n:
			dst = binary.LittleEndian.AppendUint64(dst, a.n|bitsNone)
		case unacked == 0:
			dst = binary.LittleEndian.AppendUint64(dst, a.n|bitsAll)
		case sparseEntry(a.n, unacked):
			binary.LittleEndian.PutUint16(dst[start+8:], CheckpointVersion)
			dst = binary.LittleEndian.AppendUint64(dst, a.n|bitsSparse)
			dst = binary.LittleEndian.AppendUint64(dst, unacked)
			end := a.base + a.n
			for q, ok := a.NextUnacked(a.base, end); ok; q, ok = a.NextUnacked(q+1, end) {
				dst = binary.LittleEndian.AppendUint64(dst, q)
			}
		default:
			dst = binary.LittleEndian.AppendUint64(dst, a.n)
			for i := range int(words) {
				dst = binary.LittleEndian.AppendUint64(dst, a.Word(i))
			}
		}
	}
	return binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(dst[start:]))
}

// sparseEntry reports whether an entry of n seqs, unacked of them not
// acknowledged, is written sparse: when the list (a count and a u64 a
// seq) is shorter than the bitmap words. Part of the on-disk format: a
// decoder refuses the encoding not chosen.
func sparseEntry(n, unacked uint64) bool { return unacked+1 < (n+63)/64 }

// Flags in a checkpoint entry's bits field; part of the on-disk format.
const (
	bitsNone   = 1 << 63
	bitsAll    = 1 << 62
	bitsSparse = bitsNone | bitsAll // version 2: a list of the unacknowledged seqs
	bitsMask   = bitsAll - 1
)

// Word returns the i-th bitmap word, i < (Len()+63)/64.
func (a *Acks) Word(i int) uint64 {
	if a.seqs != nil {
		lo := a.base + 64*uint64(i)
		w := lastWordMask(a.n, i)
		for q, ok := a.NextUnacked(lo, lo+64); ok; q, ok = a.NextUnacked(q+1, lo+64) {
			w &^= 1 << (q - lo)
		}
		return w
	}
	if a.words == nil {
		if a.full && uint64(i) < (a.n+63)/64 {
			return lastWordMask(a.n, i)
		}
		return 0
	}
	return atomicLoad(&a.words[i])
}

// DecodeCheckpoint decodes and verifies a checkpoint file's bytes. It never
// panics, and allocates no more than the input's size allows.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) < checkpointHeader+8 {
		return Checkpoint{}, &FormatError{0, fmt.Sprintf("checkpoint truncated: %d bytes", len(b))}
	}
	if string(b[:8]) != CheckpointMagic {
		return Checkpoint{}, &FormatError{0, "bad checkpoint magic"}
	}
	body := b[:len(b)-8]
	if binary.LittleEndian.Uint64(b[len(b)-8:]) != xxhash.Sum64(body) {
		return Checkpoint{}, &FormatError{0, "checkpoint checksum mismatch"}
	}
	v := binary.LittleEndian.Uint16(b[8:])
	if v != Version && v != CheckpointVersion {
		return Checkpoint{}, &FormatError{8, fmt.Sprintf("unsupported checkpoint version %d", v)}
	}
	if binary.LittleEndian.Uint16(b[10:]) != 0 {
		return Checkpoint{}, &FormatError{10, "reserved checkpoint bytes are not zero"}
	}
	n := binary.LittleEndian.Uint32(b[12:])
	c := Checkpoint{
		Through:   binary.LittleEndian.Uint64(b[16:]),
		NextSeq:   binary.LittleEndian.Uint64(b[24:]),
		SealedEnd: binary.LittleEndian.Uint64(b[32:]),
	}
	off := checkpointHeader
	if uint64(n)*24 > uint64(len(body)-off) {
		return Checkpoint{}, &FormatError{12, fmt.Sprintf("checkpoint claims %d segments in %d bytes", n, len(body))}
	}
	c.Segments = make([]SegmentAcks, 0, n)
	var prevID, prevEnd uint64
	sparse := false
	for range n {
		if len(body)-off < 24 {
			return Checkpoint{}, &FormatError{int64(off), "checkpoint entry truncated"}
		}
		id := binary.LittleEndian.Uint64(body[off:])
		base := binary.LittleEndian.Uint64(body[off+8:])
		field := binary.LittleEndian.Uint64(body[off+16:])
		bits := field & bitsMask
		kind := field &^ bitsMask
		words := (bits + 63) / 64
		if kind != 0 {
			words = 0
		}
		if id <= prevID || base < max(prevEnd, 1) || bits > MaxSpan || base+bits < base || kind == bitsSparse && v == Version || kind != 0 && bits == 0 || words*8 > uint64(len(body)-off-24) {
			return Checkpoint{}, &FormatError{int64(off), "invalid checkpoint entry"}
		}
		prevID, prevEnd = id, base+bits
		var a *Acks
		size := 24 + 8*int(words)
		switch kind {
		case bitsNone, bitsAll:
			a = uniformAcks(base, bits, kind == bitsAll)
		case bitsSparse:
			var err error
			if a, size, err = decodeSparseEntry(body[off:], base, bits); err != nil {
				return Checkpoint{}, &FormatError{int64(off), err.Error()}
			}
			sparse = true
		default:
			a = NewAcks(base, bits)
			for i := range a.words {
				a.words[i] = binary.LittleEndian.Uint64(body[off+24+8*i:])
			}
			if r := bits % 64; r != 0 && a.words[len(a.words)-1]>>r != 0 {
				return Checkpoint{}, &FormatError{int64(off), "checkpoint bitmap has bits past its range"}
			}
			// One encoding per checkpoint: a bitmap with no bit or every
			// bit set is written as a flag, never spelled out, and one
			// that a shorter list of seqs holds as a sparse entry.
			count := uint64(a.Count())
			if bits > 0 && (count == 0 || count == bits) {
				return Checkpoint{}, &FormatError{int64(off), "checkpoint bitmap spells out a uniform bitmap its flags encode"}
			}
			if v == CheckpointVersion && sparseEntry(bits, bits-count) {
				return Checkpoint{}, &FormatError{int64(off), "checkpoint bitmap spells out what a shorter sparse entry holds"}
			}
		}
		c.Segments = append(c.Segments, SegmentAcks{ID: id, Acks: a})
		off += size
	}
	if v == CheckpointVersion && !sparse {
		return Checkpoint{}, &FormatError{8, "checkpoint version 2 without a sparse entry"}
	}
	if off != len(body) {
		return Checkpoint{}, &FormatError{int64(off), "trailing bytes in checkpoint"}
	}
	return c, nil
}

// decodeSparseEntry decodes a sparse checkpoint entry (b starts at the
// entry) of bits seqs from base, and returns it and its size. It
// allocates no more than the entry's bytes.
func decodeSparseEntry(b []byte, base, bits uint64) (*Acks, int, error) {
	if len(b) < 32 {
		return nil, 0, errors.New("sparse checkpoint entry truncated")
	}
	m := binary.LittleEndian.Uint64(b[24:])
	if m == 0 || m >= bits || !sparseEntry(bits, m) {
		return nil, 0, fmt.Errorf("sparse checkpoint entry lists %d of %d seqs", m, bits)
	}
	if m > uint64(len(b)-32)/8 {
		return nil, 0, fmt.Errorf("sparse checkpoint entry lists %d seqs in %d bytes", m, len(b)-32)
	}
	seqs := make([]uint64, m)
	for i := range seqs {
		q := binary.LittleEndian.Uint64(b[32+8*i:])
		if q < base || q-base >= bits || i > 0 && q <= seqs[i-1] {
			return nil, 0, fmt.Errorf("sparse checkpoint entry: seq %d out of order or out of its range", q)
		}
		seqs[i] = q
	}
	return NewSparseAcks(base, bits, seqs), 32 + 8*int(m), nil
}

// Superblock is the durable high-water mark: everything up to Offset in
// segment Segment, and every record up to Seq, was on stable storage.
type Superblock struct {
	Generation uint64
	Segment    uint64
	Offset     int64
	Seq        uint64
}

// PutSuperblockSlot encodes s into a 64-byte slot.
func PutSuperblockSlot(b []byte, s Superblock) {
	_ = b[63]
	clear(b[:64])
	copy(b, SuperblockMagic)
	binary.LittleEndian.PutUint16(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], s.Generation)
	binary.LittleEndian.PutUint64(b[24:], s.Segment)
	binary.LittleEndian.PutUint64(b[32:], uint64(s.Offset))
	binary.LittleEndian.PutUint64(b[40:], s.Seq)
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
}

// ErrNoSuperblock means neither slot holds a valid superblock.
var ErrNoSuperblock = errors.New("index: no valid superblock slot")

func decodeSlot(b []byte) (Superblock, bool) {
	if len(b) < 64 || string(b[:8]) != SuperblockMagic ||
		binary.LittleEndian.Uint64(b[56:]) != xxhash.Sum64(b[:56]) ||
		binary.LittleEndian.Uint16(b[8:]) != Version ||
		!segment.AllZero(b[10:16]) || !segment.AllZero(b[48:56]) {
		return Superblock{}, false
	}
	s := Superblock{
		Generation: binary.LittleEndian.Uint64(b[16:]),
		Segment:    binary.LittleEndian.Uint64(b[24:]),
		Offset:     int64(binary.LittleEndian.Uint64(b[32:])),
		Seq:        binary.LittleEndian.Uint64(b[40:]),
	}
	if s.Offset < 0 {
		return Superblock{}, false
	}
	return s, true
}

// DecodeSuperblock returns the newest valid slot of a superblock file's
// bytes. A slot that is all zeros is empty; damage in the older slot is
// expected after a torn write and ignored. With no valid slot at all it
// returns ErrNoSuperblock if both are empty and a *FormatError otherwise.
func DecodeSuperblock(b []byte) (Superblock, error) {
	var best Superblock
	found, damaged := false, false
	for i := 0; i < 2; i++ {
		lo := i * SuperblockSlot
		if lo+64 > len(b) {
			if lo < len(b) {
				damaged = true
			}
			continue
		}
		slot := b[lo : lo+64]
		s, ok := decodeSlot(slot)
		if !ok {
			if !segment.AllZero(slot) {
				damaged = true
			}
			continue
		}
		if s.Generation%2 != uint64(i) {
			damaged = true
			continue
		}
		if !found || s.Generation > best.Generation {
			best, found = s, true
		}
	}
	switch {
	case found:
		return best, nil
	case damaged:
		return Superblock{}, &FormatError{0, "no valid superblock slot"}
	default:
		return Superblock{}, ErrNoSuperblock
	}
}
