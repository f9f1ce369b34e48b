package wal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairMemoryBounded: Repair moves bytes aside in pieces of bounded
// size, whatever the size of what it moves. Before, it read each piece
// whole: the bytes past a segment's size (a file grown by damage, here
// sparse), the rest of a cut segment, a later segment moved whole. A
// file of gigabytes made Repair allocate gigabytes, and a large enough
// one crashed it. Runs of zeros stay holes in the side file, so it takes
// no more disk than the non-zero bytes it holds.
func TestRepairMemoryBounded(t *testing.T) {
	const seg = 4 << 20
	const big = 256 << 20
	for _, c := range []struct {
		name string
		// damage damages the log in dir whose segment 1 holds records,
		// so that Repair moves about big bytes aside; it returns the file
		// and offset of one non-zero byte, far into them, that must be
		// in the side file.
		damage func(t *testing.T, dir string) (string, int64)
	}{
		{"segment longer than its header says", func(t *testing.T, dir string) (string, int64) {
			p := filepath.Join(dir, segment.Name(1))
			return p, extendWithStray(t, p, seg+big)
		}},
		{"cut in a segment, a later segment moved whole", func(t *testing.T, dir string) (string, int64) {
			// A flipped byte in the first record of segment 1 cuts it
			// there; segment 2, made large and sparse, goes whole.
			p1 := filepath.Join(dir, segment.Name(1))
			f, err := os.OpenFile(p1, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			off := int64(segment.HeaderSize + segment.FrameHeaderSize + 1)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x40
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			f.Close()
			p2 := filepath.Join(dir, segment.Name(2))
			return p2, extendWithStray(t, p2, big)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, WithSegmentSize(seg))
			rec := make([]byte, 1000)
			for i := range rec {
				rec[i] = byte(i) | 1
			}
			for range 2 * seg / len(rec) {
				if _, err := l.Append(rec); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, l)
			path, stray := c.damage(t, dir)
			if _, err := Open(dir, WithSegmentSize(seg)); err == nil {
				t.Fatal("Open of the damaged log succeeded")
			}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rep, err := Repair(dir)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			t.Logf("%+v", rep)
			if n := after.TotalAlloc - before.TotalAlloc; n >= big/8 {
				t.Errorf("Repair allocated %d MiB to move %d MiB aside", n>>20, rep.Moved>>20)
			}
			if rep.Moved < big {
				t.Fatalf("Repair moved %d bytes, want at least %d", rep.Moved, big)
			}
			// The stray byte is in the side file, where its piece says.
			at := sideOffset(t, rep.SideFile, filepath.Base(path), stray)
			sf, err := os.Open(rep.SideFile)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			b := make([]byte, 1)
			if _, err := sf.ReadAt(b, at); err != nil || b[0] != 7 {
				t.Fatalf("side file at %d: %v %v, want the stray byte 7", at, b, err)
			}
			fi, err := sf.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if disk := fi.Sys().(*syscall.Stat_t).Blocks * 512; disk > 32<<20 {
				t.Errorf("the side file takes %d MiB on disk for %d MiB mostly zeros", disk>>20, fi.Size()>>20)
			}
			mustClose(t, mustOpen(t, dir, WithSegmentSize(seg)))
		})
	}
}

// extendWithStray makes the file at path size bytes long (sparse) with a
// byte 7 near its end, and returns that byte's offset.
func extendWithStray(t *testing.T, path string, size int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stray := size - 4096 - 17
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{7}, stray); err != nil {
		t.Fatal(err)
	}
	return stray
}

// sideOffset returns where, in the side file at side, the byte of file
// at offset off was put, reading only the pieces' header lines.
func sideOffset(t *testing.T, side, file string, off int64) int64 {
	t.Helper()
	f, err := os.Open(side)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pos int64
	for {
		br := bufio.NewReader(&offsetReader{f, pos})
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("side file %s: no piece holds %s at %d (%v)", side, file, off, err)
		}
		var name string
		var start, n int64
		if _, err := fmt.Sscanf(line, "walpub-repair %s %d %d\n", &name, &start, &n); err != nil {
			t.Fatalf("side file %s: piece header %q: %v", side, line, err)
		}
		data := pos + int64(len(line))
		if name == file && start <= off && off < start+n {
			return data + off - start
		}
		pos = data + n
	}
}

type offsetReader struct {
	f   *os.File
	off int64
}

func (r *offsetReader) Read(b []byte) (int, error) {
	n, err := r.f.ReadAt(b, r.off)
	r.off += int64(n)
	if n > 0 {
		err = nil
	}
	return n, err
}
