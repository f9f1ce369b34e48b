package index

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSplit: parts of a Split filled on their own join into the map that
// adding every record to one map gives, in the Split's storage; where a
// part cannot be joined in place (it outgrew its room, left room unfilled,
// began elsewhere, turned sparse, keeps raw lengths apart), Join refuses
// and the parts' maps, joined by Append, still give that map.
func TestSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	loc := func(q uint64) Loc {
		n := uint32(r.IntN(3000))
		if q%89 == 0 {
			n = 70000 + uint32(q) // too large for 2 bytes
		}
		return Loc{Off: int64(64 + 16*q), Stored: n, Raw: n}
	}
	dump := func(l *Locations) (s []uint64) {
		for q, c := range l.All() {
			s = append(s, q, uint64(c.Off), uint64(c.Stored), uint64(c.Raw))
		}
		return s
	}
	const base, n = 100, 5000
	locs := make([]Loc, n)
	for i := range locs {
		locs[i] = loc(base + uint64(i))
	}
	// starts: base and three cuts; the last part's room fits its records
	// (extra 0) or not (extra < 0).
	cases := []struct {
		name  string
		extra int
		join  bool
		alter func(part int, q uint64, c Loc) Loc // applied to each record added
		skip  func(part int, q uint64) bool
	}{
		{name: "in place", extra: 10, join: true},
		{name: "last room exact", extra: 0, join: true},
		{name: "last part outgrows its room", extra: -5, join: false},
		{name: "a part leaves room unfilled", extra: 10, join: false,
			skip: func(part int, q uint64) bool { return part == 1 && q == 2999 }},
		{name: "raw lengths apart", extra: 10, join: false,
			alter: func(part int, q uint64, c Loc) Loc {
				if part == 2 && q == 3500 {
					c.Raw++
				}
				return c
			}},
	}
	cuts := []uint64{base, base + 1234, base + 2900, base + 4000}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := NewLocations(base)
			s := NewSplit(cuts, int(base+n-cuts[3])+c.extra)
			maps := make([]*Locations, len(cuts))
			for p := range cuts {
				maps[p] = s.Part(p)
				end := uint64(base + n)
				if p+1 < len(cuts) {
					end = cuts[p+1]
				}
				for q := cuts[p]; q < end; q++ {
					lc := locs[q-base]
					if c.alter != nil {
						lc = c.alter(p, q, lc)
					}
					if c.skip != nil && c.skip(p, q) {
						continue
					}
					maps[p].Add(q, lc)
					want.Add(q, lc)
				}
			}
			got := s.Join(maps)
			if (got != nil) != c.join {
				t.Fatalf("Join: %v, want joined %v", got != nil, c.join)
			}
			if got == nil {
				got = maps[0]
				for _, m := range maps[1:] {
					got.Append(m)
				}
			} else if &got.dense[0] != &s.dense[0] {
				t.Fatal("the joined map is not in the Split's storage")
			}
			if !slices.Equal(dump(got), dump(want)) {
				t.Fatal("the joined map differs from one built by Add")
			}
			for q := range want.All() {
				if a, _ := got.Find(q); a != mustFind(t, want, q) {
					t.Fatalf("Find(%d) = %+v, want %+v", q, a, mustFind(t, want, q))
				}
			}
			// The joined map takes more records as any map does.
			next := uint64(base + n)
			got.Add(next, Loc{Off: 1 << 20, Stored: 7, Raw: 7})
			if l, _ := got.Find(next); l.Stored != 7 || got.Len() != want.Len()+1 {
				t.Fatalf("after Add: Find %+v, Len %d", l, got.Len())
			}
		})
	}
	// A part that begins elsewhere than its start (rebased), or turns
	// sparse, is not joined in place.
	s := NewSplit([]uint64{1, 11}, 10)
	a, b := s.Part(0), s.Part(1)
	for q := uint64(1); q < 11; q++ {
		a.Add(q, Loc{Off: int64(q), Stored: 1, Raw: 1})
	}
	b.Rebase(12)
	b.Add(12, Loc{Off: 12, Stored: 1, Raw: 1})
	if s.Join([]*Locations{a, b}) != nil {
		t.Fatal("Join of a part rebased past its start")
	}
	s = NewSplit([]uint64{1, 11}, 10)
	a, b = s.Part(0), s.Part(1)
	for q := uint64(1); q < 11; q++ {
		a.Add(q, Loc{Off: int64(q), Stored: 1, Raw: 1})
	}
	b.Add(11, Loc{Off: 11, Stored: 1, Raw: 1})
	b.Add(13, Loc{Off: 13, Stored: 1, Raw: 1})
	if s.Join([]*Locations{a, b}) != nil {
		t.Fatal("Join of a sparse part")
	}
}

func mustFind(t *testing.T, l *Locations, q uint64) Loc {
	t.Helper()
	c, ok := l.Find(q)
	if !ok {
		t.Fatalf("seq %d not found", q)
	}
	return c
}
