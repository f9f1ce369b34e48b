package wal

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/segment"
)

// fillFile writes a file of n bytes (allocated, not sparse).
func fillFile(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
		t.Fatalf("filler: %v", err)
	}
}

// appendUntilFull appends records until Append fails and returns the
// error, which must be the file system's ENOSPC and must leave the log
// usable.
func appendUntilFull(t *testing.T, l *Log, m *model, r *rand.Rand) error {
	t.Helper()
	for range 10000 {
		d := randRecord(r, 1000+r.IntN(7000))
		next := l.Stats().NextSeq
		q, err := l.Append(d)
		if err != nil {
			if l.Stats().NextSeq != next {
				t.Fatalf("a failed Append consumed a seq")
			}
			return err
		}
		m.data[q] = d
	}
	t.Fatal("the log never filled the file system")
	return nil
}

// TestDiskFull fills a 1 MiB tmpfs: Append fails cleanly with ENOSPC (no
// SIGBUS: segments are allocated before they are mapped), the records
// written stay intact, and Append works again once space returns, whether
// from a file removed or from acknowledged records reclaimed.
func TestDiskFull(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "log")
	filler := filepath.Join(mnt, "filler")
	fillFile(t, filler, 200<<10)
	r := rand.New(rand.NewPCG(12, 12))
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer func() { l.Close() }()
	m := newModel()

	err := appendUntilFull(t, l, m, r)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on a full file system: %v, want ENOSPC", err)
	}
	t.Logf("full after %d records: %v", len(m.data), err)
	// Failures are not sticky: appending goes on failing (or succeeding,
	// where the preparer had a segment ready) cleanly.
	if err := appendUntilFull(t, l, m, r); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append again: %v, want ENOSPC", err)
	}
	m.check(t, l)

	// Space returns: a file is removed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d := randRecord(r, 30<<10)
		q, err := l.Append(d)
		if err != nil {
			t.Fatalf("Append after space returned: %v", err)
		}
		m.data[q] = d
	}
	m.check(t, l)

	// Full again; then acknowledging most records lets the compactor
	// reclaim their segments.
	if err := appendUntilFull(t, l, m, r); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on a full file system: %v, want ENOSPC", err)
	}
	pend := m.pending()
	if err := l.Ack(pend[:len(pend)*3/4]...); err != nil {
		t.Fatalf("Ack on a full file system: %v", err)
	}
	for _, q := range pend[:len(pend)*3/4] {
		m.acked[q] = true
	}
	d := randRecord(r, 30<<10)
	var q uint64
	eventually(t, "Append to succeed once acknowledged segments are reclaimed", func() bool {
		var err error
		q, err = l.Append(d)
		if err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append: %v", err)
		}
		return err == nil
	})
	m.data[q] = d
	m.check(t, l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}

// fillUp writes zeros to path until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	// Space can come back after a first fill: a segment the log's
	// preparer was allocating when the file system filled up is removed
	// when its fallocate fails. Top the filler up until it stays full.
	for still := 0; still < 3; time.Sleep(20 * time.Millisecond) {
		if topUp(t, path) == 0 {
			still++
		} else {
			still = 0
		}
	}
}

// topUp appends to the file at path until the file system is full and
// returns the bytes it added.
func topUp(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	if f == nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var added int64
	for {
		n, err := f.Write(buf)
		added += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return added
		}
	}
}

// A checkpoint that cannot be written on a completely full file system
// loses nothing (the old one is intact), so it must not poison the log:
// once space returns, appends work and the compactor's retry reclaims
// the acknowledged segment.
func TestCheckpointENOSPCRecovers(t *testing.T) {
	mnt := testutil.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "log")
	r := rand.New(rand.NewPCG(13, 13))
	logs := &testutil.SyncBuffer{}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	defer func() { l.Close() }()
	m := newModel()
	if err := appendUntilFull(t, l, m, r); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append on a full file system: %v, want ENOSPC", err)
	}
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)
	// All records of the first segment acknowledged: the compactor must
	// write a checkpoint before it deletes the segment, and cannot.
	rg := segRanges(l)[0]
	for q := rg[0]; q < rg[1]; q++ {
		if err := l.Ack(q); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Ack(%d): %v", q, err)
		}
	}
	eventually(t, "the compactor to fail for want of space", func() bool {
		for _, ln := range strings.Split(logs.String(), "\n") {
			if strings.Contains(ln, "reclaiming space failed") && strings.Contains(ln, "no space left on device") {
				return true
			}
		}
		return false
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("space is back")); err != nil {
		t.Fatalf("Append after space returned: %v", err)
	}
	eventually(t, "the acknowledged first segment to be reclaimed", func() bool {
		_, err := os.Stat(filepath.Join(dir, segment.Name(1)))
		return errors.Is(err, os.ErrNotExist)
	})
}

// TestSparseCopyOnFullDisk: a log copied sparse (cp --sparse=always, rsync
// -S, a restored backup: the segments' zero tails are holes) onto a full
// file system. Open allocates the segment it will write before mapping it
// writable, so the full disk is a clean ENOSPC (never a SIGBUS, nor a
// "fault reading" that names the wrong cause), nothing is lost, and once
// space returns the log opens and appends.
func TestSparseCopyOnFullDisk(t *testing.T) {
	src := t.TempDir()
	l := mustOpen(t, src, WithSegmentSize(smallSeg))
	m := newModel()
	r := rand.New(rand.NewPCG(17, 17))
	for range 5 {
		d := randRecord(r, 500)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	mustClose(t, l)

	mnt := testutil.MountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "log")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var sparse int
	for name, b := range readDir(t, src).data() {
		// Only the bytes up to the last non-zero one are written; the
		// file then gets its size back as a hole.
		end := len(b)
		for end > 0 && b[end-1] == 0 {
			end--
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b[:end], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(len(b))); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 < int64(len(b)) {
			sparse++
		}
	}
	if sparse == 0 {
		t.Fatal("the copy has no sparse file")
	}
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)

	_, err := Open(dir, WithSegmentSize(smallSeg))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Open of a sparse copy on a full file system: %v, want ENOSPC", err)
	}
	if strings.Contains(err.Error(), "fault") {
		t.Fatalf("Open's error names a fault: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
	d := randRecord(r, 500)
	q, err := l.Append(d)
	if err != nil {
		t.Fatalf("Append once space returned: %v", err)
	}
	m.data[q] = d
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	m.check(t, l)
}
