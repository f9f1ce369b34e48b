package wal

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// damageCase damages a log image in a way Open must report as a
// *CorruptionError, never as a torn tail.
type damageCase struct {
	name string
	// killed: on the closed log the damage is below the durable
	// high-water mark and so corruption; TestPowerCutHoles also makes it
	// in the image of a killed log with no durable mark, where it is what
	// a power cut leaves and Open cuts it.
	killed bool
	// damage changes s and returns the file and offset Open must name
	// (offset -1: any) and the first seq the damage loses: Repair keeps
	// every record below it.
	damage func(t testing.TB, s snapshot) (file string, off int64, keepBelow uint64)
}

// keepsLater names the damage cases that lose a whole segment (the file
// damage returns): Repair keeps every record of the segments after it.
var keepsLater = map[string]bool{"missing-middle-segment": true}

var (
	imagesOnce         sync.Once
	closedImg, killImg logImage
)

// damageImages builds, once, a closed log of several segments and the
// image of a killed log whose high-water mark is near its start.
func damageImages(t testing.TB) (closed, killed logImage) {
	imagesOnce.Do(func() {
		r := rand.New(rand.NewPCG(7, 7))
		closedImg = buildImage(t, false, func(l *Log, m *model) { appendSmall(t, l, m, r, 150) })
		killImg = buildImage(t, true, func(l *Log, m *model) {
			appendSmall(t, l, m, r, 5)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			appendSmall(t, l, m, r, 150)
		})
	})
	if len(closedImg.snap.segNames()) < 4 || len(killImg.snap.segNames()) < 4 {
		t.Fatalf("images too small: %v %v", closedImg.snap.segNames(), killImg.snap.segNames())
	}
	return closedImg, killImg
}

// firstSeqOf is the first seq recorded in a segment file's header.
func firstSeqOf(t testing.TB, b []byte) uint64 {
	h, err := segment.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.FirstSeq
}

func damageCases() []damageCase {
	return []damageCase{
		{"cut-at-record-boundary", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			cut := frs[len(frs)-2]
			clear(b[cut.Offset:frs[len(frs)-1].End()])
			return name, cut.Offset, cut.Seq
		}},
		{"deleted-last-segment", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			names := s.segNames()
			name := names[len(names)-1]
			first := firstSeqOf(t, s[name])
			delete(s, name)
			return name, -1, first
		}},
		{"truncated-last-segment", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			cut := frs[len(frs)/2]
			s[name] = b[:cut.Offset+10]
			return name, -1, cut.Seq
		}},
		{"truncated-middle-segment", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			frs := framesOf(t, s[name])
			cut := frs[len(frs)/2]
			s[name] = s[name][:cut.Offset+10]
			return name, -1, cut.Seq
		}},
		{"truncated-to-header", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[2]
			first := firstSeqOf(t, s[name])
			s[name] = s[name][:segment.HeaderSize]
			return name, -1, first
		}},
		{"missing-middle-segment", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			first := firstSeqOf(t, s[name])
			delete(s, name)
			return name, -1, first
		}},
		{"damage-below-high-water-mark", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			fr := frs[len(frs)-1]
			clear(b[fr.Offset : fr.Offset+8]) // what a torn append looks like
			return name, fr.Offset, fr.Seq
		}},
		{"damage-followed-by-valid-frames", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			if len(frs) < 4 {
				t.Fatalf("last segment has %d frames", len(frs))
			}
			fr := frs[len(frs)-3]
			b[fr.Offset+segment.FrameHeaderSize+1] ^= 0x10
			return name, fr.Offset, fr.Seq
		}},
		{"zeroed-frames-followed-by-valid-frames", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			frs := framesOf(t, b)
			fr := frs[1]
			clear(b[fr.Offset:frs[2].End()])
			return name, fr.Offset, fr.Seq
		}},
		{"damage-in-sealed-segment", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			frs := framesOf(t, s[name])
			fr := frs[len(frs)/2]
			s[name][fr.Offset+9] ^= 0x01 // the length
			return name, fr.Offset, fr.Seq
		}},
		{"last-frame-of-sealed-segment", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[0]
			frs := framesOf(t, s[name])
			fr := frs[len(frs)-1]
			clear(s[name][fr.Offset : fr.Offset+8])
			return name, fr.Offset, fr.Seq
		}},
		{"garbage-after-end-of-sealed-segment", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			end := dataEnd(t, s[name])
			s[name][len(s[name])-7] = 1
			names := s.segNames()
			return name, end, firstSeqOf(t, s[names[2]])
		}},
		{"segment-longer-than-its-size", false, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			s[name] = append(s[name], make([]byte, 4096)...)
			s[name][len(s[name])-1] = 7
			return name, -1, uint64(len(closedImg.m.data)) + 1 // nothing is lost
		}},
		{"zeroed-header-of-last-segment", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name, b := logImage{snap: s}.lastSeg()
			first := firstSeqOf(t, b)
			clear(b[:segment.HeaderSize]) // its name reached the disk, its header did not
			return name, 0, first
		}},
		{"damaged-segment-header", true, func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[2]
			first := firstSeqOf(t, s[name])
			s[name][20] ^= 0x04
			return name, 0, first
		}},
	}
}

