package wal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestPowerCutRepairAtEachStep cuts the power at each operation of a
// Repair in turn (its side file's creation, writes and syncs, the cut
// segment's zeroing, the removal of later segments, the moving aside of
// damaged metadata and the checkpoint written anew), until Repair
// completes, as a journaling file system leaves the disk (directory
// operations in order) and as one that keeps any subset of those not
// synced (cutFS.subset, with sizes lost and data written back by sectors,
// also between syncs).
// Repair promises it never deletes data: every record pending in the
// damaged log must, after the cut, be either in the log (once a Repair
// run to its end lets it open) or in a side file on disk, with its bytes;
// and every record before the damage must stay in the log.
func TestPowerCutRepairAtEachStep(t *testing.T) {
	closed, _ := damageImages(t)
	cases := []struct {
		name   string
		damage func(t testing.TB, s snapshot) (keepBelow uint64)
	}{
		// A flipped byte in a sealed segment: the rest of it is moved
		// aside and zeroed, the later segments moved aside and removed.
		{"flipped-byte-in-sealed-segment", func(t testing.TB, s snapshot) uint64 {
			name := s.segNames()[1]
			frs := framesOf(t, s[name])
			fr := frs[len(frs)/2]
			s[name][fr.Offset+segment.FrameHeaderSize+int64(len(fr.Payload))/2] ^= 0x20
			return fr.Seq
		}},
		// A segment longer than its size: the bytes past it are moved
		// aside and the file truncated.
		{"segment-longer-than-its-size", func(t testing.TB, s snapshot) uint64 {
			name := s.segNames()[1]
			s[name] = append(s[name], bytes.Repeat([]byte{0xa5}, 10000)...)
			return closed.m.next()
		}},
		// A damaged checkpoint: moved aside whole, then written anew
		// (an Open and a Close of the log).
		{"damaged-checkpoint", func(t testing.TB, s snapshot) uint64 {
			b := s[index.CheckpointName]
			b[len(b)/2] ^= 1
			return closed.m.next()
		}},
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range cases {
		orig := closed.snap.clone()
		keepBelow := c.damage(t, orig)
		// Where each pending record's frame lies (the damage moves none).
		type where struct {
			file     string
			from, to int64
		}
		frames := map[uint64]where{}
		for _, name := range closed.snap.segNames() {
			for _, fr := range framesOf(t, closed.snap[name]) {
				if fr.Flags&segment.FlagAck == 0 {
					// Repair moves the bytes up to the last non-zero one:
					// a frame's zero padding may stay behind.
					b := closed.snap[name][fr.Offset:fr.End()]
					frames[fr.Seq] = where{name, fr.Offset, fr.Offset + int64(len(bytes.TrimRight(b, "\x00")))}
				}
			}
		}
		for _, harsh := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/harsh=%v", c.name, harsh), func(t *testing.T) {
				cuts := repairCutAtEachStep(t, orig, harsh, func(k int, img snapshot) {
					after := img.write(t, filepath.Join(t.TempDir(), "after"))
					// Repair to its end, undisturbed, then open. The
					// records it moves aside go to a side file of its own.
					if _, err := Repair(after); err != nil {
						t.Fatalf("k=%d: Repair after the cut: %v (files %v)", k, err, img.names())
					}
					pieces := sidePiecesIn(t, after)
					l, err := Open(after, WithSegmentSize(smallSeg), WithLogger(quiet))
					if err != nil {
						t.Fatalf("k=%d: Open after Repair: %v", k, err)
					}
					for q, d := range closed.m.data {
						got, gerr := l.Get(q)
						if gerr == nil {
							if !bytes.Equal(got, d) {
								t.Fatalf("k=%d: record %d: bytes differ", k, q)
							}
							continue
						}
						if q < keepBelow {
							t.Fatalf("k=%d: record %d, before the damage, is not in the log: %v", k, q, gerr)
						}
						w := frames[q]
						found := false
						for _, p := range pieces {
							if p.file == w.file && p.off <= w.from && w.to <= p.off+int64(len(p.data)) &&
								bytes.Equal(p.data[w.from-p.off:w.to-p.off], orig[w.file][w.from:w.to]) {
								found = true
								break
							}
						}
						if !found {
							t.Fatalf("k=%d: record %d is neither in the log (%v) nor in a side file on disk (files %v)", k, q, gerr, img.names())
						}
					}
					mustClose(t, l)
					if err := os.RemoveAll(after); err != nil {
						t.Fatal(err)
					}
				})
				if cuts < 5 {
					t.Fatalf("only %d operations in Repair to cut at", cuts)
				}
				t.Logf("%d power cuts", cuts)
			})
		}
	}
}

// repairCutAtEachStep runs Repair on a copy of the log image orig, on a
// cutFS (harsh: the adversarial model), cutting the power at its k-th
// operation, for k = 1, 2, ... until a Repair runs to its end first; it
// calls check with k and what the disk held after each cut, and returns
// how many cuts there were.
func repairCutAtEachStep(t *testing.T, orig snapshot, harsh bool, check func(k int, img snapshot)) (cuts int) {
	t.Helper()
	for k := 1; ; k++ {
		dir := orig.write(t, filepath.Join(t.TempDir(), "log"))
		cfs := newCutFS(dir, uint64(k), 0)
		if err := cfs.adopt(); err != nil {
			t.Fatal(err)
		}
		if harsh {
			cfs.writeBack, cfs.subset, cfs.lostSizes, cfs.grain, cfs.bgWriteBack = 0.5, true, true, 512, 0.3
		}
		seen, fired := 0, false
		cfs.trigger = func(kind, path string) bool {
			if seen++; seen == k {
				fired = true
			}
			return fired
		}
		_, rerr := repair(cfs, dir, nil)
		cfs.cut()
		img := snapshot(cfs.image)
		cfs.close()
		if !fired {
			if rerr != nil {
				t.Fatalf("Repair without a power cut: %v", rerr)
			}
			return cuts
		}
		cuts++
		check(k, img)
	}
}

// sidePiecesIn returns the pieces of every side file in dir. A side file
// a power cut interrupted may end in a piece cut short (not synced yet,
// and its bytes not yet taken out of the log): what follows the last
// whole piece is ignored.
func sidePiecesIn(t testing.TB, dir string) []sidePiece {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ps []sidePiece
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "repair-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			line, rest, ok := bytes.Cut(b, []byte("\n"))
			var p sidePiece
			var n int64
			if !ok {
				break
			}
			if _, err := fmt.Sscanf(string(line), "walpub-repair %s %d %d", &p.file, &p.off, &n); err != nil || n < 0 || n > int64(len(rest)) {
				break
			}
			p.data, b = rest[:n], rest[n:]
			ps = append(ps, p)
		}
	}
	return ps
}
