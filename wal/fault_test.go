package wal

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// checkpointWritten waits until the checkpoint every Open writes first is
// on disk, so that the compactor does not take an injected fault meant
// for something else.
func checkpointWritten(t *testing.T, l *Log) {
	t.Helper()
	eventually(t, "the first checkpoint", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ckptEpoch == l.ackEpoch && l.ckptBytes > 0
	})
}

// sticky checks that every call on l returns an error wrapping want.
func sticky(t *testing.T, l *Log, want error) {
	t.Helper()
	next := l.Stats().NextSeq
	if _, err := l.Append([]byte("x")); !errors.Is(err, want) {
		t.Errorf("Append: %v, want %v", err, want)
	}
	if _, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b")}); !errors.Is(err, want) {
		t.Errorf("AppendBatch: %v, want %v", err, want)
	}
	if _, err := l.AppendBatch(nil); !errors.Is(err, want) {
		t.Errorf("AppendBatch(nil): %v, want %v", err, want)
	}
	if err := l.Ack(1); !errors.Is(err, want) {
		t.Errorf("Ack: %v, want %v", err, want)
	}
	if _, err := l.Get(1); !errors.Is(err, want) {
		t.Errorf("Get: %v, want %v", err, want)
	}
	if err := l.Sync(); !errors.Is(err, want) {
		t.Errorf("Sync: %v, want %v", err, want)
	}
	for _, err := range l.Pending() {
		if !errors.Is(err, want) {
			t.Errorf("Pending: %v, want %v", err, want)
		}
		break
	}
	if l.Stats().NextSeq != next {
		t.Errorf("refused appends consumed seqs")
	}
	if err := l.Close(); !errors.Is(err, want) {
		t.Errorf("Close: %v, want %v", err, want)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
}

// TestFailedSyncIsSticky: under SyncAlways a failed sync makes Append
// return the error, and every later call returns it too (a retried fsync
// can falsely succeed). The records written before stay readable after a
// reopen.
func TestFailedSyncIsSticky(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSync(SyncAlways), WithSegmentSize(smallSeg))
	checkpointWritten(t, l)
	m := newModel()
	r := rand.New(rand.NewPCG(14, 14))
	appendSmall(t, l, m, r, 5)
	fsys.FailNextSyncs(1)
	if _, err := l.Append([]byte("not synced")); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Append with a failing sync: %v, want the injected error", err)
	}
	sticky(t, l, vfs.ErrInjected)

	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer l.Close()
	recs := pendingOf(t, l)
	if len(recs) < 5 {
		t.Fatalf("%d records after reopen, want at least the 5 synced", len(recs))
	}
	for _, rec := range recs[:5] {
		if string(rec.Data) != string(m.data[rec.Seq]) {
			t.Fatalf("seq %d differs after reopen", rec.Seq)
		}
	}
}

// TestFailedWriteIsSticky: a large append is written with a write call;
// when it fails half-way the log cannot know what is on disk, so the error
// is sticky.
func TestFailedWriteIsSticky(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	l := mustOpen(t, t.TempDir(), withFS(fsys), WithSegmentSize(smallSeg))
	checkpointWritten(t, l)
	if _, err := l.Append([]byte("before")); err != nil {
		t.Fatal(err)
	}
	fsys.FailNextWrites(1, syscall.EIO)
	next := l.Stats().NextSeq
	if _, err := l.Append(make([]byte, 60<<10)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with a failing write: %v, want EIO", err)
	}
	if got := l.Stats().NextSeq; got != next {
		t.Errorf("the failed Append consumed a seq: NextSeq %d -> %d", next, got)
	}
	sticky(t, l, syscall.EIO)
}

