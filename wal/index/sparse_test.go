package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/internal/testutil"
)

// randSeqsIn returns k distinct seqs of [base, base+n), ascending.
func randSeqsIn(r *rand.Rand, base, n uint64, k int) []uint64 {
	set := map[uint64]bool{}
	for len(set) < min(k, int(n)) {
		set[base+r.Uint64N(n)] = true
	}
	var out []uint64
	for q := range set {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}

// refAcks is the reference of a bitmap: the acknowledged seqs.
type refAcks struct {
	base, n uint64
	acked   map[uint64]bool
}

func (ref *refAcks) nextUnacked(from, to uint64) (uint64, bool) {
	for q := max(from, ref.base); q < min(to, ref.base+ref.n); q++ {
		if !ref.acked[q] {
			return q, true
		}
	}
	return 0, false
}

// checkAgainst compares every query of a with the reference.
func checkAgainst(t *testing.T, what string, a *Acks, ref *refAcks, r *rand.Rand) {
	t.Helper()
	count := 0
	for q := ref.base - 1; q <= ref.base+ref.n; q++ {
		want := ref.acked[q] && q >= ref.base && q < ref.base+ref.n
		if a.Has(q) != want {
			t.Fatalf("%s: Has(%d) = %v, want %v", what, q, !want, want)
		}
		if want {
			count++
		}
	}
	if a.Count() != count {
		t.Fatalf("%s: Count %d, want %d", what, a.Count(), count)
	}
	for range 50 {
		from := ref.base + r.Uint64N(ref.n+2) - 1
		to := from + r.Uint64N(ref.n+2)
		q, ok := a.NextUnacked(from, to)
		wq, wok := ref.nextUnacked(from, to)
		if q != wq || ok != wok {
			t.Fatalf("%s: NextUnacked(%d, %d) = %d, %v, want %d, %v", what, from, to, q, ok, wq, wok)
		}
	}
	for i := range int((ref.n + 63) / 64) {
		var w uint64
		for b := range uint64(64) {
			if q := ref.base + uint64(i)*64 + b; q < ref.base+ref.n && ref.acked[q] {
				w |= 1 << b
			}
		}
		if got := a.Word(i); got != w {
			t.Fatalf("%s: Word(%d) = %x, want %x", what, i, got, w)
		}
	}
}

// TestSparseAcks: a sparse bitmap (a bit for each listed seq, every other
// seq acknowledged) answers every query like the reference, through Set,
// SetRange, Clone, Truncate and TruncatedClone, whichever form NewAcksOf
// picks.
func TestSparseAcks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		base := 1 + r.Uint64N(1000)
		n := 1 + r.Uint64N(2000)
		listed := randSeqsIn(r, base, n, r.IntN(40))
		if round%4 == 0 { // more than a word of listed seqs
			n = 64*200 + r.Uint64N(2000)
			listed = randSeqsIn(r, base, n, 64+r.IntN(130))
		}
		ref := &refAcks{base: base, n: n, acked: map[uint64]bool{}}
		for q := base; q < base+n; q++ {
			ref.acked[q] = !slices.Contains(listed, q)
		}
		a := NewAcksOf(base, n, listed)
		if a.Sparse() != sparseWorthIt(n, len(listed)) {
			t.Fatalf("round %d: NewAcksOf of %d seqs, %d listed: sparse %v", round, n, len(listed), a.Sparse())
		}
		checkAgainst(t, "new", a, ref, r)
		for range 10 {
			switch q := base + r.Uint64N(n); r.IntN(3) {
			case 0:
				if got := a.Set(q); got != !ref.acked[q] {
					t.Fatalf("round %d: Set(%d) = %v", round, q, got)
				}
				ref.acked[q] = true
			case 1:
				to := q + r.Uint64N(n/4+1)
				a.SetRange(q, to)
				for s := q; s < min(to, base+n); s++ {
					ref.acked[s] = true
				}
			default:
				if len(listed) > 0 {
					q = listed[r.IntN(len(listed))]
					a.Set(q)
					ref.acked[q] = true
				}
			}
		}
		checkAgainst(t, "set", a, ref, r)
		c := a.Clone()
		checkAgainst(t, "clone", c, ref, r)
		if len(listed) > 0 && !ref.acked[listed[0]] {
			a.Set(listed[0]) // the clone is a copy
			if c.Has(listed[0]) {
				t.Fatalf("round %d: Set on the original changed the clone", round)
			}
			ref.acked[listed[0]] = true
		}
		k := r.Uint64N(n + 1)
		tc := a.TruncatedClone(k)
		a.Truncate(k)
		ref.n = k
		if k > 0 {
			checkAgainst(t, "truncated", a, ref, r)
			checkAgainst(t, "truncated clone", tc, ref, r)
		}
		if tc.Len() != a.Len() || tc.Sparse() != a.Sparse() || len(tc.words) != len(a.words) {
			t.Fatalf("round %d: TruncatedClone(%d) has %d seqs, sparse %v, %d words; Truncate %d, %v, %d",
				round, k, tc.Len(), tc.Sparse(), len(tc.words), a.Len(), a.Sparse(), len(a.words))
		}
	}
}

