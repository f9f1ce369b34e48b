package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/internal/testutil"
)

type rng struct{ start, n uint64 }

// refRanges is the reference: the maximal runs of consecutive seqs.
func refRanges(seqs []uint64) []rng {
	var rs []rng
	for _, q := range seqs {
		if n := len(rs); n > 0 && rs[n-1].start+rs[n-1].n == q {
			rs[n-1].n++
			continue
		}
		rs = append(rs, rng{q, 1})
	}
	return rs
}

// refEncode is the reference encoding of ranges.
func refEncode(rs []rng) []byte {
	b := binary.AppendUvarint(nil, uint64(len(rs)))
	prevEnd := uint64(0)
	for _, r := range rs {
		b = binary.AppendUvarint(b, r.start-prevEnd)
		b = binary.AppendUvarint(b, r.n-1)
		prevEnd = r.start + r.n
	}
	return b
}

func decodeRanges(p []byte) ([]rng, error) {
	var rs []rng
	err := DecodeAckPayload(p, func(start, n uint64) { rs = append(rs, rng{start, n}) })
	return rs, err
}

func randSeqs(r *rand.Rand) []uint64 {
	set := map[uint64]bool{}
	base := 1 + r.Uint64N(1<<40)
	if r.IntN(10) == 0 {
		base = math.MaxUint64 - 5000
	}
	set[base] = true
	n := r.IntN(300)
	for range n {
		switch r.IntN(3) {
		case 0: // runs
			s := base + r.Uint64N(2000)
			for k := range r.Uint64N(40) {
				set[s+k] = true
			}
		default:
			set[base+r.Uint64N(4000)] = true
		}
	}
	return slices.Sorted(func(yield func(uint64) bool) {
		for q := range set {
			if !yield(q) {
				return
			}
		}
	})
}

// TestAckPayloadRoundTrip: random sorted sets encode to the reference
// encoding and decode to the reference ranges.
func TestAckPayloadRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 2000 {
		seqs := randSeqs(r)
		p := AppendAckPayload([]byte("prefix"), seqs)
		if !bytes.HasPrefix(p, []byte("prefix")) {
			t.Fatal("AppendAckPayload lost dst")
		}
		p = p[len("prefix"):]
		want := refRanges(seqs)
		if !bytes.Equal(p, refEncode(want)) {
			t.Fatalf("encoding of %d seqs differs from the reference", len(seqs))
		}
		got, err := decodeRanges(p)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("decode: %v, %v; want %v", got, err, want)
		}
	}
	if p := AppendAckPayload(nil, nil); len(p) != 0 {
		t.Fatalf("empty set encodes to %x", p)
	}
}

// TestAckPayloadsSplit: sets of any number of ranges split into payloads
// of at most the limit that decode, together, to the set's ranges: the
// fewest payloads, and no run cut in two.
func TestAckPayloadsSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 500 {
		seqs := randSeqs(r)
		limit := 1 + r.IntN(8)
		ps := ackPayloads(seqs, limit)
		var got []rng
		for _, p := range ps {
			rs, err := decodeRanges(p)
			if err != nil || len(rs) > limit {
				t.Fatalf("payload of %d ranges (limit %d): %v", len(rs), limit, err)
			}
			got = append(got, rs...)
		}
		if want := refRanges(seqs); !slices.Equal(got, want) {
			t.Fatalf("split payloads decode to %v, want %v", got, want)
		}
		if want := (len(refRanges(seqs)) + limit - 1) / limit; len(ps) != want {
			t.Fatalf("%d payloads for %d ranges of at most %d, want %d", len(ps), len(refRanges(seqs)), limit, want)
		}
	}
	if ps := AckPayloads(nil); len(ps) != 0 {
		t.Fatalf("the empty set gives %d payloads", len(ps))
	}
	// The real limit: one seq past it needs a second payload.
	seqs := make([]uint64, maxAckRanges+1)
	for i := range seqs {
		seqs[i] = 2*uint64(i) + 1
	}
	ps := AckPayloads(seqs)
	if len(ps) != 2 {
		t.Fatalf("%d payloads for %d ranges, want 2", len(ps), len(seqs))
	}
	for _, p := range ps {
		if err := DecodeAckPayload(p, func(uint64, uint64) {}); err != nil {
			t.Fatalf("a payload of AckPayloads does not decode: %v", err)
		}
	}
}

