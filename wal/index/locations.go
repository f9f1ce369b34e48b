package index

import (
	"iter"
	"slices"
	"sort"
)

// Locations maps the seqs of one segment to their frames: where each
// starts and the two lengths its header gives, so that acknowledging a
// record reads nothing from the file. Records appended in seq order
// without gaps are stored densely (4 bytes a record for the offset); a
// compacted segment, whose seqs have gaps, sparsely. The lengths take 2
// bytes a record, 4 more for the rare ones of 64 KiB or more, and the raw
// lengths only once one differs from its stored length (a compressed or
// sealed record). Not safe for concurrent use: the log guards it with
// its lock.
type Locations struct {
	base  uint64
	dense []uint32
	seqs  []uint64
	offs  []uint32
	// By position (the i-th record added): the stored payload lengths,
	// and the raw lengths, kept only once one differs from its stored
	// length (rawKept).
	stored, raw lengths
	rawKept     bool
}

// Loc is where a record's frame is, and its lengths.
type Loc struct {
	Off    int64  // the frame's offset in the segment file
	Stored uint32 // the payload bytes the frame stores
	Raw    uint32 // the record's own length (uncompressed, unsealed)
}

// NewLocations returns an empty map for a segment whose first seq is base.
func NewLocations(base uint64) *Locations { return &Locations{base: base} }

// Rebase sets the first seq of a map that holds no record yet: one made
// (and given room with Reserve) before the seq its segment starts at was
// known.
func (l *Locations) Rebase(base uint64) {
	if l.Len() != 0 {
		panic("index: Rebase of a map that holds records")
	}
	l.base = base
}

// Add records seq's frame. Seqs must be added ascending.
func (l *Locations) Add(seq uint64, loc Loc) {
	// The common case in one piece: the next seq of a dense map, equal
	// lengths below 64 KiB, and room reserved (Reserve). Open's scan adds
	// every record it finds.
	if l.seqs == nil && !l.rawKept && loc.Raw == loc.Stored && loc.Stored < inBig &&
		seq == l.base+uint64(len(l.dense)) && len(l.dense) < cap(l.dense) && len(l.stored.small) < cap(l.stored.small) {
		l.dense = append(l.dense, uint32(loc.Off))
		l.stored.small = append(l.stored.small, uint16(loc.Stored))
		return
	}
	l.addLengths(loc.Stored, loc.Raw)
	off := uint32(loc.Off)
	if l.seqs == nil && seq == l.base+uint64(len(l.dense)) {
		grow(&l.dense)
		l.dense = append(l.dense, off)
		return
	}
	if l.seqs == nil && len(l.dense) > 0 {
		// Turn sparse: move the dense run over.
		l.seqs = make([]uint64, len(l.dense), len(l.dense)+1)
		for i := range l.dense {
			l.seqs[i] = l.base + uint64(i)
		}
		l.offs, l.dense = l.dense, nil
	}
	if l.seqs == nil {
		l.seqs = []uint64{}
	}
	l.seqs = append(l.seqs, seq)
	l.offs = append(l.offs, off)
}

func (l *Locations) addLengths(stored, raw uint32) {
	if raw != stored && !l.rawKept {
		// The first that differs: every one before it was equal.
		l.rawKept = true
		for i := range l.stored.len() {
			l.raw.add(l.stored.at(i))
		}
	}
	l.stored.add(stored)
	if l.rawKept {
		l.raw.add(raw)
	}
}

// grow makes room for one more element in *s, doubling its capacity when
// full: append grows a large slice by a quarter, which allocated and
// copied some 20 bytes a record. It changes *s only then, so that the
// append after it (*s = append(*s, v)) stores only the length: storing
// the slice's pointer costs a write barrier while the garbage collector
// marks, which Open's scan, adding a record at a time, paid on every one.
func grow[T any](s *[]T) {
	if len(*s) == cap(*s) {
		*s = slices.Grow(*s, max(len(*s), 1024))
	}
}

// bigLength is a length too large for lengths.small, by position.
type bigLength struct{ i, n uint32 }

// lengths is a list of lengths: 2 bytes each, and a side list for the
// few of 64 KiB or more, which a segment can hold only so many of.
type lengths struct {
	small []uint16
	big   []bigLength // ascending by position
}

// inBig marks a length kept in big.
const inBig = 1<<16 - 1

func (s *lengths) len() int { return len(s.small) }

