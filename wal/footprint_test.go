package wal

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// allocated returns the bytes the file system allocated for dir and
// everything in it (st_blocks × 512, not the files' apparent sizes), and
// the names of the files it holds.
func allocated(t testing.TB, dir string) (int64, []string) {
	t.Helper()
	var total int64
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		var fi fs.FileInfo
		if err == nil {
			fi, err = d.Info()
		}
		if errors.Is(err, fs.ErrNotExist) && path != dir {
			// Gone since its directory was read: a temporary file an
			// open log's compactor renamed (checkpoint.tmp), say.
			return nil
		}
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
			if wb > 0 {
				cfs.unordered, cfs.lostSizes, cfs.grain = true, true, 512
			}
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

// mappedResident returns the bytes of the process's mappings of files in
// dir that are resident (the Rss of /proc/self/smaps): the pages of the
// log's segments the process holds.
func mappedResident(t testing.TB, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	var total int64
	in := false
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = len(f) >= 6 && strings.HasPrefix(f[5], dir+string(filepath.Separator))
		case in && len(f) >= 2 && f[0] == "Rss:":
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			total += kb << 10
		}
	}
	return total
}

// TestMappedPagesReleased: the pages of the log's segments the process
// holds stay bounded however much is written, read back (Get, Pending)
// and acknowledged: written pages behind the tail and sealed segments'
// pages are released, and so are pages readers fault in again. Before,
// every page written stayed resident until its segment was deleted.
func TestMappedPagesReleased(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	const segSize = 16 << 20
	l := mustOpen(t, dir, WithSegmentSize(segSize))
	// The preparer's window past the tail (in the active segment and,
	// near its end, the prepared one), the written pages not yet
	// released (two release steps), and what readers read since the last
	// release.
	const bound = populateAhead + 3*releaseEvery + 4<<20
	const written = 3 * segSize
	rec := make([]byte, 1000)
	// Below writeThrough: written through the mapping.
	batch := make([][]byte, 20)
	for i := range batch {
		batch[i] = rec
	}
	var last uint64
	for n := 0; n < written; n += len(batch) * len(rec) {
		q, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		last = q + uint64(len(batch)) - 1
	}
	if l.Stats().Segments < 3 {
		t.Fatalf("%d segments: the test needs sealed ones", l.Stats().Segments)
	}
	settled := func(what string) {
		t.Helper()
		var n int64
		eventually(t, what, func() bool { n = mappedResident(t, dir); return n <= bound })
		t.Logf("%s: %d KiB of the segments resident (bound %d KiB)", what, n>>10, bound>>10)
	}
	settled("pages written released")
	for q := uint64(1); q <= last; q++ {
		if _, err := l.Get(q); err != nil {
			t.Fatal(err)
		}
	}
	settled("pages read by Get released")
	for q := uint64(1); q <= last; q += 50 {
		// Half of them: the segments stay, held by pending records.
		if err := l.Ack(q, q+1, q+2, q+3, q+4); err != nil {
			t.Fatal(err)
		}
	}
	settled("pages read by Ack released")
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(segSize))
	settled("pages verified by Open released")
	n := 0
	for _, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := int(last) - int(last+49)/50*5; n != want {
		t.Fatalf("%d pending, want %d", n, want)
	}
	settled("pages read by Pending released")
}