// TestAckPayloadDecodeProperty decodes arbitrary bytes: never a panic, and
// whatever is accepted describes positive, ascending, disjoint,
// non-adjacent ranges (so that it re-encodes to the same ranges).
func TestAckPayloadDecodeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	check := func(p []byte) {
		t.Helper()
		rs, err := decodeRanges(p)
		if err != nil {
			if !errors.Is(err, ErrAckPayload) {
				t.Fatalf("%x: %v", p, err)
			}
			return
		}
		if again, err := decodeRanges(refEncode(rs)); err != nil || !slices.Equal(again, rs) {
			t.Fatalf("%x: its ranges %v do not survive a re-encoding: %v, %v", p, rs, again, err)
		}
		for i, x := range rs {
			last := x.start + x.n - 1
			if x.start == 0 || x.n == 0 || last < x.start {
				t.Fatalf("%x: bad range %v", p, x)
			}
			if i > 0 {
				prevLast := rs[i-1].start + rs[i-1].n - 1
				if x.start <= prevLast+1 || prevLast == math.MaxUint64 {
					t.Fatalf("%x: range %v does not follow %v with a gap", p, x, rs[i-1])
				}
			}
		}
	}
	for range 20000 {
		p := make([]byte, r.IntN(24))
		for i := range p {
			p[i] = byte(r.Uint32())
			if r.IntN(3) == 0 {
				p[i] &= 0x7f
			}
		}
		if len(p) > 0 && r.IntN(2) == 0 {
			p[0] = byte(1 + r.IntN(3))
		}
		check(p)
	}
	// Edge cases: zero count, zero start, adjacent ranges, trailing bytes,
	// a range ending at the largest seq followed by another.
	for _, p := range [][]byte{
		nil, {0}, {1, 0, 0}, {1, 1}, {2, 1, 0, 0, 0}, {1, 1, 0, 0},
		refEncode([]rng{{math.MaxUint64, 1}}),
		refEncode([]rng{{math.MaxUint64 - 3, 4}, {5, 1}}),
		refEncode([]rng{{1, 1 << 62}}),
	} {
		check(p)
	}
}

func TestAcks(t *testing.T) {
	a := NewAcks(100, 130)
	if a.Base() != 100 || a.Len() != 130 || a.Count() != 0 {
		t.Fatal("new bitmap")
	}
	for _, q := range []uint64{99, 230, 0, math.MaxUint64} {
		if a.Covers(q) || a.Has(q) || a.Set(q) {
			t.Fatalf("seq %d out of range accepted", q)
		}
	}
	ref := map[uint64]bool{}
	r := rand.New(rand.NewPCG(3, 3))
	for range 300 {
		q := 100 + r.Uint64N(130)
		if got := a.Set(q); got == ref[q] {
			t.Fatalf("Set(%d) = %v with the bit %v", q, got, ref[q])
		}
		ref[q] = true
	}
	for q := uint64(100); q < 230; q++ {
		if a.Has(q) != ref[q] || !a.Covers(q) {
			t.Fatalf("Has(%d)", q)
		}
	}
	if a.Count() != len(ref) {
		t.Fatalf("Count %d, want %d", a.Count(), len(ref))
	}
	c := a.Clone()
	c.Set(229)
	if a.Has(229) != ref[229] {
		t.Fatal("Clone shares bits")
	}
	a.Truncate(70)
	if a.Len() != 70 || a.Covers(170) || a.Has(170) {
		t.Fatal("Truncate kept seqs past the new end")
	}
	n := 0
	for q := uint64(100); q < 170; q++ {
		if a.Has(q) != ref[q] {
			t.Fatalf("Truncate changed seq %d", q)
		}
		if ref[q] {
			n++
		}
	}
	if a.Count() != n {
		t.Fatalf("Count after Truncate %d, want %d", a.Count(), n)
	}
	a.Truncate(200) // growing is a no-op
	if a.Len() != 70 {
		t.Fatal("Truncate grew the bitmap")
	}
	if c.Len() != 130 || !c.Has(229) {
		t.Fatal("Truncate changed a clone")
	}
}

