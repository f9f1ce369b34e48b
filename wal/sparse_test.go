package wal

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// craftSpanningDir writes the directory of issue 10 item 11: k compacted
// segments of one 4 KiB page each, each holding two records index.MaxSpan-1
// seqs apart (the most a segment may span), then an active segment. The
// checkpoint covers the compacted segments: the even ones have an entry
// flagged "no seq acknowledged" (24 bytes, no words), and an ack frame in
// the active segment acknowledges every seq between their two records (a
// few bytes a range); the odd ones have no entry, below the sealed end:
// every seq acknowledged. It returns the seqs that stay pending and the
// bytes of the files.
func craftSpanningDir(t testing.TB, dir string, k int) (pending []uint64, size int64) {
	t.Helper()
	const span = index.MaxSpan
	first := func(i int) uint64 { return 1 + uint64(i)*span }
	next := first(k)
	write := func(id uint64, h segment.Header, fsize int64, frames func(b []byte) int64) {
		f, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(id)), fsize, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Init(h)
		frames(f.Bytes()[segment.HeaderSize:])
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		size += fsize
	}
	var ranges []byte // the ack frame's ranges
	nranges := 0
	prevEnd := uint64(0)
	for i := range k {
		lo, hi := first(i), first(i)+span-1
		write(uint64(i+1), segment.Header{ID: uint64(i + 1), FirstSeq: lo, Flags: segment.SegCompacted, Generation: 1}, segment.PageSize,
			func(b []byte) int64 {
				n := segment.PutFrame(b, lo, 0, 2, []byte("lo"))
				return int64(n + segment.PutFrame(b[n:], hi, 0, 2, []byte("hi")))
			})
		if i%2 == 0 {
			pending = append(pending, lo, hi)
			ranges = binary.AppendUvarint(ranges, lo+1-prevEnd)
			ranges = binary.AppendUvarint(ranges, hi-lo-2)
			prevEnd, nranges = hi, nranges+1
		}
	}
	payload := append(binary.AppendUvarint(nil, uint64(nranges)), ranges...)
	write(uint64(k+1), segment.Header{ID: uint64(k + 1), FirstSeq: next}, segment.MinSize, func(b []byte) int64 {
		n := segment.PutFrame(b, next-1, segment.FlagAck, len(payload), payload)
		return int64(n + segment.PutFrame(b[n:], next, 0, 6, []byte("active")))
	})
	pending = append(pending, next)

	// The checkpoint by hand: building its entries with index.NewAcks would
	// take 32 MiB apiece.
	b := index.AppendCheckpoint(nil, index.Checkpoint{Through: uint64(k), NextSeq: next, SealedEnd: next})
	b = b[:len(b)-8]
	entries := 0
	for i := 0; i < k; i += 2 {
		b = binary.LittleEndian.AppendUint64(b, uint64(i+1))
		b = binary.LittleEndian.AppendUint64(b, first(i))
		b = binary.LittleEndian.AppendUint64(b, 1<<63|span) // no seq acknowledged
		entries++
	}
	binary.LittleEndian.PutUint32(b[12:], uint32(entries))
	b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
	if err := os.WriteFile(filepath.Join(dir, index.CheckpointName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return pending, size + int64(len(b))
}

// openAllocs opens the log in dir and returns it and the bytes Open
// allocated.
func openAllocs(t testing.TB, dir string) (*Log, uint64) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, err := Open(dir, WithSegmentSize(smallSeg))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, after.TotalAlloc - before.TotalAlloc
}

// openBound is what opening a log of size bytes may allocate: a constant
// (buffers, the active segment's bitmap, goroutines) plus 64 bytes a byte
// of its files.
func openBound(size int64) uint64 { return 4<<20 + 64*uint64(size) }

