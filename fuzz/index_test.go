package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

type ackRange struct{ start, n uint64 }

// FuzzAckPayload fuzzes index.DecodeAckPayload, the payload of an ack
// frame.
//
// Invariants:
//   - it never panics and never allocates;
//   - it either returns index.ErrAckPayload or nil, calling fn only with
//     ranges that are non-empty, ascending, disjoint and not adjacent,
//     of positive seqs, whose ends do not overflow;
//   - on success, the seqs of the decoded ranges (when there are few
//     enough to list) re-encoded with index.AppendAckPayload give a
//     payload that decodes to the same ranges, and that is the input
//     itself when the input was in canonical (minimal uvarint) form.
func FuzzAckPayload(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var err error
		allocs := testing.AllocsPerRun(1, func() { err = index.DecodeAckPayload(p, func(start, n uint64) {}) })
		if allocs != 0 {
			t.Errorf("DecodeAckPayload allocated %v times", allocs)
		}
		var rs []ackRange
		err2 := index.DecodeAckPayload(p, func(start, n uint64) { rs = append(rs, ackRange{start, n}) })
		if (err == nil) != (err2 == nil) {
			t.Fatalf("two decodes disagree: %v, %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, index.ErrAckPayload) {
				t.Fatalf("error %v is not index.ErrAckPayload", err)
			}
			return
		}
		if len(rs) == 0 {
			t.Fatalf("a payload with no range decoded without error")
		}
		var prevEnd uint64 // one past the previous range's last seq
		total := uint64(0)
		for i, r := range rs {
			last := r.start + r.n - 1
			if r.n == 0 || r.start == 0 || last < r.start || last == ^uint64(0) {
				t.Fatalf("range %d: bad range [%d, +%d)", i, r.start, r.n)
			}
			if i > 0 && r.start <= prevEnd {
				t.Fatalf("range %d [%d, +%d) not ascending, disjoint and apart from the previous ending at %d", i, r.start, r.n, prevEnd)
			}
			prevEnd = last + 1
			total += r.n
			if total < r.n {
				total = ^uint64(0)
			}
		}
		if total > 1<<16 {
			return
		}
		var seqs []uint64
		for _, r := range rs {
			for q := r.start; q < r.start+r.n; q++ {
				seqs = append(seqs, q)
			}
		}
		re := index.AppendAckPayload(nil, seqs)
		var rs2 []ackRange
		if err := index.DecodeAckPayload(re, func(start, n uint64) { rs2 = append(rs2, ackRange{start, n}) }); err != nil {
			t.Fatalf("re-encoded payload %x does not decode: %v", re, err)
		}
		if !equalRanges(rs, rs2) {
			t.Fatalf("re-encoded payload decodes to %v, not %v", rs2, rs)
		}
		if canonicalUvarints(p) && !bytes.Equal(re, p) {
			t.Fatalf("canonical payload re-encodes differently:\n got  %x\n want %x", re, p)
		}
	})
}

func equalRanges(a, b []ackRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// canonicalUvarints reports whether p is a sequence of minimal uvarints.
func canonicalUvarints(p []byte) bool {
	for len(p) > 0 {
		v, n := binary.Uvarint(p)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
			return false
		}
		p = p[n:]
	}
	return true
}

