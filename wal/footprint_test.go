package wal

import (
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// allocated returns the bytes the file system allocated for dir and
// everything in it (st_blocks × 512, not the files' apparent sizes), and
// the names of the files it holds.
func allocated(t testing.TB, dir string) (int64, []string) {
	t.Helper()
	var total int64
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Skip("no st_blocks on this platform")
		}
		total += st.Blocks * 512
		if !d.IsDir() {
			names = append(names, d.Name())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, names
}

// TestClosedIdleLogFootprint: a log whose records are all acknowledged
// takes at most 1 MiB on disk once closed (no preallocated segment, no
// prepared next one), and seqs go on after every later Open, with or
// without appends in between.
func TestClosedIdleLogFootprint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	const limit = 1 << 20
	l := mustOpen(t, dir) // default 64 MiB segments
	rec := make([]byte, 1024)
	var last uint64
	for i := range 3000 {
		var err error
		if i%3 == 0 {
			last, err = l.AppendBatch([][]byte{rec, rec, rec})
			last += 2
		} else {
			last, err = l.Append(rec)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for q := uint64(1); q <= last; q++ {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	if n, names := allocated(t, dir); n <= limit {
		t.Fatalf("before Close the log takes %d bytes (%v): the test cannot tell a shrink", n, names)
	}
	for round := range 3 {
		mustClose(t, l)
		n, names := allocated(t, dir)
		if n > limit {
			t.Fatalf("round %d: the closed, fully acknowledged log takes %d bytes on disk (%v), want <= %d", round, n, names, limit)
		}
		for _, name := range names {
			if strings.HasSuffix(name, tmpExt) {
				t.Errorf("round %d: %s left behind", round, name)
			}
		}
		l = mustOpen(t, dir)
		if st := l.Stats(); st.NextSeq != last+1 || st.Pending != 0 {
			t.Fatalf("round %d: reopened with next seq %d and %d pending, want %d and 0", round, st.NextSeq, st.Pending, last+1)
		}
		if round == 1 {
			continue // closed again with nothing appended
		}
		// Enough to leave the one-page segment for a full one.
		for range 10 {
			q, err := l.Append(rec)
			if err != nil || q != last+1 {
				t.Fatalf("round %d: Append after reopen = %d, %v; want %d", round, q, err, last+1)
			}
			last = q
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustClose(t, l)
}

// TestClosedLogKeepsPending: Close shrinks nothing that holds a pending
// record; the record is there after Open.
func TestClosedLogKeepsPending(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	for range 100 {
		q, err := l.Append(make([]byte, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if q != 100 {
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer mustClose(t, l)
	recs := pendingOf(t, l)
	if len(recs) != 1 || recs[0].Seq != 100 {
		t.Fatalf("pending after reopen: %v, want seq 100 alone", recs)
	}
}

// TestPowerCutShrinkOnClose cuts the power at each operation of a Close
// that shrinks a fully acknowledged, synced log (rotation to a one-page
// segment, sync, checkpoint, removal), in turn until Close completes. The
// log must open without Repair with nothing pending (every
// acknowledgement was durable) and its seqs must go on: no seq below the
// next one is handed out again.
func TestPowerCutShrinkOnClose(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, wb := range []float64{0, 0.5} {
		cuts := 0
		for k := 1; ; k++ {
			dir := filepath.Join(t.TempDir(), "log")
			cfs := newCutFS(dir, uint64(k), wb)
			var closing atomic.Bool
			var seen int
			fired := false
			cfs.trigger = func(kind, path string) bool {
				if !closing.Load() {
					return false
				}
				if seen++; seen == k {
					fired = true
				}
				return fired
			}
			l, err := Open(dir, WithSegmentSize(smallSeg), withFS(cfs), WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			var last uint64
			for q := uint64(1); q <= 200; q++ {
				if last, err = l.Append(powerCutRecord(q)); err != nil {
					t.Fatal(err)
				}
				if err := l.Ack(last); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the sealed segments reclaimed", func() bool { return l.Stats().Segments == 1 })
			closing.Store(true)
			l.Close()
			cfs.cut()
			after := filepath.Join(t.TempDir(), "after")
			snapshot(cfs.image).write(t, after)
			cfs.close()
			l2, err := Open(after, WithSegmentSize(smallSeg), WithLogger(quiet))
			if err != nil {
				t.Fatalf("wb=%v k=%d: Open after the power cut: %v (files %v)", wb, k, err, snapshot(cfs.image).names())
			}
			if st := l2.Stats(); st.Pending != 0 || st.NextSeq != last+1 {
				t.Fatalf("wb=%v k=%d: after the power cut %d pending, next seq %d; want 0 and %d", wb, k, st.Pending, st.NextSeq, last+1)
			}
			if q, err := l2.Append([]byte("after")); err != nil || q != last+1 {
				t.Fatalf("wb=%v k=%d: Append after the cut = %d, %v; want %d", wb, k, q, err, last+1)
			}
			mustClose(t, l2)
			if err := Verify(after); err != nil {
				t.Fatalf("wb=%v k=%d: Verify: %v", wb, k, err)
			}
			if !fired {
				break
			}
			cuts++
		}
		// Rotation (create, allocate, rename), syncs, checkpoint (create,
		// write, sync, rename, directory), removal, superblock.
		if cuts < 8 {
			t.Errorf("wb=%v: only %d operations in Close to cut at: did it shrink the log?", wb, cuts)
		}
	}
}
