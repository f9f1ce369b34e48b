package wal

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestPowerCutRepairBatchThenRequeue cuts the power at each step of a
// Repair of a log whose damage is in the middle of a committed batch, then
// repairs it again to its end and requeues what the side files hold:
// every record of the batch but the damaged one is pending again, however
// the two repairs shared the cut between their side files.
func TestPowerCutRepairBatchThenRequeue(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	base := filepath.Join(t.TempDir(), "log")
	first, batch := batchLog(t, base, WithSegmentSize(smallSeg))
	damaged := first + 4
	flipAt(t, base, damaged)
	orig := readDir(t, base)
	for _, harsh := range []bool{false, true} {
		t.Run(fmt.Sprintf("harsh=%v", harsh), func(t *testing.T) {
			cuts := repairCutAtEachStep(t, orig, harsh, func(k int, img snapshot) {
				after := img.write(t, filepath.Join(t.TempDir(), "after"))
				if _, err := Repair(after); err != nil {
					t.Fatalf("k=%d: Repair after the cut: %v (files %v)", k, err, img.names())
				}
				if _, err := RequeueCut(after, WithLogger(quiet)); err != nil {
					t.Fatalf("k=%d: RequeueCut: %v", k, err)
				}
				l, err := Open(after, WithLogger(quiet))
				if err != nil {
					t.Fatalf("k=%d: Open: %v", k, err)
				}
				have := map[string]bool{}
				for _, r := range pendingOf(t, l) {
					have[string(r.Data)] = true
				}
				mustClose(t, l)
				var lost []int
				for i, b := range batch {
					if first+uint64(i) != damaged && !have[string(b)] {
						lost = append(lost, i)
					}
				}
				if len(lost) > 0 || !have["before the batch"] {
					t.Fatalf("k=%d: batch records %v lost (files after the cut %v)", k, lost, img.names())
				}
			})
			if cuts < 3 {
				t.Fatalf("only %d operations in Repair to cut at", cuts)
			}
			t.Logf("%d power cuts", cuts)
		})
	}
}