// FuzzCheckpoint fuzzes index.DecodeCheckpoint, the checkpoint file. With
// fix the harness first recomputes the trailing checksum, so that the
// checks behind it get fuzzed too.
//
// Invariants:
//   - it never panics; every error is an *index.FormatError;
//   - it allocates no more than a small multiple of the input's size
//     (4 bytes per input byte, plus 64 KiB of slack for what other
//     goroutines allocate meanwhile): a checkpoint claiming many
//     entries or huge bitmaps in a short input fails before allocating,
//     and entries flagged "no seq" or "every seq" acknowledged, which
//     carry no words, allocate none;
//   - a decoded checkpoint lists segments by ascending id, each bitmap
//     with no bit set past its range;
//   - re-encoded with index.AppendCheckpoint it gives the input back:
//     a checkpoint has one encoding (a bitmap with no or every bit set
//     spelled out in words, which the encoder writes as a flag, is
//     refused, and so is one that a shorter sparse entry holds, in
//     version 2). A version 1 checkpoint, written before sparse entries,
//     may re-encode its bitmaps as sparse entries (version 2): the
//     re-encoding then decodes to the same acknowledgements.
func FuzzCheckpoint(f *testing.F) {
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixTrailingSum(b)
		}
		var c index.Checkpoint
		var err error
		if n := testutil.LeastAlloc(1, func() { c, err = index.DecodeCheckpoint(b) }); n > 4*uint64(len(b))+64<<10 {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(b), n)
		}
		if err != nil {
			var fe *index.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not an *index.FormatError", err, err)
			}
			return
		}
		var prev uint64
		for i, s := range c.Segments {
			if s.ID <= prev || s.Acks == nil {
				t.Fatalf("entry %d: segment id %d after %d", i, s.ID, prev)
			}
			prev = s.ID
			a := s.Acks
			if a.Count() > int(a.Len()) {
				t.Fatalf("entry %d: %d acknowledged of %d", i, a.Count(), a.Len())
			}
		}
		re := index.AppendCheckpoint(nil, c)
		if bytes.Equal(re, b) {
			return
		}
		if binary.LittleEndian.Uint16(b[8:]) != index.Version || binary.LittleEndian.Uint16(re[8:]) != index.CheckpointVersion {
			t.Fatalf("re-encoded checkpoint differs:\n got  %x\n want %x", re, b)
		}
		c2, err := index.DecodeCheckpoint(re)
		if err != nil {
			t.Fatalf("re-encoded version 1 checkpoint does not decode: %v", err)
		}
		if c2.Through != c.Through || c2.NextSeq != c.NextSeq || c2.SealedEnd != c.SealedEnd || len(c2.Segments) != len(c.Segments) {
			t.Fatalf("re-encoded version 1 checkpoint decodes to %+v, was %+v", c2, c)
		}
		for i, e := range c.Segments {
			a, a2 := e.Acks, c2.Segments[i].Acks
			if a.Base() != a2.Base() || a.Len() != a2.Len() || a.Count() != a2.Count() {
				t.Fatalf("entry %d: range %d+%d, %d acknowledged; re-encoded %d+%d, %d", i, a.Base(), a.Len(), a.Count(), a2.Base(), a2.Len(), a2.Count())
			}
			if a.Len() > 1<<16 {
				continue // a walk of every seq would be slow: the counts agree
			}
			for q := a.Base(); q < a.Base()+a.Len(); q++ {
				if a.Has(q) != a2.Has(q) {
					t.Fatalf("entry %d: seq %d acknowledged %v, re-encoded %v", i, q, a.Has(q), a2.Has(q))
				}
			}
		}
	})
}

// fixTrailingSum returns b with its last 8 bytes replaced by the xxhash64
// of the bytes before them, as a checkpoint and an encryption file end,
// so that the checks behind the checksum get fuzzed too.
func fixTrailingSum(b []byte) []byte {
	if len(b) < 8 {
		return b
	}
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
	return b
}

// FuzzEncryptionFile fuzzes index.DecodeEncryption, the file that says a
// log is encrypted and how to check its key. With fix the harness first
// recomputes the file's checksum.
//
// Invariants:
//   - it never panics and allocates nothing but its error;
//   - every error is an *index.FormatError, at an offset inside the file;
//   - a decoded file is version 1 or index.EncryptionVersion, with the
//     one cipher; version 1 says no FromSeq, a later version one in
//     1..segment.MaxSeq+1;
//   - re-encoded with index.PutEncryption, a file of the current version
//     gives the input back, and a version 1 file given a FromSeq decodes
//     to the same salt and key check;
//   - the key check's input covers the salt, and from version 2 FromSeq.
func FuzzEncryptionFile(f *testing.F) {
	e := index.Encryption{Cipher: index.CipherAESGCM, FromSeq: 1}
	for i := range e.Salt {
		e.Salt[i] = byte(i + 1)
	}
	for i := range e.Check {
		e.Check[i] = byte(0x80 + i)
	}
	v2 := make([]byte, index.EncryptionSize)
	index.PutEncryption(v2, e)
	v1 := bytes.Clone(v2)
	binary.LittleEndian.PutUint16(v1[8:], 1)
	clear(v1[48:56])
	f.Add(v2, false)
	f.Add(v1, true)
	f.Add(v2[:40], true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixTrailingSum(b)
		}
		var e index.Encryption
		var err error
		allocs := testing.AllocsPerRun(1, func() { e, err = index.DecodeEncryption(b) })
		if err != nil {
			var fe *index.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not an *index.FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset >= index.EncryptionSize {
				t.Fatalf("error offset %d is outside the file: %v", fe.Offset, err)
			}
			return
		}
		if allocs != 0 {
			t.Errorf("DecodeEncryption allocated %v times for a valid file", allocs)
		}
		if e.Cipher != index.CipherAESGCM {
			t.Fatalf("cipher %d", e.Cipher)
		}
		switch e.Version {
		case 1:
			if e.FromSeq != 0 {
				t.Fatalf("version 1 with FromSeq %d", e.FromSeq)
			}
			if in := e.CheckInput(); !bytes.Equal(in, e.Salt[:]) {
				t.Fatalf("version 1 key check input %x, salt %x", in, e.Salt)
			}
			e.FromSeq = 1
		case index.EncryptionVersion:
			if e.FromSeq == 0 || e.FromSeq > segment.MaxSeq+1 {
				t.Fatalf("FromSeq %d", e.FromSeq)
			}
			if in := e.CheckInput(); !bytes.Equal(in[:index.SaltSize], e.Salt[:]) || binary.LittleEndian.Uint64(in[index.SaltSize:]) != e.FromSeq {
				t.Fatalf("key check input %x does not hold the salt %x and FromSeq %d", in, e.Salt, e.FromSeq)
			}
		default:
			t.Fatalf("version %d", e.Version)
		}
		re := make([]byte, index.EncryptionSize)
		index.PutEncryption(re, e)
		if e.Version == index.EncryptionVersion && !bytes.Equal(re, b) {
			t.Fatalf("re-encoded file differs:\n got  %x\n want %x", re, b)
		}
		e2, err := index.DecodeEncryption(re)
		if err != nil {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
		if e2.Salt != e.Salt || e2.Check != e.Check || e2.FromSeq != e.FromSeq || e2.Version != index.EncryptionVersion {
			t.Fatalf("re-encoded file decodes to %+v, was %+v", e2, e)
		}
	})
}

