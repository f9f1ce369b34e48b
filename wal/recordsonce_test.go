package wal

import (
	"path/filepath"
	"testing"
)

// TestRecordsOnceReleasesPassedSegments: RecordsOnce yields what Records
// yields, and unmaps (drops from the view) each segment it has passed,
// the segments it did not reach staying in the view until Close.
func TestRecordsOnceReleasesPassedSegments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	for range 40 {
		if _, err := l.Append(make([]byte, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	segs := v.Info().Segments
	if len(segs) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(segs))
	}
	var want []uint64
	for r, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Seq)
	}
	var got []uint64
	for r, err := range v.RecordsOnce(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Seq)
		if r.Seq == segs[1].FirstSeq {
			// In segment 2: segment 1 is gone from the view, unmapped.
			if in := v.Info(); len(in.Segments) != len(segs)-1 || in.Segments[0].ID != segs[1].ID {
				t.Fatalf("at seq %d the view holds %d segments, the first %d; want %d from %d",
					r.Seq, len(in.Segments), in.Segments[0].ID, len(segs)-1, segs[1].ID)
			}
			break
		}
	}
	if len(got) != int(segs[1].FirstSeq) || got[len(got)-1] != want[len(got)-1] {
		t.Fatalf("RecordsOnce yielded %v, Records %v", got, want)
	}
	// On from where it stopped: the rest, then nothing is left.
	for r, err := range v.RecordsOnce(segs[1].FirstSeq+1, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Seq)
	}
	if len(got) != len(want) {
		t.Fatalf("RecordsOnce yielded %d records in all, Records %d", len(got), len(want))
	}
	if n := len(v.Info().Segments); n != 0 {
		t.Fatalf("after a whole pass the view holds %d segments", n)
	}
}
