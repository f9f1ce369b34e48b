package index

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"slices"
	"sync/atomic"
)

// MaxSpan is the most seqs one segment's bitmap may cover (a 32 MiB
// bitmap): a segment, compacted or merged, spanning more is damage, and a
// checkpoint entry claiming more is rejected before anything is allocated.
// Part of the on-disk format's limits.
const MaxSpan = 1 << 28

// Acks is the acknowledgement bitmap of one segment: a bit for each seq of
// [Base, Base+Len). On a bitmap from NewAcks, Set and Has are safe for
// concurrent use; the capacity is fixed at creation so that the words
// never move.
//
// A bitmap decoded from a checkpoint entry flagged "no seq" or "every seq"
// acknowledged holds no words (full says which): decoding allocates
// nothing for bits the input does not carry. Such a bitmap is read
// concurrently like any other; its first Set allocates the words and
// must not race with other calls.
//
// A sparse bitmap (NewSparseAcks) has a bit only for a list of seqs, the
// records of a compacted segment, and counts every other seq of its range
// as acknowledged: its memory is proportional to the records, not to the
// range, which may be up to MaxSpan seqs for a file of a few KiB. Set and
// Has are safe for concurrent use on it too (the list never changes);
// Has costs a binary search.
type Acks struct {
	base  uint64
	n     uint64
	words []uint64 // nil for a uniform bitmap
	full  bool     // with words nil: every seq is acknowledged
	// seqs, if not nil, makes the bitmap sparse: bit i of words is seqs[i]
	// (ascending, in the range), and every other seq is acknowledged.
	// Never modified once set: clones share it.
	seqs []uint64
}

// NewSparseAcks returns a bitmap of n seqs from base in which only seqs,
// ascending and in the range, may be unacknowledged (they start so):
// every other seq of the range is acknowledged. It keeps seqs. Its memory
// is proportional to len(seqs), whatever n.
func NewSparseAcks(base, n uint64, seqs []uint64) *Acks {
	if seqs == nil {
		seqs = []uint64{}
	}
	return &Acks{base: base, n: n, seqs: seqs, words: make([]uint64, (len(seqs)+63)/64)}
}

// NewAcksOf returns a bitmap of n seqs from base in which only seqs,
// ascending and in the range, may be unacknowledged (they start so):
// every other seq of the range is acknowledged. It is sparse (see
// NewSparseAcks) when that takes less memory than a bit for each seq of
// the range, so that its size is bounded by a word a seq of seqs.
func NewAcksOf(base, n uint64, seqs []uint64) *Acks {
	if sparseWorthIt(n, len(seqs)) {
		return NewSparseAcks(base, n, slices.Clone(seqs))
	}
	a := NewAcks(base, n)
	from := base
	for _, q := range seqs {
		a.SetRange(from, q)
		from = q + 1
	}
	a.SetRange(from, base+n)
	return a
}

// sparseWorthIt reports whether a bitmap of n seqs of which only records
// may be unacknowledged is smaller sparse: when its range needs more
// words than it has records.
func sparseWorthIt(n uint64, records int) bool { return (n+63)/64 > uint64(records) }

// Sparse reports whether the bitmap is sparse (NewSparseAcks).
func (a *Acks) Sparse() bool { return a.seqs != nil }

// listed returns the index in a sparse bitmap's list of seq, if listed.
func (a *Acks) listed(seq uint64) (int, bool) { return slices.BinarySearch(a.seqs, seq) }

// bit reports whether bit i of the words is set.
func (a *Acks) bit(i uint64) bool { return WordBit(a.words, i) }

// WordBit reports whether bit i of words, a dense bitmap's words (Words),
// is set, read with an atomic load: Set and SetRange may set bits
// meanwhile.
func WordBit(words []uint64, i uint64) bool {
	return atomic.LoadUint64(&words[i/64])&(1<<(i%64)) != 0
}

// setBit sets bit i of the words and reports whether it was not already.
func (a *Acks) setBit(i uint64) bool {
	m := uint64(1) << (i % 64)
	return atomic.OrUint64(&a.words[i/64], m)&m == 0
}

