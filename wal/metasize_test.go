package wal

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/walpub/walpub/wal/index"
)

// TestMetadataFileSizeBounded: the superblock and the encryption file are
// of fixed size (1 KiB, 64 bytes). One that a damaged file system, or
// anything else, left far larger (here 64 MiB, sparse) must cost Open no
// more than the bytes their formats have: the encryption file is damage
// (a *CorruptionError naming it), the superblock's slots are read. Before,
// Open read either whole into memory, whatever its size (up to 16 GiB).
func TestMetadataFileSizeBounded(t *testing.T) {
	const big = 64 << 20
	for _, name := range []string{index.SuperblockName, index.EncryptionName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			key := make([]byte, 32)
			l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithEncryption(key))
			if _, err := l.Append([]byte("x")); err != nil {
				t.Fatal(err)
			}
			mustClose(t, l)
			if err := os.Truncate(filepath.Join(dir, name), big); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			l, err := Open(dir, WithSegmentSize(smallSeg), WithEncryption(key))
			runtime.ReadMemStats(&after)
			if err == nil {
				l.Close()
			}
			if name == index.EncryptionName {
				if ce := asCorruption(t, err, dir); filepath.Base(ce.Path) != name {
					t.Fatalf("error names %s, want %s", ce.Path, name)
				}
			} else if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n >= big/4 {
				t.Fatalf("Open allocated %d bytes for a %d-byte %s", n, big, name)
			}
		})
	}
}
