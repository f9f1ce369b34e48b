package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairCutsBatchAtItsStart: damage in the middle of a batch of
// AppendBatch, a frame that does not verify or (with the key) a record
// that does not authenticate, is cut at the batch's first frame, in one
// piece of the side file, and RequeueCut brings back every record of the
// batch but the damaged one.
func TestRepairCutsBatchAtItsStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"checksum", nil}, {"authentication", testKey}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			var opts []Option
			if tc.key != nil {
				opts = append(opts, WithEncryption(tc.key))
			}
			first, batch := batchLog(t, dir, opts...)
			damaged := first + 4
			var batchAt int64
			var rep RepairReport
			if tc.key == nil {
				v, err := OpenView(dir)
				if err != nil {
					t.Fatal(err)
				}
				for r, err := range v.Records(first, first) {
					if err != nil {
						t.Fatal(err)
					}
					batchAt = r.Offset
				}
				v.Close()
				flipAt(t, dir, damaged)
				if rep, err = Repair(dir); err != nil {
					t.Fatal(err)
				}
			} else {
				_, fr := sealedFrame(t, dir, first)
				batchAt = fr.Offset
				tamperSealed(t, dir, damaged)
				var err error
				if rep, err = RepairWithKey(dir, tc.key); err != nil {
					t.Fatal(err)
				}
			}
			if rep.Offset != batchAt {
				t.Fatalf("Repair cut at offset %d, want the batch's start, %d (report %+v)", rep.Offset, batchAt, rep)
			}
			side, err := os.ReadFile(rep.SideFile)
			if err != nil {
				t.Fatal(err)
			}
			pieces, perrs := cutPieces(rep.SideFile, side)
			var cuts []string
			for _, p := range pieces {
				if _, ok := segment.ParseName(p.name); ok {
					cuts = append(cuts, fmt.Sprintf("%s at %d", p.name, p.off))
				}
			}
			if len(perrs) > 0 || len(cuts) != 1 || cuts[0] != fmt.Sprintf("%s at %d", segment.Name(1), batchAt) {
				t.Fatalf("the side file holds the segment's bytes from %v (%v), want one piece from the batch's start, %d", cuts, perrs, batchAt)
			}
			if _, err := RequeueCut(dir, opts...); err != nil {
				t.Fatal(err)
			}
			l := mustOpen(t, dir, opts...)
			var got []string
			for _, r := range pendingOf(t, l) {
				got = append(got, string(r.Data))
			}
			mustClose(t, l)
			want := []string{"before the batch"}
			for i, b := range batch {
				if first+uint64(i) != damaged {
					want = append(want, string(b))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("pending after the requeue %q, want %q", got, want)
			}
		})
	}
}