// TestAllocationFailureAtRotation: a segment that cannot be allocated
// (ENOSPC) fails the Append that needed it, consumes no seq and leaves the
// log working: a later Append succeeds.
func TestAllocationFailureAtRotation(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()
	r := rand.New(rand.NewPCG(15, 15))
	appendSmall(t, l, m, r, 3)

	// A record larger than a segment needs a file of its own, whatever
	// was prepared.
	fsys.FailNextAllocates(1000)
	next := l.Stats().NextSeq
	big := randRecord(r, 100<<10)
	if _, err := l.Append(big); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append needing an allocation that fails: %v, want ENOSPC", err)
	}
	if l.Stats().NextSeq != next {
		t.Fatalf("the failed Append consumed a seq")
	}
	// The same at an ordinary rotation, with nothing prepared.
	var err error
	for i := 0; err == nil; i++ {
		if i > 1000 {
			t.Fatal("no rotation")
		}
		d := randRecord(r, 4000)
		var q uint64
		if q, err = l.Append(d); err == nil {
			m.data[q] = d
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append at a rotation whose allocation fails: %v, want ENOSPC", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync after a failed allocation: %v (the failure must not be sticky)", err)
	}

	fsys.FailNextAllocates(0)
	for _, d := range [][]byte{big, randRecord(r, 4000)} {
		q, err := l.Append(d)
		if err != nil {
			t.Fatalf("Append once allocation works again: %v", err)
		}
		m.data[q] = d
	}
	m.check(t, l)
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}

// activeFits reports whether a record of size bytes fits in l's active
// segment (so that appending it does not rotate).
func activeFits(l *Log, size int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active.tail+int64(segment.FrameSize(size)) <= l.active.file.Size()
}

// TestHeaderWriteFailureAtRotation: a new segment's header is written
// through the file; a write that fails fails the Append that rotated,
// consumes no seq and leaves the log working (the file is not used).
func TestHeaderWriteFailureAtRotation(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()
	r := rand.New(rand.NewPCG(16, 16))
	const size = 4000 // below writeThrough: no write but the header's
	for activeFits(l, size) {
		d := randRecord(r, size)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	checkpointWritten(t, l)
	segs := l.Stats().Segments
	fsys.FailNextWrites(1, syscall.EIO)
	next := l.Stats().NextSeq
	if _, err := l.Append(randRecord(r, size)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append at a rotation whose header write fails: %v, want EIO", err)
	}
	if st := l.Stats(); st.NextSeq != next || st.Segments != segs {
		t.Fatalf("the failed rotation changed the log: NextSeq %d -> %d, segments %d -> %d", next, st.NextSeq, segs, st.Segments)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync after a failed header write: %v (the failure must not be sticky)", err)
	}
	d := randRecord(r, size)
	q, err := l.Append(d)
	if err != nil {
		t.Fatalf("Append once writes work again: %v", err)
	}
	m.data[q] = d
	if l.Stats().Segments != segs+1 {
		t.Fatalf("no rotation")
	}
	m.check(t, l)
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}

// TestFailedCheckpointRename: a checkpoint that cannot be renamed into
// place is reported (by Close here), and the log still opens afterwards
// with every record and acknowledgement.
func TestFailedCheckpointRename(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	checkpointWritten(t, l)
	m := newModel()
	r := rand.New(rand.NewPCG(16, 16))
	appendSmall(t, l, m, r, 5)
	if err := l.Ack(2); err != nil {
		t.Fatal(err)
	}
	m.acked[2] = true
	fsys.FailNextRenames(1)
	if err := l.Close(); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Close with a failing checkpoint rename: %v, want the injected error", err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer l.Close()
	m.check(t, l)
}

// TestAckAfterFailedRotation: an Ack that cannot make room for its ack
// frame (the next segment cannot be allocated) fails and changes nothing,
// so that its retry, once the disk has room again, writes the frame: after
// a kill the record is not pending again.
func TestAckAfterFailedRotation(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	checkpointWritten(t, l)
	// No allocation succeeds until the faults are lifted below. Armed
	// before the first Append starts the preparer, so that it never
	// gets a next segment ready: the rotation the Ack needs must
	// allocate, and fails.
	fsys.FailNextAllocates(1 << 30)
	data := []byte("to be acknowledged")
	q, err := l.Append(data)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the active segment up to 8 bytes before its end: no room for
	// an ack frame.
	l.mu.Lock()
	free := l.active.file.Size() - l.active.tail
	l.mu.Unlock()
	fill, err := l.Append(make([]byte, free-8-segment.FrameHeaderSize))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ack(q); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Ack with no room for its frame: %v, want ENOSPC", err)
	}
	// The failed Ack changed nothing.
	if st := l.Stats(); st.Pending != 2 || st.Segments != 1 {
		t.Fatalf("after the failed Ack: %d pending in %d segments, want 2 in 1", st.Pending, st.Segments)
	}
	if got, err := l.Get(q); err != nil || string(got) != string(data) {
		t.Fatalf("Get(%d) after the failed Ack: %q, %v", q, got, err)
	}

	fsys.FailNextAllocates(0)
	if err := l.Ack(q); err != nil {
		t.Fatalf("Ack retried once allocation works: %v", err)
	}
	if st := l.Stats(); st.Pending != 1 {
		t.Fatalf("after the retried Ack: %d pending, want 1", st.Pending)
	}
	killed := copyDir(t, dir, filepath.Join(t.TempDir(), "killed"))
	lk := mustOpen(t, killed, WithSegmentSize(smallSeg))
	recs := pendingOf(t, lk)
	if len(recs) != 1 || recs[0].Seq != fill {
		seqs := make([]uint64, len(recs))
		for i, r := range recs {
			seqs[i] = r.Seq
		}
		t.Fatalf("after a kill, pending seqs %v, want only %d (the retried Ack(%d) returned nil)", seqs, fill, q)
	}
}