// uniformAcks returns a bitmap of n seqs from base with no bit set, or
// every bit set if full, without allocating its words.
func uniformAcks(base, n uint64, full bool) *Acks {
	return &Acks{base: base, n: n, full: full}
}

// materialize allocates the words of a uniform bitmap.
func (a *Acks) materialize() {
	w := make([]uint64, (a.n+63)/64)
	if a.full {
		for i := range w {
			w[i] = lastWordMask(a.n, i)
		}
	}
	a.words = w
}

// lastWordMask returns word i of a bitmap of n seqs with every bit set.
func lastWordMask(n uint64, i int) uint64 {
	if r := n % 64; r != 0 && uint64(i) == (n-1)/64 {
		return 1<<r - 1
	}
	return ^uint64(0)
}

// NewAcks returns a bitmap for n seqs starting at base, all unacknowledged.
func NewAcks(base, n uint64) *Acks {
	return &Acks{base: base, n: n, words: make([]uint64, (n+63)/64)}
}

// Rebase sets the first seq of a bitmap (from NewAcks) in which no seq
// is acknowledged yet: one made before the seq its segment starts at was
// known.
func (a *Acks) Rebase(base uint64) {
	if a.seqs != nil || a.full || slices.ContainsFunc(a.words, func(w uint64) bool { return w != 0 }) {
		panic("index: Rebase of a bitmap with acknowledged seqs")
	}
	a.base = base
}

// Base is the first seq covered.
func (a *Acks) Base() uint64 { return a.base }

// Len is the number of seqs covered.
func (a *Acks) Len() uint64 { return a.n }

// Covers reports whether seq is in the bitmap's range.
func (a *Acks) Covers(seq uint64) bool { return seq >= a.base && seq-a.base < a.n }

// Has reports whether seq is acknowledged. Seqs out of range are not.
func (a *Acks) Has(seq uint64) bool {
	if !a.Covers(seq) {
		return false
	}
	if a.seqs != nil {
		i, ok := a.listed(seq)
		return !ok || a.bit(uint64(i))
	}
	if a.words == nil {
		return a.full
	}
	return a.bit(seq - a.base)
}

// Words returns the bitmap's words and the seqs they cover, [base,
// base+n), if it has words of a bit a seq (ok: not sparse, not uniform),
// for a reader that tests many seqs in a row: seq's bit is
// WordBit(words, seq-base). The words never move but by Truncate.
func (a *Acks) Words() (base, n uint64, words []uint64, ok bool) {
	if a.seqs != nil || a.words == nil {
		return 0, 0, nil, false
	}
	return a.base, a.n, a.words, true
}

// Set marks seq acknowledged and reports whether it was not already.
func (a *Acks) Set(seq uint64) bool {
	if !a.Covers(seq) {
		return false
	}
	if a.seqs != nil {
		i, ok := a.listed(seq)
		return ok && a.setBit(uint64(i))
	}
	if a.words == nil {
		if a.full {
			return false
		}
		a.materialize()
	}
	return a.setBit(seq - a.base)
}

// SetRange marks the seqs [from, to) acknowledged, a word at a time; seqs
// out of range are ignored. Safe for concurrent use like Set.
func (a *Acks) SetRange(from, to uint64) {
	from, to = max(from, a.base), min(to, a.base+a.n)
	if from >= to || a.words == nil && a.full {
		return
	}
	if a.seqs != nil {
		i, _ := a.listed(from)
		for ; i < len(a.seqs) && a.seqs[i] < to; i++ {
			a.setBit(uint64(i))
		}
		return
	}
	if a.words == nil {
		a.materialize()
	}
	for i, j := from-a.base, to-a.base; i < j; {
		w := i / 64
		lo := i % 64
		hi := min(j-w*64, 64) // bits [lo, hi) of word w
		mask := ^uint64(0) >> (64 - (hi - lo)) << lo
		atomic.OrUint64(&a.words[w], mask)
		i = (w + 1) * 64
	}
}