// fixSlotSums recomputes the checksum of each superblock slot that is in b
// and is not all zeros.
func fixSlotSums(b []byte) []byte {
	b = bytes.Clone(b)
	for lo := 0; lo+64 <= len(b) && lo <= index.SuperblockSlot; lo += index.SuperblockSlot {
		slot := b[lo : lo+64]
		if !bytes.Equal(slot, make([]byte, 64)) {
			binary.LittleEndian.PutUint64(slot[56:], xxhash.Sum64(slot[:56]))
		}
	}
	return b
}

// FuzzSuperblock fuzzes index.DecodeSuperblock, the double-buffered
// superblock file. With fix the harness first recomputes the checksum of
// each non-zero slot, so that the checks behind it get fuzzed too.
//
// Invariants:
//   - it never panics and allocates nothing but its error;
//   - every error is index.ErrNoSuperblock (both slots empty or absent) or
//     an *index.FormatError;
//   - the decoded superblock is one of the slots: the one its generation's
//     parity names, and re-encoded with index.PutSuperblockSlot it gives
//     back exactly that slot's 64 bytes;
//   - it is the valid slot with the higher generation: the other slot,
//     if valid (it decodes alone at the right place), has a lower
//     generation.
func FuzzSuperblock(f *testing.F) {
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixSlotSums(b)
		}
		var sb index.Superblock
		var err error
		allocs := testing.AllocsPerRun(1, func() { sb, err = index.DecodeSuperblock(b) })
		if err != nil {
			var fe *index.FormatError
			if !errors.Is(err, index.ErrNoSuperblock) && !errors.As(err, &fe) {
				t.Fatalf("error %T %v is neither ErrNoSuperblock nor an *index.FormatError", err, err)
			}
			return
		}
		if allocs != 0 {
			t.Errorf("DecodeSuperblock allocated %v times for a valid superblock", allocs)
		}
		if sb.Offset < 0 {
			t.Fatalf("negative offset %d", sb.Offset)
		}
		i := int(sb.Generation % 2)
		lo := i * index.SuperblockSlot
		if lo+64 > len(b) {
			t.Fatalf("decoded slot %d is not in the %d bytes", i, len(b))
		}
		re := make([]byte, 64)
		index.PutSuperblockSlot(re, sb)
		if !bytes.Equal(re, b[lo:lo+64]) {
			t.Fatalf("re-encoded slot %d differs:\n got  %x\n want %x", i, re, b[lo:lo+64])
		}
		// The other slot alone, at its place.
		other := 1 - i
		olo := other * index.SuperblockSlot
		if olo+64 <= len(b) {
			alone := make([]byte, index.SuperblockSize)
			copy(alone[olo:], b[olo:olo+64])
			if o, err := index.DecodeSuperblock(alone); err == nil && o.Generation > sb.Generation {
				t.Fatalf("slot %d has generation %d, yet slot %d (generation %d) won", other, o.Generation, i, sb.Generation)
			}
		}
	})
}
