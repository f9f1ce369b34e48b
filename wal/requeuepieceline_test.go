package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequeueCutDamagedPieceLine: a side file whose first piece line is
// damaged (a flipped byte) still has every later piece read: the reading
// goes on at the next piece line, and the damage is reported naming the
// side file. Before, the first malformed line ended the reading of the
// side file, which was then renamed requeued with none of its records
// appended.
func TestRequeueCutDamagedPieceLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	// Damage in the first of several segments: the side file holds the
	// rest of it, then every later segment, a piece each.
	requeueLog(t, dir, 700, func(uint64) bool { return false }, 20)
	rep, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	side, err := os.ReadFile(rep.SideFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(side, []byte("walpub-repair ")); n < 3 {
		t.Fatalf("the side file holds %d pieces, want several", n)
	}
	// "walpub-repair" becomes "walpub-rfpair".
	side[8] ^= 3
	if err := os.WriteFile(rep.SideFile, side, 0o600); err != nil {
		t.Fatal(err)
	}
	rq, err := RequeueCut(dir)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, err := range rq.Damage {
		var ce *CorruptionError
		if errors.As(err, &ce) && ce.Path == rep.SideFile && ce.Offset == 0 && strings.Contains(ce.Reason, "piece line") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no damage reported at the side file's first piece line: %v", rq.Damage)
	}
	// The first piece (the rest of the first segment) is lost with its
	// line; every record of the later segments comes back.
	l := mustOpen(t, dir)
	have := map[string]bool{}
	for _, r := range pendingOf(t, l) {
		have[string(r.Data)] = true
	}
	mustClose(t, l)
	v := 0
	for i := 700; i > 20 && have[string(requeueRecord(i))]; i-- {
		v++
	}
	if v < 500 || rq.Requeued < 500 {
		t.Fatalf("requeued %d records, the last %d of the log back; want every record of the segments after the first (more than 500)", rq.Requeued, v)
	}
}
