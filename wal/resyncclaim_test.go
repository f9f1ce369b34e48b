package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestResyncSkipsClaimPastEnd: after damage, a frame header that a
// record's payload happens to hold, claiming a frame that runs far past
// the end of the bytes read, does not stop the search for the next valid
// frame: Salvage of the log (a whole segment, whose end no frame runs
// past) skips it, as it did before windows were read, and RequeueCut (a
// window, where only its last frame may run past its end, checked as if
// zeros followed) goes on past it when it cannot afford to check it: the
// records after the damaged one come back.
func TestResyncSkipsClaimPastEnd(t *testing.T) {
	// A record holding, at an aligned place, a plausible frame header
	// claiming 512 MiB.
	claim := make([]byte, 64)
	h := claim[8:]
	h[0] = 1
	binary.LittleEndian.PutUint32(h[8:], 512<<20)
	binary.LittleEndian.PutUint32(h[12:], segment.FlagSumPayload)
	binary.LittleEndian.PutUint64(h[16:], 7)
	binary.LittleEndian.PutUint32(h[24:], 512<<20)
	dir := filepath.Join(t.TempDir(), "log")
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	recs := [][]byte{[]byte("first"), claim}
	for i := range 5 {
		recs = append(recs, fmt.Appendf(nil, "after %d", i))
	}
	for _, r := range recs {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	flipAt(t, dir, 2)
	want := []string{"first"}
	for _, r := range recs[2:] {
		want = append(want, string(r))
	}

	var got []string
	var damage []error
	for r, err := range Salvage(dir) {
		if err != nil {
			damage = append(damage, err)
			continue
		}
		got = append(got, string(r.Data))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Salvage yielded %q, want %q (damage %v)", got, want, damage)
	}

	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	rq, err := RequeueCut(dir)
	if err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir)
	got = nil
	for _, r := range pendingOf(t, l) {
		got = append(got, string(r.Data))
	}
	mustClose(t, l)
	if !slices.Equal(got, want) {
		t.Fatalf("pending after the requeue %q, want %q (damage %v)", got, want, errors.Join(rq.Damage...))
	}
}