// TestSmallWriterFootprint: the window of pages the preparer faults in
// past the tail grows with the bytes appended (aheadLocked), and it
// reaches into the prepared next segment only once it reaches past the
// active one's end. A process that writes 3 MiB holds well under a MiB of
// the log's pages, where the preparer used to fault in 8 MiB past the
// tail and 8 MiB of the prepared segment whatever was written; a writer
// that keeps going gets the full window, and the prepared segment's
// first pages before it needs them.
func TestSmallWriterFootprint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	const segSize = 64 << 20
	l := mustOpen(t, dir, WithSegmentSize(segSize), WithSync(SyncNever))
	defer mustClose(t, l)
	rec := make([]byte, 1000)
	// Batches below a page (syncedWriteThrough): with its syncs, the log
	// writes them through the mapping, not with pwritev.
	batch := make([][]byte, 3)
	for i := range batch {
		batch[i] = rec
	}
	type state struct {
		tail, reach, window int64 // reach: the active segment's pages faulted in up to here
		prepReach, prepPop  int64 // prepared: how far the window reaches into it, faulted in
		prepPath            string
	}
	now := func() state {
		l.mu.Lock()
		defer l.mu.Unlock()
		a := l.active
		s := state{tail: a.tail, reach: max(a.populated, a.wpopulated), window: l.windowLocked(),
			prepReach: l.prepReachLocked(a), prepPop: l.prepPopulated}
		if l.prepared != nil {
			s.prepPath = l.prepared.Path
		}
		return s
	}
	written := int64(0)
	appendTo := func(n int64) {
		t.Helper()
		for ; written < n; written += int64(len(batch) * len(rec)) {
			if _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
			if written%(256<<10) < int64(len(batch)*len(rec)) {
				// A Sync every 256 KiB: the pages are faulted in for
				// reading after the first two.
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			// The preparer never faults in pages past the window: it
			// only grows, and so does the tail.
			if s := now(); s.reach > s.tail+s.window || s.prepPop > s.prepReach {
				t.Fatalf("%d bytes written: pages faulted in up to %d in the active segment (tail %d, window %d) and %d of the prepared one (window reaches %d)",
					written, s.reach, s.tail, s.window, s.prepPop, s.prepReach)
			}
		}
	}

	appendTo(3 << 20)
	s := now()
	if s.window != populateMin {
		t.Fatalf("3 MiB written: a window of %d bytes, want %d", s.window, populateMin)
	}
	eventually(t, "the prepared segment", func() bool { return now().prepPath != "" })
	var n int64
	eventually(t, "pages behind the tail released", func() bool { n = mappedResident(t, dir); return n <= 1<<20 })
	if p := mappedResident(t, now().prepPath); p != 0 {
		t.Fatalf("3 MiB written: %d bytes of the prepared segment resident", p)
	}
	t.Logf("3 MiB written: %d KiB of the segments resident", n>>10)

	// 60 MiB of records, 62 MiB of frames: the window (7.7 MiB) reaches
	// past the active segment's end, and the preparer keeps at least half
	// of it faulted in ahead of the tail, partly in the prepared segment.
	appendTo(60 << 20)
	eventually(t, "the window faulted in", func() bool {
		s = now()
		return s.reach == segSize && s.prepPop > 0 && segSize+s.prepPop >= s.tail+s.window/2
	})
	if s.window < 7<<20 {
		t.Fatalf("60 MiB written: a window of %d bytes", s.window)
	}
}

// ckptFailFS fails the compactor's checkpoint writes once armed (as on a
// full disk: it retries later), counting them; other writers' succeed.
type ckptFailFS struct {
	vfs.FS
	armed  atomic.Bool
	failed atomic.Int32
}

func (g *ckptFailFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	if g.armed.Load() && strings.HasSuffix(name, index.CheckpointName+tmpExt) && inStack("(*Log).compactor") {
		g.failed.Add(1)
		return nil, vfs.ErrInjected
	}
	return g.FS.OpenFile(name, flag, perm)
}

// TestCloseReclaimsAcknowledgedSegments: sealed segments whose records
// are all acknowledged, which the compactor has not reclaimed yet (its
// checkpoint write failed and waits for its retry), while a record of the
// active segment is pending: Close reclaims them, as it promises to leave
// nothing on disk that holds no live record. The pending record is there
// after Open.
func TestCloseReclaimsAcknowledgedSegments(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "log")
	g := &ckptFailFS{FS: vfs.OS}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), withFS(g), WithLogger(quiet))
	checkpointWritten(t, l)
	var seqs []uint64
	for len(segRanges(l)) < 4 {
		q, err := l.Append(make([]byte, 1000))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	last := seqs[len(seqs)-1] // in the active segment: stays pending
	g.armed.Store(true)
	if err := l.Ack(seqs[:len(seqs)-1]...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the compactor's failed checkpoint write", func() bool { return g.failed.Load() > 0 })
	if n := len(segFiles(t, dir)); n < 4 {
		t.Fatalf("%d segment files before Close: the compactor reclaimed, the scenario did not happen", n)
	}
	mustClose(t, l)
	if files := segFiles(t, dir); len(files) != 1 {
		t.Errorf("%d segment files after Close, want 1 (the active one; the others hold no pending record): %v", len(files), files)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer mustClose(t, l)
	recs := pendingOf(t, l)
	if len(recs) != 1 || recs[0].Seq != last {
		t.Fatalf("pending after reopen: %v, want seq %d alone", recs, last)
	}
}