// TestSparseAcksMemory: a sparse bitmap of MaxSpan seqs with a few listed
// takes a few words, not 32 MiB.
func TestSparseAcksMemory(t *testing.T) {
	seqs := []uint64{1, 1 << 20, MaxSpan}
	var a *Acks
	n := testutil.LeastAlloc(3, func() {
		a = NewAcksOf(1, MaxSpan, seqs)
		a.SetRange(1, MaxSpan)
	})
	if n > 1<<10 {
		t.Fatalf("a bitmap of %d seqs, %d listed, allocated %d bytes", uint64(MaxSpan), len(seqs), n)
	}
	if !a.Sparse() || a.Count() != MaxSpan-1 || a.Has(MaxSpan) || !a.Has(2) {
		t.Fatalf("sparse %v, count %d", a.Sparse(), a.Count())
	}
}

// randAcks returns a bitmap of n seqs from base of a random form and
// content, and the acknowledged seqs.
func randAcks(r *rand.Rand, base, n uint64) (*Acks, map[uint64]bool) {
	acked := map[uint64]bool{}
	var a *Acks
	switch r.IntN(4) {
	case 0:
		full := r.IntN(2) == 0
		a = uniformAcks(base, n, full)
		for q := base; q < base+n; q++ {
			acked[q] = full
		}
		return a, acked
	case 1:
		a = NewAcks(base, n)
	default:
		a = NewAcksOf(base, n, randSeqsIn(r, base, n, r.IntN(8)))
	}
	for range r.IntN(int(n)) {
		a.Set(base + r.Uint64N(n))
	}
	for q := base; q < base+n; q++ {
		acked[q] = a.Has(q)
	}
	return a, acked
}

// TestCheckpointSparseEntries: checkpoints of bitmaps of every form
// round-trip; an entry is written sparse exactly when its list is shorter
// than its words, and the version is 2 exactly when one is. Fill, Acked
// and AckedUntil agree with each other on every seq.
func TestCheckpointSparseEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sparseSeen := 0
	for round := range 300 {
		var c Checkpoint
		acked := map[uint64]bool{}
		q := 1 + r.Uint64N(100)
		for i := range r.IntN(5) {
			q += r.Uint64N(200) // seqs of reclaimed segments between entries
			n := 1 + r.Uint64N(1500)
			a, m := randAcks(r, q, n)
			for s, v := range m {
				acked[s] = v
			}
			c.Segments = append(c.Segments, SegmentAcks{ID: uint64(2*i + 1), Acks: a})
			q += n
		}
		c.SealedEnd = q + r.Uint64N(100)
		c.NextSeq = c.SealedEnd + 1
		b := AppendCheckpoint(nil, c)
		got, err := DecodeCheckpoint(b)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if re := AppendCheckpoint(nil, got); !bytes.Equal(re, b) {
			t.Fatalf("round %d: re-encoding differs", round)
		}
		anySparse := false
		for i, e := range got.Segments {
			a := c.Segments[i].Acks
			un := a.Len() - uint64(a.Count())
			want := un > 0 && un < a.Len() && sparseEntry(a.Len(), un)
			if e.Acks.Sparse() != want {
				t.Fatalf("round %d entry %d: %d of %d unacknowledged decoded sparse=%v", round, i, un, a.Len(), e.Acks.Sparse())
			}
			anySparse = anySparse || want
			for s := a.Base(); s < a.Base()+a.Len(); s++ {
				if e.Acks.Has(s) != a.Has(s) {
					t.Fatalf("round %d entry %d: seq %d decoded %v", round, i, s, !a.Has(s))
				}
			}
		}
		if v := binary.LittleEndian.Uint16(b[8:]); (v == CheckpointVersion) != anySparse || v != Version && v != CheckpointVersion {
			t.Fatalf("round %d: version %d with sparse entries %v", round, v, anySparse)
		}
		if anySparse {
			sparseSeen++
		}
		// Acked: set in its entry, or below SealedEnd and in none.
		lo, hi := uint64(1), c.NextSeq+10
		for s := lo; s < hi; s++ {
			v, inEntry := acked[s]
			want := s < c.SealedEnd && (!inEntry || v)
			if got.Acked(s) != want {
				t.Fatalf("round %d: Acked(%d) = %v, want %v", round, s, !want, want)
			}
		}
		for range 50 {
			from := lo + r.Uint64N(hi-lo)
			to := from + r.Uint64N(hi-from)
			end := got.AckedUntil(from, to)
			if end < from || end > max(to, from) || end == from && from < to && got.Acked(from) {
				t.Fatalf("round %d: AckedUntil(%d, %d) = %d", round, from, to, end)
			}
			for s := from; s < end; s++ {
				if !got.Acked(s) {
					t.Fatalf("round %d: AckedUntil(%d, %d) = %d, but %d is not acknowledged", round, from, to, end, s)
				}
			}
		}
		// Fill, into a dense and a sparse target over a random range.
		tb := lo + r.Uint64N(hi-lo)
		tn := 1 + r.Uint64N(hi-tb)
		for _, target := range []*Acks{NewAcks(tb, tn), NewSparseAcks(tb, tn, randSeqsIn(r, tb, tn, 5))} {
			got.Fill(target)
			for s := tb; s < tb+tn; s++ {
				want := got.Acked(s)
				if _, listed := target.listed(s); target.Sparse() && !listed {
					want = true // not listed: acknowledged whatever the checkpoint says
				}
				if target.Has(s) != want {
					t.Fatalf("round %d: Fill (sparse %v) left %d %v, want %v", round, target.Sparse(), s, !want, want)
				}
			}
		}
	}
	if sparseSeen < 20 {
		t.Fatalf("only %d checkpoints with a sparse entry", sparseSeen)
	}
}