func TestLocations(t *testing.T) {
	// Lengths of every kind: small, at and above the 2-byte limit, and
	// raw lengths equal to the stored ones until the 60th record.
	locOf := func(q uint64, off int64) Loc {
		stored := uint32(q * 3)
		switch q % 7 {
		case 3:
			stored = 1<<16 - 1
		case 5:
			stored = 1<<30 + uint32(q)
		}
		raw := stored
		if q >= 60+50 || q >= 200 {
			raw = stored/2 + uint32(q%3)
		}
		return Loc{Off: off, Stored: stored, Raw: raw}
	}
	// Dense: seqs in order from the base.
	l := NewLocations(50)
	if _, ok := l.Last(); ok || l.Len() != 0 {
		t.Fatal("empty")
	}
	for i := range 100 {
		q := uint64(50 + i)
		l.Add(q, locOf(q, int64(64+8*i)))
	}
	check := func(l *Locations, want map[uint64]int64, last uint64) {
		t.Helper()
		if l.Len() != len(want) {
			t.Fatalf("Len %d, want %d", l.Len(), len(want))
		}
		for q, off := range want {
			if got, ok := l.Lookup(q); !ok || got != off {
				t.Fatalf("Lookup(%d) = %d, %v; want %d", q, got, ok, off)
			}
			if got, ok := l.Find(q); !ok || got != locOf(q, off) {
				t.Fatalf("Find(%d) = %+v, %v; want %+v", q, got, ok, locOf(q, off))
			}
		}
		n := 0
		for q, loc := range l.All() {
			if off, ok := want[q]; !ok || loc != locOf(q, off) {
				t.Fatalf("All yields %d at %+v; want %+v (%v)", q, loc, locOf(q, off), ok)
			}
			n++
		}
		if n != len(want) {
			t.Fatalf("All yields %d records, want %d", n, len(want))
		}
		for _, q := range []uint64{0, 49, last + 1, math.MaxUint64} {
			if _, ok := l.Lookup(q); ok {
				t.Fatalf("Lookup(%d) found a seq never added", q)
			}
			if _, ok := l.Find(q); ok {
				t.Fatalf("Find(%d) found a seq never added", q)
			}
		}
		if q, ok := l.Last(); !ok || q != last {
			t.Fatalf("Last = %d, %v; want %d", q, ok, last)
		}
	}
	want := map[uint64]int64{}
	for i := range 100 {
		want[uint64(50+i)] = int64(64 + 8*i)
	}
	check(l, want, 149)
	// A gap turns it sparse, keeping what it had.
	l.Add(200, locOf(200, 5000))
	l.Add(300, locOf(300, 6000))
	want[200], want[300] = 5000, 6000
	check(l, want, 300)
	if _, ok := l.Lookup(250); ok {
		t.Fatal("Lookup in a gap")
	}
	l.Trim()
	check(l, want, 300)

	// Sparse from the start (a compacted segment whose first record went).
	s := NewLocations(10)
	s.Add(12, locOf(12, 64))
	s.Add(15, locOf(15, 128))
	check(s, map[uint64]int64{12: 64, 15: 128}, 15)
	if _, ok := s.Lookup(10); ok {
		t.Fatal("Lookup of the base")
	}
	d := NewLocations(7)
	d.Add(7, locOf(7, 64))
	d.Trim()
	check(d, map[uint64]int64{7: 64}, 7)
	// The first record's raw length differs.
	r := NewLocations(200)
	r.Add(200, locOf(200, 64))
	r.Add(201, locOf(201, 128))
	check(r, map[uint64]int64{200: 64, 201: 128}, 201)
}

func resealCkpt(b []byte) {
	binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
}

func randCheckpoint(r *rand.Rand) Checkpoint {
	c := Checkpoint{Through: r.Uint64N(1000), NextSeq: 1 + r.Uint64N(1<<40)}
	base := 1 + r.Uint64N(1000)
	id := uint64(0)
	for range r.IntN(6) {
		id += 1 + r.Uint64N(3)
		n := r.Uint64N(300)
		a := NewAcks(base, n)
		switch r.IntN(3) {
		case 0: // none
		case 1:
			for q := base; q < base+n; q++ {
				a.Set(q)
			}
		default:
			for range r.IntN(int(n) + 1) {
				a.Set(base + r.Uint64N(max(n, 1)))
			}
		}
		c.Segments = append(c.Segments, SegmentAcks{ID: id, Acks: a})
		base += n + r.Uint64N(50)
	}
	c.SealedEnd = base
	return c
}

func sameCheckpoint(a, b Checkpoint) bool {
	if a.Through != b.Through || a.NextSeq != b.NextSeq || a.SealedEnd != b.SealedEnd || len(a.Segments) != len(b.Segments) {
		return false
	}
	for i := range a.Segments {
		x, y := a.Segments[i], b.Segments[i]
		if x.ID != y.ID || x.Acks.Base() != y.Acks.Base() || x.Acks.Len() != y.Acks.Len() {
			return false
		}
		for q := x.Acks.Base(); q < x.Acks.Base()+x.Acks.Len(); q++ {
			if x.Acks.Has(q) != y.Acks.Has(q) {
				return false
			}
		}
	}
	return true
}

func TestCheckpointRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for range 500 {
		c := randCheckpoint(r)
		b := AppendCheckpoint(nil, c)
		got, err := DecodeCheckpoint(b)
		if err != nil {
			t.Fatalf("DecodeCheckpoint: %v", err)
		}
		if !sameCheckpoint(c, got) {
			t.Fatalf("round trip differs: %+v", c)
		}
		// Acked agrees with the entries and with SealedEnd.
		for _, e := range c.Segments {
			for q := e.Acks.Base(); q < e.Acks.Base()+e.Acks.Len(); q++ {
				if got.Acked(q) != e.Acks.Has(q) {
					t.Fatalf("Acked(%d)", q)
				}
			}
		}
		if got.Acked(c.SealedEnd) || got.Acked(c.SealedEnd+100) {
			t.Fatal("Acked past SealedEnd")
		}
	}
}

func TestCheckpointDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	c := randCheckpoint(r)
	for len(c.Segments) < 3 {
		c = randCheckpoint(r)
	}
	good := AppendCheckpoint(nil, c)
	isFormatErr := func(err error) bool {
		var fe *FormatError
		return errors.As(err, &fe) && fe.Offset >= 0 && fe.Offset < int64(len(good)) && fe.Error() != ""
	}
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if _, err := DecodeCheckpoint(b); !isFormatErr(err) {
				t.Fatalf("flip of bit %d of byte %d: %v", bit, i, err)
			}
		}
	}
	for n := range len(good) {
		if _, err := DecodeCheckpoint(good[:n]); !isFormatErr(err) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// Structural damage with a valid checksum.
	mut := []struct {
		name string
		f    func(b []byte) []byte
	}{
		{"trailing", func(b []byte) []byte {
			return append(b[:len(b)-8:len(b)-8], append(make([]byte, 8), b[len(b)-8:]...)...)
		}},
		{"version", func(b []byte) []byte { b[8] = 9; return b }},
		{"reserved", func(b []byte) []byte { b[10] = 1; return b }},
		{"count", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<30); return b }},
		{"ids-not-ascending", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[checkpointHeader:], 1<<50)
			return b
		}},
		{"base-zero", func(b []byte) []byte { clear(b[checkpointHeader+8 : checkpointHeader+16]); return b }},
		{"both-kinds", func(b []byte) []byte { b[checkpointHeader+23] |= 0xC0; return b }},
	}
	for _, m := range mut {
		b := m.f(bytes.Clone(good))
		resealCkpt(b)
		if _, err := DecodeCheckpoint(b); !isFormatErr(err) {
			t.Errorf("%s: %v", m.name, err)
		}
	}
	// Bits past an entry's range.
	a := NewAcks(10, 70)
	a.Set(11)
	b := AppendCheckpoint(nil, Checkpoint{NextSeq: 90, Segments: []SegmentAcks{{ID: 1, Acks: a}}})
	b[checkpointHeader+24+15] |= 0x80 // bit 127 of the bitmap, past 70
	resealCkpt(b)
	if _, err := DecodeCheckpoint(b); !isFormatErr(err) {
		t.Errorf("bits past the range: %v", err)
	}
}