// TestOpenSpanningSegmentsBoundedBySize (issue 10 item 11): a directory of
// small compacted segments, each claiming index.MaxSpan seqs, with their
// acknowledgements in the checkpoint and in an ack frame, opens with
// allocations bounded by its size, not by the spans (a bitmap of 32 MiB
// a segment before), and in time bounded by it too (the checks walked
// every seq of the spans). The records stay pending across Close and
// Open (the checkpoint Close writes records them), and acknowledging
// them works.
func TestOpenSpanningSegmentsBoundedBySize(t *testing.T) {
	dir := t.TempDir()
	const k = 8
	want, size := craftSpanningDir(t, dir, k)
	for round := range 3 {
		l, n := openAllocs(t, dir)
		t.Logf("round %d: Open of %d bytes allocated %d bytes", round, size, n)
		if bound := openBound(size); n > bound {
			t.Errorf("round %d: Open of %d bytes (%d segments spanning %d seqs each) allocated %d bytes, more than %d",
				round, size, k, index.MaxSpan, n, bound)
		}
		var got []uint64
		for _, r := range pendingOf(t, l) {
			got = append(got, r.Seq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: pending %v, want %v", round, got, want)
		}
		if st := l.Stats(); st.Pending != len(want) {
			t.Fatalf("round %d: Stats.Pending %d, want %d", round, st.Pending, len(want))
		}
		// Acknowledge the highest record of a compacted segment each round.
		q := want[len(want)-2]
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Get(q); err != ErrNotFound {
			t.Fatalf("round %d: Get of acknowledged %d: %v", round, q, err)
		}
		want = slices.Delete(want, len(want)-2, len(want)-1)
		mustClose(t, l)
		fi, err := os.Stat(filepath.Join(dir, index.CheckpointName))
		if err != nil {
			t.Fatal(err)
		}
		size = diskBytes(t, dir)
		// The checkpoint records the spanning segments by their few
		// pending records, not by bitmaps of their spans.
		if fi.Size() > 4<<10 {
			t.Fatalf("round %d: checkpoint of %d bytes", round, fi.Size())
		}
	}
}

// sparseMerged returns the log's compacted segments whose bitmap is
// sparse.
func sparseMerged(l *Log) []*seg {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*seg
	for _, s := range l.segs {
		if s.compacted() && s.acks.Sparse() {
			out = append(out, s)
		}
	}
	return out
}

// pendingSeqs returns the seqs Pending yields.
func pendingSeqs(t testing.TB, l *Log) []uint64 {
	t.Helper()
	var got []uint64
	for _, r := range pendingOf(t, l) {
		got = append(got, r.Seq)
	}
	return got
}

// TestSparseCompaction: segments of many small records of which a few
// stay pending are merged by the compactor into one whose range is many
// times its records: its bitmap is sparse, the checkpoint records it as a
// sparse entry (version 2), and its records stay pending across Close
// and Open, as do acknowledgements of some of them before and after.
func TestSparseCompaction(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	var keep, ack []uint64
	for i := range 10000 {
		q, err := l.Append([]byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if q%1000 == 0 {
			keep = append(keep, q)
		} else {
			ack = append(ack, q)
		}
	}
	if err := l.Ack(ack...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a merged segment with a sparse bitmap", func() bool {
		for _, s := range sparseMerged(l) {
			if s.file.Header.MergedThrough > s.id {
				return true
			}
		}
		return false
	})
	if got := pendingSeqs(t, l); !slices.Equal(got, keep) {
		t.Fatalf("pending %v, want %v", got, keep)
	}
	mustClose(t, l)
	b, err := os.ReadFile(filepath.Join(dir, index.CheckpointName))
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != index.CheckpointVersion {
		t.Fatalf("checkpoint version %d, want %d (a sparse entry)", v, index.CheckpointVersion)
	}
	for round := range 3 {
		l = mustOpen(t, dir, WithSegmentSize(smallSeg))
		if len(sparseMerged(l)) == 0 {
			t.Fatalf("round %d: no sparse bitmap after Open", round)
		}
		if got := pendingSeqs(t, l); !slices.Equal(got, keep) {
			t.Fatalf("round %d: pending %v, want %v", round, got, keep)
		}
		for _, q := range keep[:2] {
			if _, err := l.Get(q); err != nil {
				t.Fatalf("round %d: Get(%d): %v", round, q, err)
			}
		}
		if _, err := l.Get(keep[0] + 1); err != ErrNotFound {
			t.Fatalf("round %d: Get of a compacted-away seq: %v", round, err)
		}
		if err := l.Ack(keep[0], keep[0]+1); err != nil { // one pending, one acknowledged long ago
			t.Fatal(err)
		}
		keep = keep[1:]
		mustClose(t, l)
	}
}

// TestNewSegmentAfterMergedThrough: when the last segment is a merged
// one (merged through a higher id, as a crash before the merge's leftovers
// were removed, or Repair, can leave it), the next segment's id comes
// after the ids it merged: one inside them would be taken for a merge
// leftover by the next Open, and removed with its records. Found by
// FuzzLogDir's log sets (regression-merged-last-next-id).
func TestNewSegmentAfterMergedThrough(t *testing.T) {
	dir := t.TempDir()
	f, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(1)), segment.PageSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Init(segment.Header{ID: 1, FirstSeq: 1, Flags: segment.SegCompacted, Generation: 1, MergedThrough: 3})
	segment.PutFrame(f.Bytes()[segment.HeaderSize:], 1, 0, 3, []byte("old"))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A leftover of the merge. No checkpoint: one from before the merge
	// covers the segments merged (through 3) and names segment 4, which
	// is not there (a checkpoint that does not match the segments is
	// damage Open reports).
	left, err := segment.Create(vfs.OS, filepath.Join(dir, segment.Name(3)), segment.PageSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	left.Init(segment.Header{ID: 3, FirstSeq: 1})
	left.Close()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	if _, err := l.Append([]byte("new")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	for _, name := range []string{segment.Name(2), segment.Name(3)} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s exists: the new segment took an id the merge covers", name)
		}
	}
	for round := range 2 {
		l = mustOpen(t, dir, WithSegmentSize(smallSeg))
		var got []string
		for _, r := range pendingOf(t, l) {
			got = append(got, string(r.Data))
		}
		mustClose(t, l)
		if !slices.Equal(got, []string{"old", "new"}) {
			t.Fatalf("round %d: pending %q, want old and new", round, got)
		}
	}
}
