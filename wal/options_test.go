package wal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestOptionsValidated: Open refuses invalid options before it touches
// the disk.
func TestOptionsValidated(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Option
	}{
		{"segment-too-small", WithSegmentSize(64<<10 - 1)},
		{"segment-negative", WithSegmentSize(-1)},
		{"segment-too-large", WithSegmentSize(1 << 33)},
		{"sync-every-zero", WithSync(SyncEvery(0))},
		{"compression", WithCompression(Compression(7))},
		{"max-bytes", WithMaxBytes(-1)},
		{"file-mode", WithFileMode(fs.ModeDir | 0o600)},
	} {
		dir := filepath.Join(t.TempDir(), "log")
		if l, err := Open(dir, c.opt); err == nil {
			l.Close()
			t.Errorf("%s: Open succeeded", c.name)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a refused Open created the directory", c.name)
		}
	}
	// Sizes round up to whole pages.
	l := mustOpen(t, t.TempDir(), WithSegmentSize(64<<10+1), WithLogger(nil))
	defer l.Close()
	if _, err := l.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestMaxBytes: WithMaxBytes bounds the payload of unacknowledged records;
// an Append past it returns ErrFull and consumes no seq, and acknowledging
// records makes room again.
func TestMaxBytes(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg), WithMaxBytes(10_000), WithCompression(CompressionZstd))
	defer l.Close()
	rec := make([]byte, 3000) // compressible: the bound is on raw bytes
	for i := range 3 {
		if q, err := l.Append(rec); err != nil || q != uint64(i+1) {
			t.Fatalf("Append %d: %d, %v", i, q, err)
		}
	}
	if _, err := l.Append(rec); !errors.Is(err, ErrFull) {
		t.Fatalf("Append past the bound: %v, want ErrFull", err)
	}
	if _, err := l.AppendBatch([][]byte{make([]byte, 500), make([]byte, 600)}); !errors.Is(err, ErrFull) {
		t.Fatalf("AppendBatch past the bound: %v, want ErrFull", err)
	}
	if q, err := l.Append(make([]byte, 1000)); err != nil || q != 4 {
		t.Fatalf("Append within the bound: %d, %v; want 4 (no seq consumed by ErrFull)", q, err)
	}
	if st := l.Stats(); st.PendingBytes != 10_000 || st.NextSeq != 5 {
		t.Fatalf("Stats: %+v", st)
	}
	if err := l.Ack(1); err != nil {
		t.Fatal(err)
	}
	if q, err := l.Append(rec); err != nil || q != 5 {
		t.Fatalf("Append after an Ack made room: %d, %v", q, err)
	}
}