func TestSuperblock(t *testing.T) {
	file := func(slots ...Superblock) []byte {
		b := make([]byte, SuperblockSize)
		for _, s := range slots {
			PutSuperblockSlot(b[int(s.Generation%2)*SuperblockSlot:], s)
		}
		return b
	}
	s1 := Superblock{Generation: 1, Segment: 3, Offset: 4096, Seq: 77}
	s2 := Superblock{Generation: 2, Segment: 4, Offset: 64, Seq: 80}
	for _, c := range []struct {
		name string
		b    []byte
		want Superblock
	}{
		{"one", file(s1), s1},
		{"both", file(s1, s2), s2},
		{"one-slot-only-file", file(s1)[:SuperblockSlot+64], s1},
		{"first-slot-only", file(s2)[:64], s2},
	} {
		got, err := DecodeSuperblock(c.b)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	// A damaged newer slot (a torn write) falls back to the older.
	for i := range 64 {
		b := file(s1, s2)
		b[i] ^= 0x08
		got, err := DecodeSuperblock(b)
		if err != nil || got != s1 {
			t.Fatalf("damage at byte %d of the newer slot: %+v, %v", i, got, err)
		}
	}
	// Nothing valid.
	if _, err := DecodeSuperblock(nil); !errors.Is(err, ErrNoSuperblock) {
		t.Errorf("empty: %v", err)
	}
	if _, err := DecodeSuperblock(make([]byte, SuperblockSize)); !errors.Is(err, ErrNoSuperblock) {
		t.Errorf("zeros: %v", err)
	}
	var fe *FormatError
	b := file(s1)
	b[SuperblockSlot+20] ^= 1
	if _, err := DecodeSuperblock(b); !errors.As(err, &fe) {
		t.Errorf("only slot damaged: %v", err)
	}
	if _, err := DecodeSuperblock(file(s1)[:SuperblockSlot+10]); !errors.As(err, &fe) {
		t.Errorf("only slot truncated: %v", err)
	}
	// A slot in the wrong place for its generation is damage.
	w := make([]byte, SuperblockSize)
	PutSuperblockSlot(w, s1)
	if _, err := DecodeSuperblock(w); !errors.As(err, &fe) {
		t.Errorf("generation 1 in slot 0: %v", err)
	}
	// A negative offset is invalid.
	neg := make([]byte, SuperblockSize)
	PutSuperblockSlot(neg[SuperblockSlot:], Superblock{Generation: 1, Offset: -1})
	if _, err := DecodeSuperblock(neg); !errors.As(err, &fe) {
		t.Errorf("negative offset: %v", err)
	}
}

func TestUniformAcks(t *testing.T) {
	for _, full := range []bool{false, true} {
		a := uniformAcks(100, 130, full)
		want := 0
		if full {
			want = 130
		}
		if a.Count() != want || a.Has(99) || a.Has(230) || a.Has(100) != full || a.Has(229) != full {
			t.Fatalf("full=%v: Count %d, Has wrong", full, a.Count())
		}
		if w := a.Word(2); full && w != 1<<2-1 || !full && w != 0 {
			t.Fatalf("full=%v: last word %x", full, w)
		}
		if w := a.Word(0); full && w != math.MaxUint64 || !full && w != 0 {
			t.Fatalf("full=%v: first word %x", full, w)
		}
		c := a.Clone()
		if c.words != nil || c.Count() != want {
			t.Fatalf("full=%v: Clone materialised or changed", full)
		}
		c.Truncate(65)
		if c.Len() != 65 || c.Has(165) || c.Has(164) != full || a.Len() != 130 {
			t.Fatalf("full=%v: Truncate", full)
		}
		if tc := a.TruncatedClone(65); tc.words != nil || tc.Len() != 65 || tc.Has(165) || tc.Has(164) != full || a.Len() != 130 {
			t.Fatalf("full=%v: TruncatedClone", full)
		}
		if got := a.Set(150); got == full {
			t.Fatalf("full=%v: Set(150) = %v", full, got)
		}
		if !a.Has(150) || a.Has(151) != full || a.Count() != max(want, 1) {
			t.Fatalf("full=%v: after Set, Count %d", full, a.Count())
		}
		if !full && a.words == nil {
			t.Fatal("Set did not materialise a bitmap with no bit set")
		}
		if full && a.words != nil {
			t.Fatal("Set of an already set bit materialised a full bitmap")
		}
	}
}

// A checkpoint's entries flagged "no seq" or "every seq" acknowledged
// carry no words: decoding them allocates nothing for their bits, however
// many they claim.
func TestCheckpointUniformEntriesAllocateNothing(t *testing.T) {
	var c Checkpoint
	base := uint64(1)
	for i := range 200 {
		a := uniformAcks(base, MaxSpan, i%2 == 0)
		c.Segments = append(c.Segments, SegmentAcks{ID: uint64(i + 1), Acks: a})
		base += MaxSpan
	}
	c.SealedEnd, c.NextSeq = base, base
	b := AppendCheckpoint(nil, c)
	var got Checkpoint
	var err error
	n := testutil.LeastAlloc(3, func() { got, err = DecodeCheckpoint(b) })
	if err != nil {
		t.Fatal(err)
	}
	if n > 4*uint64(len(b))+64<<10 {
		t.Fatalf("decoding %d bytes claiming %d bits allocated %d bytes", len(b), 200*MaxSpan, n)
	}
	if len(got.Segments) != 200 || got.SealedEnd != c.SealedEnd || got.NextSeq != c.NextSeq {
		t.Fatalf("decoded %d entries, SealedEnd %d, NextSeq %d", len(got.Segments), got.SealedEnd, got.NextSeq)
	}
	for i, e := range got.Segments {
		if e.Acks.Has(e.Acks.Base()+MaxSpan-1) != (i%2 == 0) || e.Acks.Count() != map[bool]int{true: MaxSpan}[i%2 == 0] {
			t.Fatalf("entry %d decoded wrong", i)
		}
	}
	if re := AppendCheckpoint(nil, got); !bytes.Equal(re, b) {
		t.Fatal("re-encoding differs")
	}
}

// A bitmap with no bit or every bit set has one encoding, the flag: its
// words spelled out are refused, so a checkpoint has a single encoding.
func TestCheckpointSpelledOutUniformRefused(t *testing.T) {
	for _, full := range []bool{false, true} {
		b := AppendCheckpoint(nil, Checkpoint{NextSeq: 200, SealedEnd: 140, Segments: []SegmentAcks{{ID: 1, Acks: NewAcks(10, 130)}}})
		// Rewrite the entry without its flag, with its three words.
		body := b[:checkpointHeader+24]
		binary.LittleEndian.PutUint64(body[checkpointHeader+16:], 130)
		for i := range 3 {
			var w uint64
			if full {
				w = lastWordMask(130, i)
			}
			body = binary.LittleEndian.AppendUint64(body, w)
		}
		body = binary.LittleEndian.AppendUint64(body, 0)
		resealCkpt(body)
		_, err := DecodeCheckpoint(body)
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Offset != checkpointHeader {
			t.Fatalf("full=%v: spelled-out uniform bitmap: %v", full, err)
		}
		// One bit fewer (or more) is a real bitmap and decodes.
		body[checkpointHeader+24] ^= 1
		resealCkpt(body)
		if _, err := DecodeCheckpoint(body); err != nil {
			t.Fatalf("full=%v: %v", full, err)
		}
	}
}

func TestAcksSetRange(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		base, n := 1+r.Uint64N(100), r.Uint64N(300)
		a, ref := NewAcks(base, n), NewAcks(base, n)
		for range 1 + r.IntN(3) {
			from := r.Uint64N(base + n + 70)
			to := from + r.Uint64N(200)
			a.SetRange(from, to)
			for q := from; q < to; q++ {
				ref.Set(q)
			}
		}
		for q := base; q < base+n; q++ {
			if a.Has(q) != ref.Has(q) {
				t.Fatalf("base %d n %d: seq %d differs", base, n, q)
			}
		}
		if a.Count() != ref.Count() {
			t.Fatalf("Count %d, want %d", a.Count(), ref.Count())
		}
	}
	u := uniformAcks(10, 100, false)
	u.SetRange(20, 30)
	if u.Count() != 10 || !u.Has(29) || u.Has(30) {
		t.Fatal("SetRange on a uniform bitmap")
	}
}

