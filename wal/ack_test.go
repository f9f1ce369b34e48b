package wal

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// TestAckReopen checks that acknowledged records leave Pending and Get for
// good: after Close and Open, and after a simulated kill (a copy of the
// directory taken while the log is open, which is what the page cache
// holds when a process dies).
func TestAckReopen(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()
	m.appendRandom(t, l, r, 300)
	ack := func(seqs ...uint64) {
		t.Helper()
		if err := l.Ack(seqs...); err != nil {
			t.Fatalf("Ack(%v): %v", seqs, err)
		}
		for _, q := range seqs {
			m.acked[q] = true
		}
	}
	for q := uint64(1); q <= 300; q++ {
		switch r.IntN(4) {
		case 0:
			ack(q)
		case 1:
			ack(q, q) // a duplicate within one call
		}
	}
	ack(10, 20, 30, 40, 50)
	m.check(t, l)

	// Idempotent: acknowledging again is a no-op.
	before := l.Stats()
	ack(10, 20, 30)
	if after := l.Stats(); after.Pending != before.Pending || after.PendingBytes != before.PendingBytes {
		t.Fatalf("a repeated Ack changed Stats: %+v -> %+v", before, after)
	}

	// Ack(0) and a seq never written return ErrNotFound but still
	// acknowledge the valid seqs given with them.
	valid := m.pending()[:3]
	next := l.Stats().NextSeq
	if err := l.Ack(0, valid[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Ack(0, %d): %v, want ErrNotFound", valid[0], err)
	}
	if err := l.Ack(valid[1], next, next+1000); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Ack(%d, %d): %v, want ErrNotFound", valid[1], next, err)
	}
	if err := l.Ack(^uint64(0), valid[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Ack(max, %d): %v, want ErrNotFound", valid[2], err)
	}
	for _, q := range valid {
		m.acked[q] = true
	}
	if l.Stats().NextSeq != next {
		t.Fatalf("a failed Ack changed NextSeq")
	}
	if err := l.Ack(); err != nil {
		t.Fatalf("Ack(): %v", err)
	}
	m.check(t, l)

	// Simulated kill: the directory as the page cache holds it.
	m.appendRandom(t, l, r, 40)
	for _, q := range m.pending() {
		if r.IntN(3) == 0 {
			ack(q)
		}
	}
	killed := copyDir(t, dir, filepath.Join(t.TempDir(), "killed"))
	lk := mustOpen(t, killed, WithSegmentSize(smallSeg))
	m.check(t, lk)
	mustClose(t, lk)

	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
	// Acknowledging records acknowledged before the reopen is a no-op.
	for q := range m.acked {
		if err := l.Ack(q); err != nil {
			t.Fatalf("Ack(%d) after reopen: %v", q, err)
		}
	}
	m.check(t, l)
}

// TestSeqsNeverRepeat acknowledges everything, lets the log delete its
// segments, and checks that sequence numbers go on where they were after a
// reopen and after a simulated kill.
func TestSeqsNeverRepeat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()
	m.appendRandom(t, l, r, 200)
	all := m.pending()
	if err := l.Ack(all...); err != nil {
		t.Fatal(err)
	}
	for _, q := range all {
		m.acked[q] = true
	}
	eventually(t, "acknowledged segments to be reclaimed", func() bool { return l.Stats().Segments == 1 })
	next := l.Stats().NextSeq
	if len(segFiles(t, dir)) != 1 {
		t.Fatalf("segment files left: %v", segFiles(t, dir))
	}
	killed := copyDir(t, dir, filepath.Join(t.TempDir(), "killed"))
	mustClose(t, l)

	for _, d := range []string{dir, killed} {
		l2 := mustOpen(t, d, WithSegmentSize(smallSeg))
		if st := l2.Stats(); st.NextSeq != next || st.Pending != 0 {
			t.Fatalf("%s: reopened with %+v, want NextSeq %d and nothing pending", d, st, next)
		}
		q, err := l2.Append([]byte("x"))
		if err != nil || q != next {
			t.Fatalf("Append after reopen = %d, %v; want %d", q, err, next)
		}
		// Acknowledging a record of a deleted segment is a no-op.
		if err := l2.Ack(1, all[len(all)/2]); err != nil {
			t.Fatalf("Ack of records in deleted segments: %v", err)
		}
		if _, err := l2.Get(1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(1): %v", err)
		}
		mustClose(t, l2)
	}
	// And once more after the reopen that appended.
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	if q, err := l.Append([]byte("y")); err != nil || q != next+1 {
		t.Fatalf("Append = %d, %v; want %d", q, err, next+1)
	}
}

