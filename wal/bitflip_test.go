package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// fastDir returns a temporary directory on a memory file system when there
// is one, so that tests that open thousands of logs do not wait for the
// disk's syncs.
func fastDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "waltest-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// flipPositions chooses the bytes of a file to flip: every byte of the
// metadata and of segment headers, a sample of every frame's header and
// payload, and of the zeros after the data.
func flipPositions(t testing.TB, r *rand.Rand, name string, b []byte) []int64 {
	var ps []int64
	all := func(from, to int64) {
		for i := from; i < to; i++ {
			ps = append(ps, i)
		}
	}
	if !strings.HasSuffix(name, segment.Ext) {
		if name == index.SuperblockName {
			all(0, min(64, int64(len(b))))
			all(index.SuperblockSlot, min(index.SuperblockSlot+64, int64(len(b))))
			for i := int64(64); i < index.SuperblockSlot && i < int64(len(b)); i += 37 {
				ps = append(ps, i)
			}
			return ps
		}
		all(0, int64(len(b)))
		return ps
	}
	all(0, segment.HeaderSize)
	frs := framesOf(t, b)
	for _, fr := range frs {
		for range 3 {
			ps = append(ps, fr.Offset+r.Int64N(segment.FrameHeaderSize))
		}
		if n := int64(len(fr.Payload)); n > 0 {
			p := fr.Offset + segment.FrameHeaderSize
			ps = append(ps, p+r.Int64N(n))
		}
		if end := fr.Offset + segment.FrameHeaderSize + int64(len(fr.Payload)); end < fr.End() {
			ps = append(ps, end) // padding
		}
	}
	end := int64(segment.HeaderSize)
	if len(frs) > 0 {
		end = frs[len(frs)-1].End()
	}
	all(end, min(end+32, int64(len(b))))
	for i := end + 32; i < int64(len(b)); i += 4093 {
		ps = append(ps, i)
	}
	ps = append(ps, int64(len(b))-1)
	return ps
}

// TestBitFlips flips one bit at a time in a copy of a small synced log
// (segments, one of them compacted, ack frames, superblock, checkpoint) and
// opens it: Open either returns a *CorruptionError naming a file of the log
// and a plausible offset, or Pending returns exactly the original pending
// records. Never different data, never a panic.
func TestBitFlips(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	src := t.TempDir()
	l := mustOpen(t, src, WithSegmentSize(smallSeg), WithCompression(CompressionZstd))
	m := newModel()
	for range 450 {
		d := randRecord(r, 200+r.IntN(1600))
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	q, err := l.AppendBatch([][]byte{[]byte("batch-1"), []byte("batch-2")})
	if err != nil {
		t.Fatal(err)
	}
	m.data[q], m.data[q+1] = []byte("batch-1"), []byte("batch-2")
	// Acknowledge most of the first segment, so that it is compacted, and
	// a few records elsewhere.
	l.mu.Lock()
	end1 := l.segs[1].firstSeq
	l.mu.Unlock()
	for q := range m.data {
		if q < end1 && q != 5 && q != end1-3 || q%7 == 0 {
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
			m.acked[q] = true
		}
	}
	first := filepath.Join(src, segment.Name(1))
	eventually(t, "the first segment to be compacted", func() bool {
		fi, err := os.Stat(first)
		return err == nil && fi.Size() < smallSeg
	})
	mustClose(t, l)
	img := readDir(t, src).data()
	if len(img.segNames()) < 4 || img[index.CheckpointName] == nil || img[index.SuperblockName] == nil {
		t.Fatalf("the image lacks something: %v", img.names())
	}
	want := pendingOf(t, func() *Log { l := mustOpen(t, src); t.Cleanup(func() { l.Close() }); return l }())
	if len(want) == 0 {
		t.Fatal("nothing pending")
	}

	base := fastDir(t)
	var detected, harmless, trials int
	perFile := map[string]*[2]int{}
	for _, name := range img.names() {
		perFile[name] = &[2]int{}
		for _, pos := range flipPositions(t, r, name, img[name]) {
			trials++
			dir := filepath.Join(base, "log")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			s := img.clone()
			s[name][pos] ^= 1 << (pos % 8)
			s.write(t, dir)
			l, err := Open(dir, WithSegmentSize(smallSeg))
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("flip in %s at %d: Open: %v, not a *CorruptionError", name, pos, err)
				}
				asCorruption(t, err, dir)
				detected++
				perFile[name][0]++
				continue
			}
			got, err := collectPending(l)
			l.Close()
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) {
					t.Fatalf("flip in %s at %d: Pending: %v", name, pos, err)
				}
				// Found by a read rather than by Open: allowed by the
				// contract (never wrong data), but Open should have.
				t.Errorf("flip in %s at %d: Open succeeded, Pending failed: %v", name, pos, err)
				continue
			}
			if len(got) != len(want) {
				t.Fatalf("flip in %s at %d: Pending has %d records, want %d", name, pos, len(got), len(want))
			}
			for i := range want {
				if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Data, want[i].Data) {
					t.Fatalf("flip in %s at %d: Pending[%d] is seq %d (%d bytes), want seq %d (%d bytes)",
						name, pos, i, got[i].Seq, len(got[i].Data), want[i].Seq, len(want[i].Data))
				}
			}
			harmless++
			perFile[name][1]++
		}
	}
	for _, name := range img.names() {
		t.Logf("%s: %d reported, %d harmless", name, perFile[name][0], perFile[name][1])
	}
	t.Logf("%d single-bit flips: %d reported as corruption, %d harmless (identical records)", trials, detected, harmless)
}