// TestCorruption checks that damage other than a torn tail makes Open
// return a *CorruptionError naming the file and offset, and that the
// failed Open changed nothing on disk.
func TestCorruption(t *testing.T) {
	closed, _ := damageImages(t)
	for _, c := range damageCases() {
		t.Run(c.name, func(t *testing.T) {
			s := closed.snap.clone()
			file, off, _ := c.damage(t, s)
			dir := s.write(t, filepath.Join(t.TempDir(), "log"))
			l, err := Open(dir, WithSegmentSize(smallSeg))
			if err == nil {
				st := l.Stats()
				l.Close()
				t.Fatalf("Open succeeded (%+v), want a *CorruptionError", st)
			}
			ce := asCorruption(t, err, dir)
			if filepath.Base(ce.Path) != file {
				t.Errorf("CorruptionError names %s, want %s: %v", filepath.Base(ce.Path), file, err)
			}
			if off >= 0 && ce.Offset != off {
				t.Errorf("CorruptionError offset %d, want %d: %v", ce.Offset, off, err)
			}
			t.Logf("%v", err)
			if after := readDir(t, dir).data(); !after.equal(s.data()) {
				t.Errorf("a failed Open changed the directory: %v -> %v", s.names(), after.names())
			}
		})
	}
}

// TestCutAckFramesBelowHighWaterMark cuts a log at a frame boundary below
// its durable high-water mark where the frames cut are ack frames: no
// record is missing, but acknowledgements are, so Open must report it
// rather than bring acknowledged records back.
func TestCutAckFramesBelowHighWaterMark(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	im := buildImage(t, false, func(l *Log, m *model) {
		appendSmall(t, l, m, r, 10)
		for _, q := range []uint64{3, 7} {
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
			m.acked[q] = true
		}
	})
	s := im.snap.clone()
	name, b := logImage{snap: s}.lastSeg()
	frs := framesOf(t, b)
	for _, fr := range frs[len(frs)-2:] {
		if !fr.IsAck() {
			t.Fatal("the last frames are not ack frames")
		}
	}
	clear(b[frs[len(frs)-2].Offset:frs[len(frs)-1].End()])
	dir := s.write(t, filepath.Join(t.TempDir(), "log"))
	l, err := Open(dir, WithSegmentSize(smallSeg))
	if err == nil {
		recs := pendingOf(t, l)
		l.Close()
		t.Fatalf("Open of %s with its last two (ack) frames, below the high-water mark, zeroed succeeded; "+
			"Pending has %d records: the acknowledged seqs 3 and 7 are back", name, len(recs))
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v, want a *CorruptionError", err)
	}
}
