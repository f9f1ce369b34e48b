package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// requeueRecord is record i of the requeue tests: distinct, and ending in
// zeros every seventh, so that the cut's last frame may lack its trailing
// zeros in the side file.
func requeueRecord(i int) []byte {
	b := fmt.Appendf(nil, "record %05d ", i)
	b = append(b, bytes.Repeat([]byte{byte('a' + i%26)}, 300+i%200)...)
	if i%7 == 0 {
		b = append(b, make([]byte, 100+i%50)...)
	}
	return b
}

// requeueLog writes n records into a fresh log of small segments in dir
// and acknowledges those ack says, closes it, and flips a byte inside
// the payload of record damaged. It returns the data by seq.
func requeueLog(t *testing.T, dir string, n int, ack func(seq uint64) bool, damaged uint64, opts ...Option) map[uint64][]byte {
	t.Helper()
	l := mustOpen(t, dir, append([]Option{WithSegmentSize(smallSeg)}, opts...)...)
	data := map[uint64][]byte{}
	var acks []uint64
	for i := 1; i <= n; i++ {
		seq, err := l.Append(requeueRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		data[seq] = requeueRecord(i)
		if ack(seq) {
			acks = append(acks, seq)
		}
	}
	if err := l.Ack(acks...); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	flipAt(t, dir, damaged)
	return data
}

// flipAt flips a byte inside the payload of record seq of the closed log
// in dir.
func flipAt(t testing.TB, dir string, seq uint64) {
	t.Helper()
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	flipped := false
	for r, err := range v.Records(seq, seq) {
		if err != nil {
			t.Fatal(err)
		}
		testutil.FlipByte(t, r.Path, r.Offset+segment.FrameHeaderSize+5)
		flipped = true
	}
	if !flipped {
		t.Fatalf("record %d not found", seq)
	}
}

// TestRequeueCut: after Repair cuts a log at a damaged record, RequeueCut
// appends again every record the cut took that was not acknowledged (the
// damaged one aside), from the rest of the damaged segment and from the
// later segments moved whole, a last frame whose trailing zeros the cut
// left out included; the side file is then marked requeued and a second
// call does nothing.
func TestRequeueCut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damaged uint64
		opts    []Option
	}{
		{"in-last-segment", 0, nil},
		{"in-first-segment", 20, nil},
		{"encrypted", 20, []Option{WithEncryption(bytes.Repeat([]byte{7}, 32))}},
		{"compressed", 20, []Option{WithCompression(CompressionZstd)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			const n = 700
			damaged := tc.damaged
			if damaged == 0 {
				damaged = n - 30
			}
			acked := func(seq uint64) bool { return seq%5 == 0 }
			data := requeueLog(t, dir, n, acked, damaged, tc.opts...)
			rep, err := Repair(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.SideFile == "" {
				t.Fatalf("Repair cut nothing: %+v", rep)
			}
			l := mustOpen(t, dir, tc.opts...)
			kept := pendingOf(t, l)
			next := l.Stats().NextSeq
			mustClose(t, l)
			if next != damaged {
				t.Fatalf("Repair kept records up to %d, want the cut at %d", next-1, damaged)
			}
			// The damaged segment's last frame, ending in zeros, lost
			// them in the side file (the zeros-tail path ran).
			wantReq, wantAcked := 0, 0
			for q := damaged + 1; q <= n; q++ {
				if acked(q) {
					wantAcked++
				} else {
					wantReq++
				}
			}

			rep2, err := RequeueCut(dir, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if rep2.Requeued != wantReq || len(rep2.SideFiles) != 1 || rep2.SideFiles[0] != rep.SideFile {
				t.Fatalf("requeued %d records from %v, want %d from %s (report %+v)", rep2.Requeued, rep2.SideFiles, wantReq, rep.SideFile, rep2)
			}
			// The acknowledged records the side file knows of are left
			// out; so is the damaged record, reported.
			if rep2.Acked > wantAcked || len(rep2.Damage) == 0 {
				t.Fatalf("%d acknowledged left out (at most %d), damage %v: want the damaged record reported", rep2.Acked, wantAcked, rep2.Damage)
			}
			for _, err := range rep2.Damage {
				var ce *CorruptionError
				if !errors.As(err, &ce) || ce.Path != rep.SideFile {
					t.Fatalf("damage %v does not name the side file %s", err, rep.SideFile)
				}
			}
			if _, err := os.Stat(rep.SideFile + ".requeued"); err != nil {
				t.Fatalf("side file not marked requeued: %v", err)
			}

			l = mustOpen(t, dir, tc.opts...)
			got := pendingOf(t, l)
			mustClose(t, l)
			var want [][]byte
			for _, r := range kept {
				want = append(want, r.Data)
			}
			for q := damaged + 1; q <= n; q++ {
				if !acked(q) {
					want = append(want, data[q])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d records pending after the requeue, want %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i].Data, want[i]) {
					t.Fatalf("pending record %d (seq %d) is %q..., want %q...", i, got[i].Seq, got[i].Data[:min(20, len(got[i].Data))], want[i][:min(20, len(want[i]))])
				}
			}

			again, err := RequeueCut(dir, tc.opts...)
			if err != nil || again.Requeued != 0 || len(again.SideFiles) != 0 {
				t.Fatalf("second RequeueCut: %+v, %v; want nothing done", again, err)
			}
		})
	}
}

