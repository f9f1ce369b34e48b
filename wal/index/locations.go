package index

import (
	"iter"
	"slices"
	"sort"
)

// Locations maps the seqs of one segment to the offsets of their frames.
// Records appended in seq order without gaps are stored densely (4 bytes a
// record); a compacted segment, whose seqs have gaps, sparsely. Not safe
// for concurrent use: the log guards it with its lock.
type Locations struct {
	base  uint64
	dense []uint32
	seqs  []uint64
	offs  []uint32
}

// NewLocations returns an empty map for a segment whose first seq is base.
func NewLocations(base uint64) *Locations { return &Locations{base: base} }

// Add records that seq's frame is at off. Seqs must be added ascending.
func (l *Locations) Add(seq uint64, off int64) {
	if l.seqs == nil && seq == l.base+uint64(len(l.dense)) {
		if len(l.dense) == cap(l.dense) {
			// Double: append grows a large slice by a quarter, which
			// allocated and copied some 20 bytes a record.
			l.dense = slices.Grow(l.dense, max(len(l.dense), 1024))
		}
		l.dense = append(l.dense, uint32(off))
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
	l.offs = append(l.offs, uint32(off))
}

// Lookup returns the offset of seq's frame.
func (l *Locations) Lookup(seq uint64) (int64, bool) {
	if l.seqs == nil {
		if seq < l.base || seq-l.base >= uint64(len(l.dense)) {
			return 0, false
		}
		return int64(l.dense[seq-l.base]), true
	}
	i := sort.Search(len(l.seqs), func(i int) bool { return l.seqs[i] >= seq })
	if i < len(l.seqs) && l.seqs[i] == seq {
		return int64(l.offs[i]), true
	}
	return 0, false
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

// All yields the seqs mapped and their offsets, ascending.
func (l *Locations) All() iter.Seq2[uint64, int64] {
	return func(yield func(uint64, int64) bool) {
		if l.seqs == nil {
			for i, off := range l.dense {
				if !yield(l.base+uint64(i), int64(off)) {
					return
				}
			}
			return
		}
		for i, q := range l.seqs {
			if !yield(q, int64(l.offs[i])) {
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

// Trim releases spare capacity, for a segment that takes no more records.
func (l *Locations) Trim() {
	if l.seqs == nil {
		l.dense = append([]uint32(nil), l.dense...)
		return
	}
	l.seqs = append([]uint64(nil), l.seqs...)
	l.offs = append([]uint32(nil), l.offs...)
}
