package wal

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestDroppedSegmentReadBounded: a segment file after a power cut's hole
// (here segment 2, whose header never reached the disk: zeros, then a
// stray non-zero byte deep into its 64 MiB) is dropped by Open, which
// counts the bytes it held in TornBytes. Counting them must not read the
// whole file into memory: with segments of up to 4 GiB, Open allocated a
// buffer of the file's size for every dropped file.
func TestDroppedSegmentReadBounded(t *testing.T) {
	const size = 64 << 20
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(size))
	if _, err := l.Append([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	p := filepath.Join(dir, segment.Name(2))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const stray = 40<<20 + 123
	if _, err := f.WriteAt([]byte{7}, stray); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, err = Open(dir, WithSegmentSize(size))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Stats().TornBytes; got != stray+1 {
		t.Errorf("TornBytes %d, want %d", got, stray+1)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("segment 2 still there: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n >= size/4 {
		t.Fatalf("Open allocated %d bytes to drop a %d-byte segment", n, size)
	}
}