// TestAckedInAndRunFrom: AckedIn counts the acknowledged seqs of a range
// as Has says, for dense, sparse and uniform bitmaps and ranges reaching
// past theirs; Locations.RunFrom finds the end of a run of seqs mapped.
func TestAckedInAndRunFrom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	var seqs []uint64
	for q := uint64(1000); q < 1300; q++ {
		if r.IntN(3) > 0 {
			seqs = append(seqs, q)
		}
	}
	bitmaps := map[string]*Acks{
		"dense": NewAcks(1000, 300), "sparse": NewSparseAcks(1000, 300, seqs),
		"none": uniformAcks(1000, 300, false), "all": uniformAcks(1000, 300, true),
	}
	for _, name := range []string{"dense", "sparse"} {
		for range 150 {
			bitmaps[name].Set(1000 + r.Uint64N(300))
		}
	}
	for name, a := range bitmaps {
		for range 500 {
			from := 990 + r.Uint64N(320)
			to := from + r.Uint64N(200)
			want := 0
			for q := from; q < to; q++ {
				if a.Has(q) {
					want++
				}
			}
			if got := a.AckedIn(from, to); got != want {
				t.Fatalf("%s: AckedIn(%d, %d) = %d, want %d", name, from, to, got, want)
			}
		}
	}
	l := NewLocations(10)
	for q := uint64(10); q < 20; q++ {
		l.Add(q, Loc{Off: int64(q * 8)})
	}
	if last, ok := l.RunFrom(12); !ok || last != 19 {
		t.Fatalf("dense RunFrom(12) = %d, %v; want 19", last, ok)
	}
	for _, q := range []uint64{30, 31, 32, 40, 50, 51} {
		l.Add(q, Loc{Off: int64(q * 8)})
	}
	for _, c := range []struct {
		from, last uint64
		ok         bool
	}{{10, 19, true}, {19, 19, true}, {30, 32, true}, {31, 32, true}, {40, 40, true}, {50, 51, true}, {20, 0, false}, {33, 0, false}, {52, 0, false}} {
		if last, ok := l.RunFrom(c.from); ok != c.ok || last != c.last {
			t.Fatalf("sparse RunFrom(%d) = %d, %v; want %d, %v", c.from, last, ok, c.last, c.ok)
		}
	}
}