// mappingsUnder returns the lines of /proc/self/maps that map a file in
// dir: the segments some Log (or a leak) holds mapped.
func mappingsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot list this process's mappings: %v", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, dir+string(filepath.Separator)) {
			out = append(out, line)
		}
	}
	return out
}

// fileMapped reports whether this process maps path, a file in dir.
func fileMapped(t *testing.T, dir, path string) bool {
	t.Helper()
	return slices.ContainsFunc(mappingsUnder(t, dir), func(line string) bool { return strings.Contains(line, path) })
}

// TestOpenFailsRemovingMergeLeftover: an Open that fails removing a
// segment an interrupted merge left behind returns the error and leaves
// nothing mapped; the next Open removes the leftover and succeeds.
func TestOpenFailsRemovingMergeLeftover(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	seqs := appendN(t, l, 5, 100)
	mustClose(t, l)
	// Segment 1 as a merge wrote it, naming segment 2 merged into it; a
	// segment 2 still on disk is then a leftover (never read).
	seg1 := filepath.Join(dir, segment.Name(1))
	b, h := readSegment(t, seg1)
	h.Flags, h.Generation, h.MergedThrough = segment.SegCompacted, 1, 2
	segment.PutHeader(b, h)
	if err := os.WriteFile(seg1, b, 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, segment.Name(2))
	if err := os.WriteFile(leftover, b, 0o600); err != nil {
		t.Fatal(err)
	}

	fsys := &vfs.Faulty{FS: vfs.OS}
	fsys.FailNextRemoves(1)
	if l, err := Open(dir, withFS(fsys), WithSegmentSize(smallSeg)); !errors.Is(err, vfs.ErrInjected) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("Open failing to remove the leftover: %v, want the injected error", err)
	}
	if m := mappingsUnder(t, dir); len(m) > 0 {
		t.Fatalf("the failed Open left %d mappings:\n%s", len(m), strings.Join(m, "\n"))
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	// The leftover is gone. The new active segment is segment 3: a
	// segment 2 would be taken for the leftover again by the next Open
	// (TestNewSegmentAfterMergedThrough).
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 2 after the reopen: %v; want it gone", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, segment.Name(3))); err != nil {
		t.Fatal(err)
	} else if h, err := segment.DecodeHeader(b); err != nil || h.Compacted() || h.FirstSeq != seqs[len(seqs)-1]+1 {
		t.Fatalf("segment 3 after the reopen: %+v, %v; want a new active segment", h, err)
	}
	if recs := pendingOf(t, l); len(recs) != len(seqs) {
		t.Fatalf("%d records pending, want %d", len(recs), len(seqs))
	}
	mustClose(t, l)
	if m := mappingsUnder(t, dir); len(m) > 0 {
		t.Fatalf("Close left %d mappings:\n%s", len(m), strings.Join(m, "\n"))
	}
}