// TestReclaimAfterCrashAtRotation rebuilds the state a kill leaves right
// after a rotation, before the compactor wrote a checkpoint covering the
// segment just sealed, whose acknowledgements live only in ack frames.
// The next Log may reclaim that segment, but only after recording its
// acknowledgements in a checkpoint: otherwise the reopen after finds a
// segment missing that no checkpoint covers, or acknowledged records back.
func TestReclaimAfterCrashAtRotation(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 22))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	m := newModel()
	for range 4 {
		d := randRecord(r, 15<<10)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	d := randRecord(r, 15<<10)
	q5, err := l.Append(d) // the first record of segment 2
	if err != nil {
		t.Fatal(err)
	}
	m.data[q5] = d
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	mustClose(t, l) // the checkpoint covers segment 1

	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	for _, q := range []uint64{1, q5} { // ack frames in segment 2
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		m.acked[q] = true
	}
	crash := readDir(t, dir) // killed now ...
	mustClose(t, l)
	// ... right after a rotation to segment 3.
	crashDir := crash.write(t, filepath.Join(t.TempDir(), "crash"))
	f, err := segment.Create(vfs.OS, filepath.Join(crashDir, segment.Name(3)), smallSeg, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Init(segment.Header{ID: 3, FirstSeq: q5 + 1})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	l = mustOpen(t, crashDir, WithSegmentSize(smallSeg))
	m.check(t, l)
	eventually(t, "segment 2, all acknowledged, to be reclaimed", func() bool {
		_, err := os.Stat(filepath.Join(crashDir, segment.Name(2)))
		return errors.Is(err, os.ErrNotExist)
	})
	killed := copyDir(t, crashDir, filepath.Join(t.TempDir(), "killed"))
	mustClose(t, l)
	for _, d := range []string{crashDir, killed} {
		l := mustOpen(t, d, WithSegmentSize(smallSeg))
		m.check(t, l)
		mustClose(t, l)
	}
}

// TestAckMoreRangesThanOneFrame: one Ack of more separate seqs than one
// ack frame may hold (the decoder refuses more than 2^20 ranges) is
// written as several frames, and the log opens again with every one of
// them acknowledged.
func TestAckMoreRangesThanOneFrame(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2.2 M records")
	}
	const n = 1<<21 + 100_000
	dir := t.TempDir()
	l := mustOpen(t, dir)
	batch := make([][]byte, 1<<16)
	for i := range batch {
		batch[i] = []byte("rec")
	}
	for written := 0; written < n; written += len(batch) {
		if _, err := l.AppendBatch(batch[:min(len(batch), n-written)]); err != nil {
			t.Fatal(err)
		}
	}
	var odd []uint64
	for q := uint64(1); q <= n; q += 2 {
		odd = append(odd, q)
	}
	if err := l.Ack(odd...); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	openWithin(t, dir, "Open of a log with a large Ack hangs", func(l *Log) {
		if st := l.Stats(); st.Pending != n/2 {
			t.Errorf("%d pending after reopen, want %d", st.Pending, n/2)
		}
		for _, q := range []uint64{1, 3, n - 1} {
			if _, err := l.Get(q); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%d) of an acknowledged record: %v", q, err)
			}
		}
		if _, err := l.Get(n); err != nil {
			t.Errorf("Get(%d): %v", n, err)
		}
	})
}