// TestLocationsAppend checks that Append leaves the same map as adding the
// other map's records one by one, dense or sparse, following on or not.
func TestLocationsAppend(t *testing.T) {
	// Lengths: mostly small, every 97th too large for 2 bytes, and
	// raw lengths that differ from the stored ones from seq 1000 on.
	loc := func(q uint64) Loc {
		c := Loc{Off: int64(64 + 8*q), Stored: uint32(q % 5000), Raw: uint32(q % 5000)}
		if q%97 == 0 {
			c.Stored, c.Raw = 70000+uint32(q), 70000+uint32(q)
		}
		if q >= 1000 {
			c.Raw++
		}
		return c
	}
	build := func(base uint64, seqs ...uint64) *Locations {
		l := NewLocations(base)
		for _, q := range seqs {
			l.Add(q, loc(q))
		}
		return l
	}
	run := func(from, to uint64) []uint64 {
		var s []uint64
		for q := from; q < to; q++ {
			s = append(s, q)
		}
		return s
	}
	dump := func(l *Locations) (s []uint64) {
		for q, c := range l.All() {
			s = append(s, q, uint64(c.Off), uint64(c.Stored), uint64(c.Raw))
		}
		return s
	}
	cases := []struct {
		name string
		a, b func() *Locations
	}{
		{"dense follows dense", func() *Locations { return build(1, run(1, 900)...) }, func() *Locations { return build(900, run(900, 990)...) }},
		{"dense follows dense, raw lengths apart", func() *Locations { return build(1, run(1, 3000)...) }, func() *Locations { return build(3000, run(3000, 5000)...) }},
		{"dense with raw lengths apart follows dense", func() *Locations { return build(1, run(1, 900)...) }, func() *Locations { return build(900, run(900, 1100)...) }},
		{"empty dense follows", func() *Locations { return build(7) }, func() *Locations { return build(7, run(7, 20)...) }},
		{"dense after a gap", func() *Locations { return build(1, run(1, 10)...) }, func() *Locations { return build(12, run(12, 20)...) }},
		{"sparse after dense", func() *Locations { return build(1, run(1, 10)...) }, func() *Locations { return build(10, 10, 11, 15) }},
		{"dense after sparse", func() *Locations { return build(1, 1, 5, 9) }, func() *Locations { return build(10, run(10, 20)...) }},
		{"empty other", func() *Locations { return build(1, run(1, 10)...) }, func() *Locations { return build(10) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.a()
			for q, c := range c.b().All() {
				want.Add(q, c)
			}
			got, b := c.a(), c.b()
			before := dump(b)
			got.Append(b)
			if !slices.Equal(dump(got), dump(want)) {
				t.Fatalf("Append: %v\nwant %v", dump(got), dump(want))
			}
			if !slices.Equal(dump(b), before) {
				t.Fatal("Append changed its argument")
			}
			if (got.seqs == nil) != (want.seqs == nil) {
				t.Fatalf("Append left the map dense=%v, adding one by one dense=%v", got.seqs == nil, want.seqs == nil)
			}
			if q, ok := want.Last(); ok {
				if g, _ := got.Last(); g != q {
					t.Fatalf("Last %d, want %d", g, q)
				}
			}
		})
	}
}

// TestLocationsReserve: after Reserve(n), adding n records in order
// does not grow the map, and the map is the one adding them gives.
func TestLocationsReserve(t *testing.T) {
	l := NewLocations(10)
	loc := func(q uint64) Loc {
		return Loc{Off: int64(64 + 8*(q-10)), Stored: uint32(q), Raw: uint32(q)}
	}
	l.Add(10, loc(10))
	l.Reserve(5000)
	offs, lens := &l.dense[:1][0], &l.stored.small[:1][0]
	for q := uint64(11); q < 5011; q++ {
		l.Add(q, loc(q))
	}
	if &l.dense[0] != offs || &l.stored.small[0] != lens {
		t.Fatal("adding 5000 reserved records moved the map: it grew")
	}
	for q := uint64(10); q < 5011; q++ {
		if c, ok := l.Find(q); !ok || c != loc(q) {
			t.Fatalf("Find(%d) = %+v, %v; want %+v", q, c, ok, loc(q))
		}
	}
	// Sparse: nothing to reserve; adding still works.
	s := NewLocations(1)
	s.Add(1, Loc{Off: 64})
	s.Add(5, Loc{Off: 128})
	s.Reserve(100)
	s.Add(9, Loc{Off: 256})
	if off, ok := s.Lookup(9); !ok || off != 256 || s.Len() != 3 {
		t.Fatalf("sparse after Reserve: Lookup(9) = %d, %v; Len %d", off, ok, s.Len())
	}
}

// TestLocationsFastPathMix: records added after a Reserve take the fast
// path while they are the next seq with equal, small lengths; a large
// length, a raw length apart and a gap each leave it, and every record is
// found as added whichever path it took.
func TestLocationsFastPathMix(t *testing.T) {
	l := NewLocations(100)
	l.Reserve(64)
	want := map[uint64]Loc{}
	off := int64(64)
	add := func(q uint64, stored, raw uint32) {
		c := Loc{Off: off, Stored: stored, Raw: raw}
		l.Add(q, c)
		want[q] = c
		off += int64(32 + stored)
	}
	q := uint64(100)
	for ; q < 110; q++ {
		add(q, 100, 100)
	}
	add(q, 1<<17, 1<<17) // kept in the big list
	q++
	for ; q < 120; q++ {
		add(q, 100, 100)
	}
	add(q, 50, 80) // raw lengths kept from here on
	q++
	for ; q < 130; q++ {
		add(q, 100, 100)
	}
	q += 3 // a gap: sparse
	add(q, 10, 10)
	if l.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", l.Len(), len(want))
	}
	for q, c := range want {
		if got, ok := l.Find(q); !ok || got != c {
			t.Fatalf("Find(%d) = %+v, %v; want %+v", q, got, ok, c)
		}
	}
}

