package wal

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// salvaged is a record as Salvage or View.Records yields it, data copied.
type salvaged struct {
	RecordInfo
	data []byte
}

func salvageAll(t *testing.T, dir string) (recs []salvaged, damage []*CorruptionError) {
	t.Helper()
	for r, err := range Salvage(dir) {
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("Salvage: %T %v is not a *CorruptionError", err, err)
			}
			damage = append(damage, ce)
			continue
		}
		d := bytes.Clone(r.Data)
		r.Data = nil
		recs = append(recs, salvaged{r, d})
	}
	return recs, damage
}

func viewAll(t *testing.T, dir string) []salvaged {
	t.Helper()
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var recs []salvaged
	for r, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		d := bytes.Clone(r.Data)
		r.Data = nil
		recs = append(recs, salvaged{r, d})
	}
	return recs
}

func sameSalvaged(t *testing.T, got, want []salvaged) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		gi, wi := g.RecordInfo, w.RecordInfo
		same := gi.Seq == wi.Seq && gi.Path == wi.Path && gi.Offset == wi.Offset && gi.Size == wi.Size &&
			gi.StoredSize == wi.StoredSize && gi.Compressed == wi.Compressed && gi.Batch == wi.Batch && gi.Acked == wi.Acked
		if !same || !bytes.Equal(g.data, w.data) {
			t.Fatalf("record %d: %+v, want %+v (data equal: %v)", i, g.RecordInfo, w.RecordInfo, bytes.Equal(g.data, w.data))
		}
	}
}

// buildSalvageLog writes a log of several segments, zstd and batches
// included, with some records acknowledged, and closes it.
func buildSalvageLog(t *testing.T) (dir string, m *model) {
	dir = t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithCompression(CompressionZstd))
	m = newModel()
	r := rand.New(rand.NewPCG(21, 21))
	m.appendRandom(t, l, r, 200)
	for q := uint64(1); q < 200; q += 3 {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		m.acked[q] = true
	}
	m.appendRandom(t, l, r, 50)
	mustClose(t, l)
	if n := len(segFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments, want 3 or more", n)
	}
	return dir, m
}

// TestSalvageHealthy: on a sound log Salvage yields exactly what
// View.Records does (seq, place, sizes, acknowledgement, data), and no
// damage.
func TestSalvageHealthy(t *testing.T) {
	dir, _ := buildSalvageLog(t)
	got, damage := salvageAll(t, dir)
	if len(damage) != 0 {
		t.Fatalf("damage reported on a sound log: %v", damage)
	}
	sameSalvaged(t, got, viewAll(t, dir))
}

// TestSalvageDamage: a flipped payload byte and a zeroed segment header
// each cost no more than what they hit. Salvage reports the damaged frame
// (file and offset) and goes on; every other record comes out intact.
func TestSalvageDamage(t *testing.T) {
	dir, _ := buildSalvageLog(t)
	want := viewAll(t, dir)
	segs := segFiles(t, dir)
	s := readDir(t, dir)

	// A payload byte of a record in the middle of the first segment.
	first := filepath.Base(segs[0])
	frs := framesOf(t, s[first])
	var hit segment.Frame
	for _, fr := range frs[len(frs)/2:] {
		if fr.Flags&(segment.FlagAck|segment.FlagBatch) == 0 {
			hit = fr
			break
		}
	}
	if hit.Seq == 0 {
		t.Fatal("no single record in the second half of the first segment")
	}
	s[first][hit.End()-segment.Align-1] ^= 0x40
	// The header of the second segment.
	second := filepath.Base(segs[1])
	clear(s[second][:segment.HeaderSize])
	s.write(t, dir)

	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of the damaged log: %v", err)
	}
	got, damage := salvageAll(t, dir)
	if len(damage) != 2 {
		t.Fatalf("%d damage reports, want 2: %v", len(damage), damage)
	}
	if damage[0].Path != segs[0] || damage[0].Offset != hit.Offset {
		t.Errorf("first report %v, want %s at offset %d", damage[0], segs[0], hit.Offset)
	}
	if damage[1].Path != segs[1] || damage[1].Offset != 0 {
		t.Errorf("second report %v, want %s at offset 0", damage[1], segs[1])
	}
	var rest []salvaged
	for _, r := range want {
		if r.Seq != hit.Seq {
			rest = append(rest, r)
		}
	}
	sameSalvaged(t, got, rest)
}

// TestSalvageUnfinishedBatch: a batch without its commit frame was never
// acknowledged as written: its records are left out, and reported.
func TestSalvageUnfinishedBatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, segment.Name(1))
	f, err := segment.Create(vfs.OS, path, 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Init(segment.Header{ID: 1, FirstSeq: 1})
	off := int64(segment.HeaderSize)
	put := func(seq uint64, flags uint32, d string) int64 {
		at := off
		off += int64(segment.PutFrame(f.Bytes()[off:], seq, flags, len(d), []byte(d)))
		return at
	}
	put(1, 0, "one")
	batchAt := put(2, segment.FlagBatch, "two")
	put(3, segment.FlagBatch, "three")
	put(4, 0, "four")
	put(5, segment.FlagBatch, "five")
	put(6, segment.FlagBatch|segment.FlagCommit, "six")
	lastAt := put(7, segment.FlagBatch, "seven")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, damage := salvageAll(t, dir)
	var seqs []uint64
	for _, r := range got {
		seqs = append(seqs, r.Seq)
	}
	if len(seqs) != 4 || seqs[0] != 1 || seqs[1] != 4 || seqs[2] != 5 || seqs[3] != 6 {
		t.Fatalf("salvaged seqs %v, want [1 4 5 6]", seqs)
	}
	if string(got[1].data) != "four" {
		t.Fatalf("seq 4 holds %q", got[1].data)
	}
	if len(damage) != 2 || damage[0].Offset != batchAt || damage[0].Seq != 2 || damage[1].Offset != lastAt || damage[1].Seq != 7 {
		t.Fatalf("damage %v, want the batches at offsets %d (seq 2) and %d (seq 7)", damage, batchAt, lastAt)
	}
	// Stopping early is fine.
	for range Salvage(dir) {
		break
	}
}
