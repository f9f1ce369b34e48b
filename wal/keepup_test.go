package wal

import (
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestReclaimKeepsUp: with 1 MiB segments under a steady producer's load
// (1 KiB appends, the oldest acknowledged in groups once more than a
// window of 0.36 MiB is pending), the log holds at most twice its live
// frames plus four segments (the active one, the one prepared, the sealed
// one the window still reaches into, one in reclamation) and its metadata
// at every step: after each Append and each Ack, not only once the
// compactor has caught up. Sampled in a loop, not timed.
func TestReclaimKeepsUp(t *testing.T) {
	const segSize = 1 << 20
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(segSize))
	rec := make([]byte, 1024)
	const window = 350
	frame := int64(segment.FrameSize(len(rec)))
	var oldest uint64 = 1
	var worst, worstLive int64
	check := func(step string, q uint64) {
		t.Helper()
		st := l.Stats()
		live := int64(st.Pending) * frame
		if over := st.DiskBytes - 2*live; over > worst {
			worst, worstLive = over, live
		}
		if bound := 2*live + 4*segSize + metaBytes(dir); st.DiskBytes > bound {
			t.Fatalf("after %s of seq %d: %d bytes on disk in %d segments for %d live frame bytes, bound %d",
				step, q, st.DiskBytes, st.Segments, live, bound)
		}
	}
	for range 48 << 10 { // 48 MiB: 48 rotations
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		check("the Append", q)
		if q-oldest+1 <= window {
			continue
		}
		acks := make([]uint64, 0, 32)
		for ; oldest+window/2 <= q; oldest++ {
			acks = append(acks, oldest)
		}
		if err := l.Ack(acks...); err != nil {
			t.Fatal(err)
		}
		check("the Ack", q)
	}
	t.Logf("at worst %d bytes on disk beyond twice the live frames (%d live then)", worst, worstLive)
}