// TestLocationsTrim: Trim copies the map into slices of its size where
// the spare capacity is more than an eighth of what is used, and keeps
// the slices it has (no copy) where it is less.
func TestLocationsTrim(t *testing.T) {
	loc := func(q uint64) Loc { return Loc{Off: int64(64 + 136*(q-1)), Stored: 100, Raw: 100} }
	for _, tc := range []struct {
		reserve, add int
		copied       bool
	}{{1000, 500, true}, {1000, 950, false}, {1000, 1000, false}, {1000, 850, true}} {
		l := NewLocations(1)
		l.Reserve(tc.reserve)
		for q := uint64(1); q <= uint64(tc.add); q++ {
			l.Add(q, loc(q))
		}
		offs, lens := &l.dense[0], &l.stored.small[0]
		l.Trim()
		if copied := &l.dense[0] != offs || &l.stored.small[0] != lens; copied != tc.copied {
			t.Errorf("reserve %d, add %d: Trim copied %v, want %v", tc.reserve, tc.add, copied, tc.copied)
		}
		// A copy is as large as the allocator's size class rounds it.
		if spare := tc.add / 8; tc.copied && (cap(l.dense)-tc.add > spare || cap(l.stored.small)-tc.add > spare) {
			t.Errorf("reserve %d, add %d: capacities %d, %d after Trim", tc.reserve, tc.add, cap(l.dense), cap(l.stored.small))
		}
		for q := uint64(1); q <= uint64(tc.add); q++ {
			if c, ok := l.Find(q); !ok || c != loc(q) {
				t.Fatalf("Find(%d) = %+v, %v after Trim", q, c, ok)
			}
		}
	}
}

// TestRebase: a map and a bitmap made before their segment's first seq
// was known take it later; one that holds records or acknowledgements
// refuses.
func TestRebase(t *testing.T) {
	l := NewLocations(0)
	l.Reserve(10)
	l.Rebase(1000)
	l.Add(1000, Loc{Off: 64, Stored: 5, Raw: 5})
	l.Add(1001, Loc{Off: 128, Stored: 7, Raw: 7})
	if loc, ok := l.Find(1001); !ok || loc.Off != 128 || loc.Stored != 7 {
		t.Fatalf("Find(1001) = %+v %v", loc, ok)
	}
	if _, ok := l.Find(1); ok {
		t.Fatal("seq 1 found after Rebase to 1000")
	}
	a := NewAcks(0, 100)
	a.Rebase(1000)
	a.Set(1050)
	if !a.Has(1050) || a.Has(50) || a.Base() != 1000 {
		t.Fatalf("bitmap after Rebase: Has(1050)=%v Has(50)=%v Base=%d", a.Has(1050), a.Has(50), a.Base())
	}
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	mustPanic("Rebase of a map with records", func() { l.Rebase(5) })
	mustPanic("Rebase of a bitmap with an acknowledged seq", func() { a.Rebase(5) })
}

// TestTruncateReleasesWords: a bitmap truncated to a few seqs keeps the
// words of those, not of the range it had: a rotation truncates a clone of
// the active segment's bitmap, made for every record the file could hold
// (2M seqs, 256 KiB for a 64 MiB segment), to the records it got, and the
// sealed segment keeps that bitmap as long as it has pending records.
func TestTruncateReleasesWords(t *testing.T) {
	const capacity = (64<<20 - 64) / 32
	const sealed = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := make([]*Acks, sealed)
	for i := range kept {
		a := NewAcks(1000, capacity)
		a.Set(1000)
		a.Set(1100)
		c := a.Clone()
		c.Truncate(1000)
		if c.Count() != 2 || !c.Has(1000) || !c.Has(1100) || c.Has(1001) || c.Has(2000) || c.Len() != 1000 {
			t.Fatalf("truncated bitmap: count %d", c.Count())
		}
		if a.Len() != capacity || !a.Has(1100) {
			t.Fatal("Truncate of a clone changed the original")
		}
		kept[i] = c
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); held > 1<<20 {
		t.Fatalf("%d bitmaps truncated to 1000 seqs hold %d KiB, want a few words each", sealed, held>>10)
	}
}
