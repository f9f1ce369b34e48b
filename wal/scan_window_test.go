package wal

import (
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// scanWindows scans o whole (scanCut) with cuts, and returns what it found
// and the spans of the windows it read and of the frames it scanned
// through the mapping because they are larger than a window.
func scanWindows(o *opened, cuts []int64) (s scanSummary, windows, mapped [][2]int64) {
	var mu sync.Mutex
	hook := func(from, to int64, m bool) {
		mu.Lock()
		defer mu.Unlock()
		if m {
			mapped = append(mapped, [2]int64{from, to})
		} else {
			windows = append(windows, [2]int64{from, to})
		}
	}
	windowHook.Store(&hook)
	defer windowHook.Store(nil)
	s, _ = scanCut(o, cuts)
	return s, windows, mapped
}

// TestWindowedScanMatchesMapping: Open reads a segment into a buffer a
// window (readWindow) at a time, scans a frame larger than a window
// through the mapping, and hands the rest of the segment to a scan of the
// mapping where the windows cannot go on. Whatever the damage and wherever
// it lies — in a frame that straddles a window's end, one that starts a
// window, a frame larger than a window or the one after it, a payload, a
// length, a seq out of order — the scan, whole or in pieces, reports
// exactly what one scan of the mapping from the first frame reports.
func TestWindowedScanMatchesMapping(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(16<<20))
	r := rand.New(rand.NewPCG(11, 11))
	rec := func() []byte { return randRecord(r, r.IntN(3000)) }
	for i := 0; l.Stats().PendingBytes < 7<<20; i++ {
		switch x := r.IntN(20); {
		case i%700 == 350:
			if _, err := l.Append(randRecord(r, readWindow+1+r.IntN(5000))); err != nil {
				t.Fatal(err)
			}
		case x < 6:
			batch := make([][]byte, 1+r.IntN(6))
			for k := range batch {
				batch[k] = rec()
			}
			if _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
		case x < 7 && i > 0:
			next := l.Stats().NextSeq
			if err := l.Ack(1 + r.Uint64N(next-1)); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := l.Append(rec()); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustClose(t, l)
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segment files, want 1", len(segs))
	}
	path := segs[0]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frames := framesOf(t, orig)
	o := openedOf(t, dir)[0]

	clean, windows, mapped := scanWindows(o, nil)
	if want := mappingScan(o); clean.Damage != "" || !reflect.DeepEqual(clean, want) {
		t.Fatalf("undamaged segment: the windowed scan differs from the mapping's:\n got %+v\nwant %+v", clean, want)
	}
	if len(windows) < 6 || len(mapped) < 2 {
		t.Fatalf("the scan read %d windows and mapped %d large frames: the test needs several of each", len(windows), len(mapped))
	}

	// The frames to damage: those that straddle the end of a window the
	// clean scan read, those that start one, the large frames and the
	// ones after them, and some anywhere.
	var targets []segment.Frame
	for i, fr := range frames {
		straddles, starts, large, afterLarge := false, false, false, false
		for _, w := range windows {
			straddles = straddles || fr.Offset < w[1] && fr.End() > w[1]
			starts = starts || fr.Offset == w[0]
		}
		for _, m := range mapped {
			large = large || fr.Offset == m[0]
			afterLarge = afterLarge || fr.Offset == m[1]
		}
		if straddles || starts && i > 0 || large || afterLarge || r.IntN(len(frames)/10) == 0 {
			targets = append(targets, fr)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(b []byte, off int64) {
		t.Helper()
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	mid := frames[len(frames)/2].Offset
	seqFired := false
	for _, fr := range targets {
		size := fr.Size()
		good := slices.Clone(orig[fr.Offset:fr.End()])
		damages := map[string][]byte{}
		// A payload byte: the checksum fails.
		b := slices.Clone(good)
		b[segment.FrameHeaderSize+len(fr.Payload)/2] ^= 0x10
		damages["payload"] = b
		// The stored length, larger (within a window and not), smaller.
		for _, n := range []int{len(fr.Payload) + 512, len(fr.Payload) + 3*readWindow, len(fr.Payload) / 2} {
			b := slices.Clone(good)
			segment.PutFrameHeader(b, fr.Seq, fr.Flags, int(fr.RawLen), make([]byte, n))
			damages[fmt.Sprintf("stored length %d", n)] = b
		}
		// A valid frame with the wrong seq.
		if !fr.IsAck() {
			b := make([]byte, size)
			segment.PutFrame(b, fr.Seq+3, fr.Flags, int(fr.RawLen), fr.Payload)
			damages["seq"] = b
		}
		for name, b := range damages {
			write(b, fr.Offset)
			want := mappingScan(o)
			if want.Damage == "" {
				t.Fatalf("frame at %d, %s: the mapping's scan found no damage", fr.Offset, name)
			}
			seqFired = seqFired || name == "seq" && want.DamageOff == fr.Offset
			for _, cuts := range [][]int64{nil, {mid}} {
				if got, _, _ := scanWindows(o, cuts); !reflect.DeepEqual(got, want) {
					t.Fatalf("frame at %d (seq %d, %d bytes), %s, cuts %v: the windowed scan differs from the mapping's:\n got %+v\nwant %+v",
						fr.Offset, fr.Seq, size, name, cuts, got, want)
				}
			}
			write(good, fr.Offset)
		}
	}
	if !seqFired {
		t.Fatal("no rewritten seq was reported at its frame: the scan's own damage (not the scanner's) went untested")
	}
	t.Logf("%d frames damaged 4-5 ways each; the clean scan read %d windows and mapped %d large frames", len(targets), len(windows), len(mapped))
}
