package wal

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/segment"
)

// TestPrefaultForWriting: the preparer pre-faults the active segment's
// pages for writing only where syncs are rare (writeAheadLocked). A new
// log faults them for writing a little ahead (the window's start,
// populateMin) under SyncNever, also once the first checkpoint synced
// with nothing appended, for reading under the other policies;
// after enough bytes appended without a sync it keeps pages ahead of the
// tail faulted for writing, further as the window grows; once syncs come
// every few KiB it faults them for reading only again, so that syncs do
// not write back zeros ahead of the data, and the pages come into the page
// cache one at a time (segment.File.SmallPages: the mapping is advised
// random), so that a sync does not write back a large folio around the
// few KiB written since the last one. Every record reads back as written.
func TestPrefaultForWriting(t *testing.T) {
	every := mustOpen(t, t.TempDir(), WithSync(SyncEvery(time.Hour)))
	every.mu.Lock()
	ahead := every.writeAheadLocked()
	every.mu.Unlock()
	mustClose(t, every)
	if ahead != 0 {
		t.Fatalf("a new log under SyncEvery pre-faults %d bytes for writing before it saw a gap between syncs", ahead)
	}
	l := mustOpen(t, t.TempDir(), WithSync(SyncNever)) // 64 MiB segments
	defer mustClose(t, l)
	type state struct{ tail, wpopulated, populated, ahead int64 }
	now := func() state {
		l.mu.Lock()
		defer l.mu.Unlock()
		a := l.active
		return state{a.tail, a.wpopulated, a.populated, l.writeAheadLocked()}
	}
	// The first checkpoint after Open syncs with nothing appended: that
	// says nothing of the gaps between syncs.
	eventually(t, "the first checkpoint", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ckptEpoch != 0
	})
	if s := now(); s.ahead != populateMin {
		t.Fatalf("a new log under SyncNever pre-faults %d bytes ahead for writing, want %d", s.ahead, populateMin)
	}
	r := rand.New(rand.NewPCG(7, 7))
	var recs [][]byte
	// Records below writeThrough, and where syncs are frequent below a
	// page (syncedWriteThrough): written through the mapping.
	appendMiB := func(mib int, syncEvery int) {
		t.Helper()
		size := 16 << 10
		if syncEvery > 0 {
			size, syncEvery = 2<<10, syncEvery*8
		}
		for i := range mib << 20 / size {
			rec := randRecord(r, size)
			if _, err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
			if syncEvery > 0 && i%syncEvery == 0 {
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	appendMiB(40, 0)
	// About a sixteenth of the gap since the last sync (40 MiB), within
	// the window, which has grown to 5 MiB (40 MiB / populateRamp).
	if s := now(); s.ahead < populateChunk || s.ahead > populateAhead {
		t.Fatalf("40 MiB appended without a sync, yet pages are pre-faulted %d bytes ahead for writing", s.ahead)
	}
	eventually(t, "pages ahead of the tail faulted for writing", func() bool {
		s := now()
		return s.wpopulated > s.tail
	})
	l.mu.Lock()
	path := l.active.file.Path
	l.mu.Unlock()
	if slices.Contains(testutil.VmFlags(t, path), "rr") {
		t.Fatal("with syncs rare, the active segment's mapping is advised random: its pages come in one at a time")
	}

	// A Sync every 64 KiB: after two, the gaps between syncs are small.
	appendMiB(1, 4)
	from := now()
	if from.ahead != 0 {
		t.Fatalf("with a Sync every 64 KiB, pages are pre-faulted %d bytes ahead for writing", from.ahead)
	}
	appendMiB(12, 4)
	eventually(t, "pages ahead of the tail faulted for reading", func() bool {
		s := now()
		l.mu.Lock()
		ahead := l.aheadLocked()
		l.mu.Unlock()
		return s.populated >= s.tail+ahead/2
	})
	// Had the preparer gone on faulting pages for writing, it would be
	// past the tail, 12 MiB further on.
	if s := now(); s.wpopulated > from.tail+populateAhead {
		t.Fatalf("pages faulted for writing up to %d, past %d, with a Sync every 64 KiB", s.wpopulated, from.tail+populateAhead)
	}
	if flags := testutil.VmFlags(t, path); !slices.Contains(flags, "rr") {
		t.Fatalf("with a Sync every 64 KiB, the active segment's mapping has flags %v: not advised random", flags)
	}

	i := 0
	for rec, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(recs) || !bytes.Equal(rec.Data, recs[i]) {
			t.Fatalf("record %d (seq %d) differs from the one appended", i, rec.Seq)
		}
		i++
	}
	if i != len(recs) {
		t.Fatalf("%d records pending, want %d", i, len(recs))
	}
}

// TestNoPrefault: with WithPrefault(false) the preparer faults no page in
// ahead of the writer, neither of the active segment nor of the prepared
// next one, and still prepares that segment, into which the log rotates;
// by default it does pre-fault in the same run. Every record reads back as
// written.
func TestNoPrefault(t *testing.T) {
	for _, on := range []bool{true, false} {
		l := mustOpen(t, t.TempDir(), WithSegmentSize(1<<20), WithPrefault(on))
		// reach is how far past its header any segment was pre-faulted.
		reach := func() int64 {
			l.mu.Lock()
			defer l.mu.Unlock()
			a := l.active
			return max(a.populated, a.wpopulated, l.prepPopulated+segment.HeaderSize) - segment.HeaderSize
		}
		r := rand.New(rand.NewPCG(8, 8))
		var recs [][]byte
		seen := int64(0)
		for range 3 << 10 {
			rec := randRecord(r, 1<<10)
			if _, err := l.Append(rec); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
			seen = max(seen, reach())
		}
		eventually(t, "a next segment prepared", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.prepared != nil
		})
		if on {
			eventually(t, "pages faulted in ahead of the writer", func() bool { return reach() > 0 })
		} else if seen = max(seen, reach()); seen != 0 {
			t.Fatalf("with WithPrefault(false) the preparer faulted in %d bytes ahead of the writer", seen)
		}
		if st := l.Stats(); st.Segments < 3 {
			t.Fatalf("prefault %v: 3 MiB in 1 MiB segments left %d segments", on, st.Segments)
		}
		i := 0
		for rec, err := range l.Pending() {
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Data, recs[i]) {
				t.Fatalf("prefault %v: record %d reads back different", on, rec.Seq)
			}
			i++
		}
		if i != len(recs) {
			t.Fatalf("prefault %v: %d records pending, want %d", on, i, len(recs))
		}
		mustClose(t, l)
	}
}