// TestRequeueCutZeroTail: the last frame of a cut, whose payload ends in
// zeros, is in the side file without them, and is requeued whole.
func TestRequeueCutZeroTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	recs := [][]byte{[]byte("first record"), []byte("second, damaged"), append([]byte("third, zeros at its end"), make([]byte, 200)...)}
	for _, r := range recs {
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	seg := segFiles(t, dir)[0]
	b, _ := readSegment(t, seg)
	frames := framesOf(t, b)
	b[frames[1].Offset+segment.FrameHeaderSize] ^= 1
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	side, err := os.ReadFile(rep.SideFile)
	if err != nil {
		t.Fatal(err)
	}
	// The piece ends at the last non-zero byte: the third frame's last
	// 200 payload bytes and its padding are not there.
	pieces, perrs := cutPieces(rep.SideFile, side)
	if len(perrs) > 0 || len(pieces) == 0 || pieces[0].name != filepath.Base(seg) {
		t.Fatalf("side file pieces %v, %v: want the segment's first", pieces, perrs)
	}
	if whole := frames[2].Offset + int64(segment.FrameSize(len(recs[2]))) - frames[1].Offset; int64(len(pieces[0].b)) >= whole {
		t.Fatalf("the piece holds %d bytes, the two frames %d: the zeros-tail case is not exercised", len(pieces[0].b), whole)
	}
	rq, err := RequeueCut(dir)
	if err != nil || rq.Requeued != 1 {
		t.Fatalf("RequeueCut: %+v, %v; want 1 record", rq, err)
	}
	l = mustOpen(t, dir)
	got := pendingOf(t, l)
	mustClose(t, l)
	if len(got) != 2 || !bytes.Equal(got[0].Data, recs[0]) || !bytes.Equal(got[1].Data, recs[2]) {
		t.Fatalf("pending %d records, want the first and the third whole", len(got))
	}
}

// TestRequeueCutNeedsKey: without the key, RequeueCut appends nothing
// from a side file that holds encrypted records.
func TestRequeueCutNeedsKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	key := bytes.Repeat([]byte{9}, 32)
	requeueLog(t, dir, 300, func(uint64) bool { return false }, 50, WithEncryption(key))
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := RequeueCut(dir); !errors.Is(err, ErrKey) {
		t.Fatalf("RequeueCut without the key: %v, want ErrKey", err)
	}
	l := mustOpen(t, dir, WithEncryption(key))
	if got := l.Stats().NextSeq; got != 50 {
		t.Fatalf("next seq %d after a refused requeue, want 50 (nothing appended)", got)
	}
	mustClose(t, l)
}

// TestRequeueCutRenameFails: a crash (here a failed rename) after the
// records were appended and synced leaves the side file unmarked: the
// next call appends them again, never loses them.
func TestRequeueCutRenameFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	requeueLog(t, dir, 300, func(uint64) bool { return false }, 250)
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	faulty := &markFault{FS: vfs.OS}
	rep, err := RequeueCut(dir, withFS(faulty))
	if !faulty.fired {
		t.Fatal("the side file's rename did not fail")
	}
	if err == nil || rep.Requeued != 50 {
		t.Fatalf("RequeueCut with a failing rename: %+v, %v; want 50 requeued and the error", rep, err)
	}
	rep, err = RequeueCut(dir)
	if err != nil || rep.Requeued != 50 {
		t.Fatalf("second RequeueCut: %+v, %v; want the 50 again", rep, err)
	}
	l := mustOpen(t, dir)
	defer mustClose(t, l)
	seen := map[string]int{}
	for _, r := range pendingOf(t, l) {
		seen[string(r.Data)]++
	}
	for i := 1; i <= 300; i++ {
		if i == 250 {
			continue
		}
		if seen[string(requeueRecord(i))] == 0 {
			t.Fatalf("record %d lost", i)
		}
	}
	if !slices.ContainsFunc(dirNames(t, dir), func(n string) bool { return strings.HasSuffix(n, ".cut.requeued") }) {
		t.Fatal("side file not marked requeued after the second call")
	}
}

// markFault fails the rename that marks a side file requeued.
type markFault struct {
	vfs.FS
	fired bool
}

func (f *markFault) Rename(oldpath, newpath string) error {
	if strings.HasSuffix(newpath, ".requeued") {
		f.fired = true
		return vfs.ErrInjected
	}
	return f.FS.Rename(oldpath, newpath)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