// Truncate shrinks the range to n seqs (a sealed segment's final range).
// Bits past n are cleared, and the words past them released: the words
// left are copied unless they are most of them (the words move). Not safe
// concurrently with any other call.
func (a *Acks) Truncate(n uint64) {
	if n >= a.n {
		return
	}
	a.n = n
	var bits uint64
	a.seqs, bits = a.kept(n)
	if a.words == nil {
		return
	}
	w := (bits + 63) / 64
	if spare := uint64(cap(a.words)) - w; spare > w/8 {
		// Reslicing would keep the whole array: the bitmap of an active
		// segment covers every record its file could hold.
		a.words = append(make([]uint64, 0, w), a.words[:w]...)
	} else {
		a.words = a.words[:w:w]
	}
	clearPast(a.words, bits)
}

// kept returns what Truncate(n) keeps of a's seq list (nil for a plain
// bitmap) and how many bits of the words it keeps: one per listed seq
// kept, or one per seq below a.base+n.
func (a *Acks) kept(n uint64) (seqs []uint64, bits uint64) {
	if a.seqs == nil {
		return nil, n
	}
	k, _ := a.listed(a.base + n)
	return a.seqs[:k:k], uint64(k)
}

// clearPast clears the bits of words from bit bits on (words holds
// exactly the words those bits need).
func clearPast(words []uint64, bits uint64) {
	if r := bits % 64; r != 0 {
		words[len(words)-1] &= (1 << r) - 1
	}
}

// Count returns the number of acknowledged seqs.
func (a *Acks) Count() int {
	if a.seqs != nil {
		return int(a.n) - len(a.seqs) + a.countWords()
	}
	if a.words == nil {
		if a.full {
			return int(a.n)
		}
		return 0
	}
	return a.countWords()
}

// AckedIn returns the number of acknowledged seqs of [from, to) (seqs
// out of the bitmap's range are not). Its cost is that of the words (or,
// if sparse, the listed seqs) of the range, not of its seqs.
func (a *Acks) AckedIn(from, to uint64) int {
	from, to = max(from, a.base), min(to, a.base+a.n)
	if from >= to {
		return 0
	}
	switch {
	case a.seqs != nil:
		i, _ := a.listed(from)
		j, _ := a.listed(to)
		c := int(to-from) - (j - i) // the seqs not listed are acknowledged
		for ; i < j; i++ {
			if a.bit(uint64(i)) {
				c++
			}
		}
		return c
	case a.words == nil:
		if a.full {
			return int(to - from)
		}
		return 0
	}
	c := 0
	for i, j := from-a.base, to-a.base; i < j; {
		w := atomic.LoadUint64(&a.words[i/64]) >> (i % 64)
		k := min(64-i%64, j-i) // the bits of this word from i
		if k < 64 {
			w &= 1<<k - 1
		}
		c += bits.OnesCount64(w)
		i += k
	}
	return c
}

func (a *Acks) countWords() int {
	c := 0
	for i := range a.words {
		c += bits.OnesCount64(atomic.LoadUint64(&a.words[i]))
	}
	return c
}

// NextUnacked returns the first seq of [from, to) that is not
// acknowledged, if there is one. Its cost is that of the words (or, if
// sparse, the listed seqs) it looks at, not of the seqs it skips.
func (a *Acks) NextUnacked(from, to uint64) (uint64, bool) {
	from, to = max(from, a.base), min(to, a.base+a.n)
	if from >= to {
		return 0, false
	}
	switch {
	case a.seqs != nil:
		i, _ := a.listed(from)
		for ; i < len(a.seqs) && a.seqs[i] < to; i++ {
			if w := atomic.LoadUint64(&a.words[i/64]); w == ^uint64(0) {
				i |= 63 // the rest of this word is acknowledged
			} else if w&(1<<(i%64)) == 0 {
				return a.seqs[i], true
			}
		}
		return 0, false
	case a.words == nil:
		return from, !a.full
	}
	i, j := from-a.base, to-a.base
	for i < j {
		w := ^atomic.LoadUint64(&a.words[i/64]) >> (i % 64) // the unacknowledged bits from i
		if w != 0 {
			if k := i + uint64(bits.TrailingZeros64(w)); k < j {
				return a.base + k, true
			}
			return 0, false
		}
		i = (i/64 + 1) * 64
	}
	return 0, false
}