// TestSuperblockNoSpaceNotSticky: a sync whose segments are synced but
// whose superblock write finds no room (ENOSPC, half the slot written)
// returns the error and leaves the log working: the next sync writes the
// same slot again, so the other keeps the last good mark, and the log
// reopens with every record.
func TestSuperblockNoSpaceNotSticky(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	checkpointWritten(t, l)
	m := newModel()
	r := rand.New(rand.NewPCG(16, 16))
	appendSmall(t, l, m, r, 5)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	gen := l.sbGen
	l.mu.Unlock()
	appendSmall(t, l, m, r, 5)
	fsys.FailNextWrites(1, syscall.ENOSPC)
	if err := l.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync with the superblock write failing: %v, want ENOSPC", err)
	}
	l.mu.Lock()
	after := l.sbGen
	l.mu.Unlock()
	if after != gen {
		t.Fatalf("superblock generation %d after the failed write, want %d again (its slot)", after, gen)
	}
	appendSmall(t, l, m, r, 5)
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync once there is room: %v (a full disk must not be sticky)", err)
	}
	l.mu.Lock()
	after = l.sbGen
	l.mu.Unlock()
	if after != gen+1 {
		t.Fatalf("superblock generation %d after the retried write, want %d", after, gen+1)
	}
	m.check(t, l)
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}

// TestHeaderWriteFailureWhilePrefaulting: a rotation whose header write
// fails discards the prepared file it took; if the preparer is faulting
// that file's pages in meanwhile (outside the lock), the file stays mapped
// until the preparer is done, which then closes it: closing it under the
// preparer was a data race (and madvise on an unmapped range) that -race
// caught in TestPowerCut. The disk use the log counts drops by the file.
func TestHeaderWriteFailureWhilePrefaulting(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	dir := t.TempDir()
	held, release := holdFirstPrefault(t)
	l := mustOpen(t, dir, withFS(fsys), WithSegmentSize(smallSeg))
	defer func() { release(); l.Close() }()
	r := rand.New(rand.NewPCG(18, 18))
	const size = 4000 // below writeThrough: no write but the header's
	if _, err := l.Append(randRecord(r, size)); err != nil {
		t.Fatal(err)
	}
	p := held()
	for activeFits(l, size) {
		if _, err := l.Append(randRecord(r, size)); err != nil {
			t.Fatal(err)
		}
	}
	checkpointWritten(t, l)
	disk := l.Stats().DiskBytes
	fsys.FailNextWrites(1, syscall.EIO)
	_, err := l.Append(randRecord(r, size))
	l.mu.Lock()
	taken, mapped, diskAfter := l.prepared == nil || l.prepared.File != p, p.Bytes() != nil, l.diskBytes+l.sbBytes+l.ckptBytes+l.encBytes
	l.mu.Unlock()
	release()
	if !errors.Is(err, syscall.EIO) || !taken {
		t.Fatalf("Append at a rotation whose header write fails: %v (took the prepared file: %v), want EIO", err, taken)
	}
	if !mapped {
		t.Fatal("the failed rotation closed the prepared file while the preparer was faulting it in")
	}
	if _, err := os.Stat(p.Path); !os.IsNotExist(err) {
		t.Fatalf("the discarded file %s: %v, want it removed", p.Path, err)
	}
	if want := disk - smallSeg; diskAfter != want {
		t.Fatalf("DiskBytes after the discard: %d, want %d", diskAfter, want)
	}
	// The preparer unmaps it without the log's lock: ask the kernel.
	eventually(t, "the preparer closing the discarded file", func() bool { return !fileMapped(t, dir, p.Path) })
	if _, err := l.Append(randRecord(r, size)); err != nil {
		t.Fatalf("Append once writes work again: %v", err)
	}
	eventually(t, "a new prepared file", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.prepared != nil
	})
	mustClose(t, l)
	// Close discards the prepared file too (the preparer stopped): what
	// the log counts is what the directory holds.
	var onDisk int64
	for _, b := range readDir(t, dir) {
		onDisk += int64(len(b))
	}
	if got := l.Stats().DiskBytes; got != onDisk {
		t.Fatalf("DiskBytes after Close: %d, the directory holds %d", got, onDisk)
	}
}

