package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRequeueCutBatchCutInMiddle: a committed batch of AppendBatch whose
// middle record is damaged was cut there by Repair (before it cut such
// damage at the batch's start), and then, as a batch without its commit
// frame at the log's end, at its start: its records before the damaged
// one went into the side file as a piece of their own, after the piece
// that holds the rest of the batch and its commit frame. The test lays
// out that side file as Repair did. Every record of the batch but the
// damaged one reads whole and must come back, as Salvage yields them
// from the log before the repair.
func TestRequeueCutBatchCutInMiddle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	first, batch := batchLog(t, dir, WithSegmentSize(smallSeg))
	damaged := first + 4
	var batchAt, damagedAt int64
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range v.Records(first, damaged) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq == first {
			batchAt = r.Offset
		}
		damagedAt = r.Offset
	}
	v.Close()
	flipAt(t, dir, damaged)
	// Salvage, before the repair, yields the batch's records before the
	// damage too: its commit frame reads after it.
	var salvaged []string
	for r, err := range Salvage(dir) {
		if err == nil {
			salvaged = append(salvaged, string(r.Data))
		}
	}
	want := []string{"before the batch"}
	for i, b := range batch {
		if first+uint64(i) != damaged {
			want = append(want, string(b))
		}
	}
	if !slices.Equal(salvaged, want) {
		t.Fatalf("Salvage yielded\n%q\nwant\n%q", salvaged, want)
	}
	// Repair's two cuts: at the damage, then at the batch's start.
	seg := segFiles(t, dir)[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	end := segment.LastNonZero(b, damagedAt)
	side := fmt.Appendf(nil, "walpub-repair %s %d %d\n", filepath.Base(seg), damagedAt, end-damagedAt)
	side = append(side, b[damagedAt:end]...)
	bEnd := segment.LastNonZero(b[:damagedAt], batchAt)
	side = fmt.Appendf(side, "walpub-repair %s %d %d\n", filepath.Base(seg), batchAt, bEnd-batchAt)
	side = append(side, b[batchAt:bEnd]...)
	clear(b[batchAt:])
	rep := RepairReport{SideFile: filepath.Join(dir, "repair-20260101T000000.000000000Z.cut")}
	if err := os.WriteFile(rep.SideFile, side, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The superblock's mark names the records cut: Repair moves it aside
	// (into a side file of its own here).
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	rq, err := RequeueCut(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The damage names the side file, and the segment and offset the
	// bytes were cut from.
	for _, err := range rq.Damage {
		if !strings.Contains(err.Error(), rep.SideFile+" at offset ") || !strings.Contains(err.Error(), "(cut from 00000000000000000001.seg at offset ") {
			t.Errorf("damage %q does not name the side file and the piece", err)
		}
	}
	l := mustOpen(t, dir)
	var got []string
	for _, r := range pendingOf(t, l) {
		got = append(got, string(r.Data))
	}
	mustClose(t, l)
	// Every record but the damaged one, in the order the log held them.
	if !slices.Equal(got, want) {
		t.Fatalf("pending after the requeue:\n%q\nwant\n%q\n(requeue %+v)", got, want, rq)
	}
}

// batchLog writes into a new log in dir a record, then a batch of 10
// records ("batch record 0" ...), and closes it; it returns the batch's
// first seq and its records.
func batchLog(t testing.TB, dir string, opts ...Option) (first uint64, batch [][]byte) {
	t.Helper()
	l := mustOpen(t, dir, opts...)
	if _, err := l.Append([]byte("before the batch")); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		batch = append(batch, fmt.Appendf(nil, "batch record %d", i))
	}
	first, err := l.AppendBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	return first, batch
}