// ErrAckPayload is returned for an ack frame payload that does not decode.
var ErrAckPayload = errors.New("index: malformed ack payload")

// maxAckRanges bounds the ranges one ack frame may hold.
const maxAckRanges = 1 << 20

// AppendAckPayload encodes seqs, which must be sorted ascending without
// duplicates, as an ack frame payload appended to dst.
func AppendAckPayload(dst []byte, seqs []uint64) []byte {
	if len(seqs) == 0 {
		return dst
	}
	n := 1
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	prevEnd := uint64(0)
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j] == seqs[j-1]+1 {
			j++
		}
		dst = binary.AppendUvarint(dst, seqs[i]-prevEnd)
		dst = binary.AppendUvarint(dst, uint64(j-i-1))
		prevEnd = seqs[j-1] + 1
		i = j
	}
	return dst
}

// AckPayloads encodes seqs, sorted ascending without duplicates, as ack
// frame payloads that DecodeAckPayload accepts, whatever their number: as
// many payloads as it takes to hold at most maxAckRanges ranges each.
func AckPayloads(seqs []uint64) [][]byte {
	return ackPayloads(seqs, maxAckRanges)
}

func ackPayloads(seqs []uint64, maxRanges int) [][]byte {
	var out [][]byte
	for len(seqs) > 0 {
		n, ranges := 0, 0
		for ; n < len(seqs); n++ {
			if n == 0 || seqs[n] != seqs[n-1]+1 {
				if ranges == maxRanges {
					break
				}
				ranges++
			}
		}
		out = append(out, AppendAckPayload(nil, seqs[:n]))
		seqs = seqs[n:]
	}
	return out
}

// DecodeAckPayload calls fn for each range [start, start+n) of an ack
// payload. It never panics and allocates nothing; ranges are ascending and
// disjoint, and seqs are positive, or it returns ErrAckPayload.
func DecodeAckPayload(p []byte, fn func(start, n uint64)) error {
	count, k := binary.Uvarint(p)
	if k <= 0 || count == 0 || count > maxAckRanges {
		return ErrAckPayload
	}
	p = p[k:]
	prevEnd := uint64(0)
	for range count {
		delta, k1 := binary.Uvarint(p)
		if k1 <= 0 {
			return ErrAckPayload
		}
		p = p[k1:]
		lenm1, k2 := binary.Uvarint(p)
		if k2 <= 0 {
			return ErrAckPayload
		}
		p = p[k2:]
		start := prevEnd + delta
		if start < prevEnd || start == 0 || (prevEnd > 0 && delta == 0) || lenm1 >= 1<<62 || start+lenm1 < start || start+lenm1 == 1<<64-1 {
			return ErrAckPayload
		}
		fn(start, lenm1+1)
		prevEnd = start + lenm1 + 1
	}
	if len(p) != 0 {
		return ErrAckPayload
	}
	return nil
}

// TruncatedClone returns a copy of the bitmap as it is now, truncated to
// n seqs: what Clone then Truncate return, without copying the words
// past n first (a rotation seals an active segment's bitmap, made for
// every record the file could hold, under the log's lock).
func (a *Acks) TruncatedClone(n uint64) *Acks {
	if n >= a.n || a.words == nil && a.seqs == nil {
		c := a.Clone()
		c.Truncate(n)
		return c
	}
	seqs, bits := a.kept(n)
	c := &Acks{base: a.base, n: n, seqs: seqs, words: make([]uint64, (bits+63)/64)}
	for i := range c.words {
		c.words[i] = atomic.LoadUint64(&a.words[i])
	}
	clearPast(c.words, bits)
	return c
}

// Clone returns a copy of the bitmap as it is now.
func (a *Acks) Clone() *Acks {
	if a.words == nil && a.seqs == nil {
		return uniformAcks(a.base, a.n, a.full)
	}
	c := &Acks{base: a.base, n: a.n, words: make([]uint64, len(a.words)), seqs: a.seqs}
	for i := range a.words {
		c.words[i] = atomic.LoadUint64(&a.words[i])
	}
	return c
}