// A rotation may take the prepared file as the next segment while the
// preparer is faulting its pages in, outside the lock. That segment can be
// filled, sealed, acknowledged and reclaimed before the preparer is done:
// its mapping must stay until the preparer lets go of it, and be closed
// then.
func TestReclaimWhilePrefaulting(t *testing.T) {
	dir := t.TempDir()
	held, release := holdFirstPrefault(t)
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer func() { release(); l.Close() }()
	r := rand.New(rand.NewPCG(19, 19))
	const size = 4000
	var seqs []uint64
	appendOne := func() {
		t.Helper()
		seq, err := l.Append(randRecord(r, size))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	appendOne()
	p := held()
	// Fill the first segment; the next append rotates into p.
	for activeFits(l, size) {
		appendOne()
	}
	appendOne()
	l.mu.Lock()
	taken := l.active.file.File == p
	l.mu.Unlock()
	if !taken {
		t.Fatal("the rotation did not take the file the preparer holds")
	}
	// Fill p's segment and seal it (the next segment is a file of its
	// own: the preparer is held), then acknowledge everything.
	for activeFits(l, size) {
		appendOne()
	}
	appendOne()
	path := p.Path
	// Whether the file is mapped, as the kernel sees it: the preparer
	// unmaps it without the log's lock once it lets go.
	mapped := func() bool { return fileMapped(t, dir, path) }
	if !mapped() {
		t.Fatalf("%s is not mapped while it is the active segment", path)
	}
	if err := l.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the acknowledged segment reclaimed", func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err)
	})
	stillMapped := mapped()
	release()
	if !stillMapped {
		t.Fatal("the reclaimed segment was unmapped while the preparer was faulting its pages in")
	}
	eventually(t, "the preparer closing the reclaimed segment", func() bool { return !mapped() })
	mustClose(t, l)
}

// holdFirstPrefault makes the preparer wait, with the first prepared file
// it is about to fault pages of in, until release is called (any number of
// times; the test must call it before closing the log). held waits for
// that moment and returns the file. The hook goes when the test ends.
func holdFirstPrefault(t *testing.T) (held func() *segment.File, release func()) {
	ch := make(chan *segment.File, 1)
	gate := make(chan struct{})
	var first, opened sync.Once
	hook := func(f *segment.File) {
		first.Do(func() {
			ch <- f
			<-gate
		})
	}
	prepareHook.Store(&hook)
	t.Cleanup(func() { prepareHook.Store(nil) })
	held = func() *segment.File {
		t.Helper()
		select {
		case f := <-ch:
			return f
		case <-time.After(10 * time.Second):
			t.Fatal("the preparer never faulted in the prepared file")
			return nil
		}
	}
	return held, func() { opened.Do(func() { close(gate) }) }
}

// TestAppendSyncFailureReturnsSeq: under SyncAlways, an Append (or
// AppendBatch) whose sync fails on a full disk (the superblock write, which
// is not sticky) returns the seq it appended with the error: the record is
// in the log, and a caller that tracks seqs (the Kafka producer) must not
// lose its place. The next append works and both are pending.
func TestAppendSyncFailureReturnsSeq(t *testing.T) {
	fsys := &vfs.Faulty{FS: vfs.OS}
	l := mustOpen(t, t.TempDir(), withFS(fsys), WithSegmentSize(smallSeg), WithSync(SyncAlways))
	defer mustClose(t, l)
	checkpointWritten(t, l)
	fsys.FailNextWrites(1, syscall.ENOSPC)
	seq, err := l.Append([]byte("appended, not synced"))
	if !errors.Is(err, syscall.ENOSPC) || seq == 0 {
		t.Fatalf("Append with the sync failing: seq %d, %v; want its seq and ENOSPC", seq, err)
	}
	fsys.FailNextWrites(1, syscall.ENOSPC)
	first, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b")})
	if !errors.Is(err, syscall.ENOSPC) || first != seq+1 {
		t.Fatalf("AppendBatch with the sync failing: first %d, %v; want %d and ENOSPC", first, err, seq+1)
	}
	next, err := l.Append([]byte("synced"))
	if err != nil || next != seq+3 {
		t.Fatalf("Append once there is room: %d, %v; want %d", next, err, seq+3)
	}
	var got []uint64
	for _, r := range pendingOf(t, l) {
		got = append(got, r.Seq)
	}
	if want := []uint64{seq, seq + 1, seq + 2, seq + 3}; !slices.Equal(got, want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
}