func (s *lengths) add(n uint32) {
	if n >= inBig {
		s.big = append(s.big, bigLength{uint32(len(s.small)), n})
		n = inBig
	}
	grow(&s.small)
	s.small = append(s.small, uint16(n))
}

func (s *lengths) at(i int) uint32 {
	if n := s.small[i]; n != inBig {
		return uint32(n)
	}
	j := sort.Search(len(s.big), func(j int) bool { return s.big[j].i >= uint32(i) })
	return s.big[j].n
}

func (s *lengths) trim() {
	s.small = trimmed(s.small)
	s.big = trimmed(s.big)
}

// trimmed returns s without its spare capacity: a copy of it, unless the
// spare is small (an eighth of its length at most, as after a Reserve that
// guessed well), which is not worth copying a large slice for.
func trimmed[T any](s []T) []T {
	if cap(s)-len(s) <= len(s)/8 {
		return s
	}
	return append([]T(nil), s...)
}

// loc returns the location of the i-th record added, at off.
func (l *Locations) loc(i int, off uint32) Loc {
	c := Loc{Off: int64(off), Stored: l.stored.at(i)}
	c.Raw = c.Stored
	if l.rawKept {
		c.Raw = l.raw.at(i)
	}
	return c
}

// index returns the position of seq, if mapped.
func (l *Locations) index(seq uint64) (int, bool) {
	if l.seqs == nil {
		if seq < l.base || seq-l.base >= uint64(len(l.dense)) {
			return 0, false
		}
		return int(seq - l.base), true
	}
	return slices.BinarySearch(l.seqs, seq)
}

// offsets returns the frames' offsets, by position.
func (l *Locations) offsets() []uint32 {
	if l.seqs == nil {
		return l.dense
	}
	return l.offs
}

// Find returns seq's location.
func (l *Locations) Find(seq uint64) (Loc, bool) {
	i, ok := l.index(seq)
	if !ok {
		return Loc{}, false
	}
	return l.loc(i, l.offsets()[i]), true
}

// Reserve makes room for n more records added densely after the last,
// so that adding them allocates nothing.
func (l *Locations) Reserve(n int) {
	if l.seqs != nil {
		return
	}
	if n > cap(l.dense)-len(l.dense) {
		l.dense = slices.Grow(l.dense, n)
	}
	if s := &l.stored.small; n > cap(*s)-len(*s) {
		*s = slices.Grow(*s, n)
	}
}

// Append adds o's records after l's, as Add would one by one: every
// seq of o must be above every seq of l. A dense o that follows on from a
// dense l is copied over whole, when neither keeps raw lengths apart. o is
// left as it was.
func (l *Locations) Append(o *Locations) {
	if l.seqs == nil && o.seqs == nil && o.base == l.base+uint64(len(l.dense)) && !l.rawKept && !o.rawKept {
		n := uint32(l.stored.len())
		l.dense = append(l.dense, o.dense...)
		l.stored.small = append(l.stored.small, o.stored.small...)
		for _, b := range o.stored.big {
			l.stored.big = append(l.stored.big, bigLength{b.i + n, b.n})
		}
		return
	}
	for q, loc := range o.All() {
		l.Add(q, loc)
	}
}

// Lookup returns the offset of seq's frame.
func (l *Locations) Lookup(seq uint64) (int64, bool) {
	i, ok := l.index(seq)
	if !ok {
		return 0, false
	}
	return int64(l.offsets()[i]), true
}

// FrameFrom returns the offset of the first frame mapped at or after off,
// and false if there is none.
func (l *Locations) FrameFrom(off int64) (int64, bool) {
	offs := l.offsets()
	i := sort.Search(len(offs), func(i int) bool { return int64(offs[i]) >= off })
	if i == len(offs) {
		return 0, false
	}
	return int64(offs[i]), true
}

// RunFrom returns the last seq of the run of consecutive seqs mapped that
// starts at seq, and false if seq is not mapped.
func (l *Locations) RunFrom(seq uint64) (uint64, bool) {
	if l.seqs == nil {
		if seq < l.base || seq-l.base >= uint64(len(l.dense)) {
			return 0, false
		}
		return l.base + uint64(len(l.dense)) - 1, true
	}
	i, ok := slices.BinarySearch(l.seqs, seq)
	if !ok {
		return 0, false
	}
	for i+1 < len(l.seqs) && l.seqs[i+1] == l.seqs[i]+1 {
		i++
	}
	return l.seqs[i], true
}