// craftCheckpoint returns a checkpoint of version v holding one entry
// whose bits field is field, followed by words.
func craftCheckpoint(v uint16, base, field uint64, words ...uint64) []byte {
	b := AppendCheckpoint(nil, Checkpoint{NextSeq: base + field&bitsMask, SealedEnd: base + field&bitsMask})
	b = b[:len(b)-8]
	binary.LittleEndian.PutUint16(b[8:], v)
	binary.LittleEndian.PutUint32(b[12:], 1)
	b = binary.LittleEndian.AppendUint64(b, 1)
	b = binary.LittleEndian.AppendUint64(b, base)
	b = binary.LittleEndian.AppendUint64(b, field)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// TestCheckpointSparseEntryRefused: a sparse entry in a version 1
// checkpoint, a version 2 checkpoint without one, lists out of order or
// out of range, lists longer than the words, and bitmaps a list would
// hold shorter (in version 2) are damage; a version 1 checkpoint of such
// a bitmap, as code before sparse entries wrote it, is read.
func TestCheckpointSparseEntryRefused(t *testing.T) {
	const base, n = 100, 64 * 10
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"sparse in version 1", craftCheckpoint(Version, base, n|bitsSparse, 1, base+3)},
		{"version 2 without sparse", craftCheckpoint(CheckpointVersion, base, n|bitsAll)},
		{"empty list", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 0)},
		{"list as long as the words", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 9, base, base+1, base+2, base+3, base+4, base+5, base+6, base+7, base+8)},
		{"out of order", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 2, base+5, base+3)},
		{"repeated", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 2, base+5, base+5)},
		{"below the range", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 1, base-1)},
		{"past the range", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 1, base+n)},
		{"list truncated", craftCheckpoint(CheckpointVersion, base, n|bitsSparse, 3, base+1)},
		{"huge list", craftCheckpoint(CheckpointVersion, base, MaxSpan|bitsSparse, 1<<40)},
		{"bitmap a list holds", craftCheckpoint(CheckpointVersion, base, n, ^uint64(1), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0))},
	} {
		_, err := DecodeCheckpoint(c.b)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: DecodeCheckpoint = %v, want a *FormatError", c.name, err)
		}
	}
	// The same bitmap, version 1: read, and written sparse again.
	b := craftCheckpoint(Version, base, n, ^uint64(1), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0))
	c, err := DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Segments[0].Acks; a.Has(base) || !a.Has(base+1) || a.Count() != n-1 {
		t.Fatalf("version 1 bitmap decoded wrong: count %d", a.Count())
	}
	re := AppendCheckpoint(nil, c)
	if v := binary.LittleEndian.Uint16(re[8:]); v != CheckpointVersion || len(re) >= len(b) {
		t.Fatalf("re-encoded as version %d in %d bytes (was %d)", v, len(re), len(b))
	}
	if _, err := DecodeCheckpoint(re); err != nil {
		t.Fatal(err)
	}
}
