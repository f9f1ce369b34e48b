package wal

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestAppendSmallMatchesAppend: an Append of a record small enough for
// appendSmall (the frame below syncedWriteThrough, the log neither
// compressing nor encrypting) writes the bytes, seqs and state the general
// path (append, here through AppendBatch of one record) writes, at the
// sizes around its limit, across rotations; and it refuses what append
// refuses (ErrFull, ErrClosed).
func TestAppendSmallMatchesAppend(t *testing.T) {
	// SyncNever: append writes every one of these through the mapping;
	// SyncAlways: those from the limit on with pwritev, and each Append
	// returns once synced.
	for _, pol := range []struct {
		name string
		p    SyncPolicy
		n    int
	}{{"never", SyncNever, 300}, {"always", SyncAlways, 60}} {
		t.Run(pol.name, func(t *testing.T) { testAppendSmallMatchesAppend(t, pol.p, pol.n) })
	}
}

func testAppendSmallMatchesAppend(t *testing.T, policy SyncPolicy, n int) {
	// The first size appendSmall leaves to append.
	limit := syncedWriteThrough - segment.FrameHeaderSize - segment.Align + 1
	if segment.FrameSize(limit-1) >= syncedWriteThrough || segment.FrameSize(limit) < syncedWriteThrough {
		t.Fatalf("limit %d is not the first size whose frame is syncedWriteThrough or more", limit)
	}
	sizes := []int{0, 1, 7, 8, 100, limit - 1, limit, limit + 1, 3 << 10}
	var recs [][]byte
	for i := range n {
		r := bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])
		recs = append(recs, r)
	}
	small, general := t.TempDir(), t.TempDir()
	ls := mustOpen(t, small, WithSegmentSize(smallSeg), WithSync(policy))
	lg := mustOpen(t, general, WithSegmentSize(smallSeg), WithSync(policy))
	for i, r := range recs {
		qs, err := ls.Append(r)
		if err != nil {
			t.Fatal(err)
		}
		qg, err := lg.AppendBatch([][]byte{r})
		if err != nil {
			t.Fatal(err)
		}
		if qs != qg || qs != uint64(i+1) {
			t.Fatalf("record %d: seq %d by Append, %d by AppendBatch", i, qs, qg)
		}
	}
	ss, sg := ls.Stats(), lg.Stats()
	ss.DiskBytes, sg.DiskBytes = 0, 0 // the prepared next segment comes and goes as the preparer runs
	if ss != sg || ss.Segments < 2 {
		t.Fatalf("stats %+v by Append, %+v by AppendBatch (want equal, over a rotation at least)", ss, sg)
	}
	for q := uint64(1); q <= uint64(len(recs)); q++ {
		if b, err := ls.Get(q); err != nil || !bytes.Equal(b, recs[q-1]) {
			t.Fatalf("Get(%d) = %d bytes, %v", q, len(b), err)
		}
	}
	mustClose(t, ls)
	mustClose(t, lg)
	fs, fg := segFiles(t, small), segFiles(t, general)
	if len(fs) != len(fg) {
		t.Fatalf("%d segment files by Append, %d by AppendBatch", len(fs), len(fg))
	}
	for i := range fs {
		bs, err := os.ReadFile(fs[i])
		if err != nil {
			t.Fatal(err)
		}
		bg, err := os.ReadFile(fg[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bs, bg) {
			t.Fatalf("segment %d differs between Append and AppendBatch of one record", i)
		}
	}

	// Refused as append refuses.
	lf := mustOpen(t, t.TempDir(), WithMaxBytes(250))
	if _, err := lf.Append(make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	if _, err := lf.Append(make([]byte, 100)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past WithMaxBytes: %v, want ErrFull", err)
	}
	mustClose(t, lf)
	if _, err := lf.Append(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}