// Len is the number of records mapped.
func (l *Locations) Len() int {
	if l.seqs == nil {
		return len(l.dense)
	}
	return len(l.seqs)
}

// Last returns the highest seq mapped.
func (l *Locations) Last() (uint64, bool) {
	if l.seqs == nil {
		if len(l.dense) == 0 {
			return 0, false
		}
		return l.base + uint64(len(l.dense)) - 1, true
	}
	if len(l.seqs) == 0 {
		return 0, false
	}
	return l.seqs[len(l.seqs)-1], true
}

// All yields the seqs mapped and their locations, ascending.
func (l *Locations) All() iter.Seq2[uint64, Loc] {
	return func(yield func(uint64, Loc) bool) {
		if l.seqs == nil {
			for i, off := range l.dense {
				if !yield(l.base+uint64(i), l.loc(i, off)) {
					return
				}
			}
			return
		}
		for i, q := range l.seqs {
			if !yield(q, l.loc(i, l.offs[i])) {
				return
			}
		}
	}
}

// AppendSeqs appends the seqs mapped, ascending, to dst.
func (l *Locations) AppendSeqs(dst []uint64) []uint64 {
	for q := range l.All() {
		dst = append(dst, q)
	}
	return dst
}

// Trim releases spare capacity, for a segment that takes no more records;
// where it is small (an eighth or less of what is used), it stays.
func (l *Locations) Trim() {
	l.stored.trim()
	l.raw.trim()
	if l.seqs == nil {
		l.dense = trimmed(l.dense)
		return
	}
	l.seqs = trimmed(l.seqs)
	l.offs = trimmed(l.offs)
}

// Split is one allocation for the dense maps of consecutive runs of seqs,
// the parts: the pieces of a segment that Open scans side by side, each
// filling its part on its own. Joined (Join), the parts are one map over
// the same storage, with nothing copied; the separate maps, joined by
// Append, took about twice the memory and a copy of every record's
// location.
type Split struct {
	starts []uint64 // each part's first seq, ascending
	dense  []uint32
	stored []uint16
}

// NewSplit returns a Split whose parts begin at starts (at least one,
// ascending), the last with room for last records; the others have room
// for exactly the seqs up to the next part's start.
func NewSplit(starts []uint64, last int) *Split {
	n := int(starts[len(starts)-1]-starts[0]) + last
	return &Split{starts: starts, dense: make([]uint32, n), stored: make([]uint16, n)}
}

// room returns where part i's room begins and ends in s's storage.
func (s *Split) room(i int) (lo, hi int) {
	lo, hi = int(s.starts[i]-s.starts[0]), len(s.dense)
	if i+1 < len(s.starts) {
		hi = int(s.starts[i+1] - s.starts[0])
	}
	return lo, hi
}

// Part returns an empty map for part i, holding its records in its room:
// adding more than fit moves them out of it (the map grows as any does).
func (s *Split) Part(i int) *Locations {
	lo, hi := s.room(i)
	return &Locations{base: s.starts[i], dense: s.dense[lo:lo:hi], stored: lengths{small: s.stored[lo:lo:hi]}}
}

// Join returns one map of the records of maps, the parts' maps as Part
// returned them and their scans filled them, if they can be one without
// a copy: each still begins at its part's start, is dense, keeps no raw
// lengths apart and holds its records in its room, and every part but
// the last filled its room; the parts' maps are not to be used after.
// Otherwise it returns nil, and the maps stay as they are, to be joined by
// Append.
func (s *Split) Join(maps []*Locations) *Locations {
	if len(maps) != len(s.starts) {
		return nil
	}
	var big []bigLength
	n := 0
	for i, m := range maps {
		lo, hi := s.room(i)
		k := len(m.dense)
		if m.base != s.starts[i] || m.seqs != nil || m.rawKept || len(m.stored.small) != k ||
			i+1 < len(maps) && k != hi-lo || !inRoom(m.dense, s.dense, lo) || !inRoom(m.stored.small, s.stored, lo) {
			return nil
		}
		for _, b := range m.stored.big {
			big = append(big, bigLength{b.i + uint32(lo), b.n})
		}
		n = lo + k
	}
	return &Locations{base: s.starts[0], dense: s.dense[:n], stored: lengths{small: s.stored[:n], big: big}}
}

// inRoom reports whether part, if it holds anything, is stored in all
// from position lo on.
func inRoom[T any](part, all []T, lo int) bool {
	return len(part) == 0 || lo < len(all) && &part[0] == &all[lo]
}
