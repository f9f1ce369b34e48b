package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// scanAll runs sc to its stop and returns the seqs and offsets it read.
func scanAll(sc *Scanner) (seqs []uint64, offs []int64) {
	for sc.Next() {
		if sc.Frame().Offset != sc.Offset() {
			panic("Frame().Offset != Offset()")
		}
		seqs = append(seqs, sc.Frame().Seq)
		offs = append(offs, sc.Offset())
	}
	return seqs, offs
}

// TestScanner: the frames in order, then the stop: the end of the bytes
// (Err nil), a zero header (ErrEnd) or a damaged frame (*Error at its
// offset); Resume goes on from another frame.
func TestScanner(t *testing.T) {
	seg := make([]byte, 4096)
	var offs []int64
	off := int64(HeaderSize)
	for q := uint64(1); q <= 5; q++ {
		offs = append(offs, off)
		off += int64(PutFrame(seg[off:], q, FlagBatch|FlagCommit*uint32(q%2), 10*int(q), make([]byte, 10*q)))
	}
	end := off

	sc := NewScanner(seg, HeaderSize)
	seqs, got := scanAll(&sc)
	if !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5}) || !slices.Equal(got, offs) {
		t.Fatalf("read seqs %v at %v, want 1..5 at %v", seqs, got, offs)
	}
	if !errors.Is(sc.Err(), ErrEnd) || !sc.AtEnd() || sc.Offset() != end {
		t.Fatalf("stopped at %d with %v (AtEnd %v), want ErrEnd at %d", sc.Offset(), sc.Err(), sc.AtEnd(), end)
	}

	// Bytes cut at the end of the data: a clean end, no error.
	sc = NewScanner(seg[:end], HeaderSize)
	if seqs, _ := scanAll(&sc); len(seqs) != 5 || sc.Err() != nil || !sc.AtEnd() || sc.Offset() != end {
		t.Fatalf("cut at the data's end: %v, stopped at %d with %v", seqs, sc.Offset(), sc.Err())
	}

	// From the third frame.
	sc = NewVerifiedScanner(seg[:end], offs[2])
	if seqs, _ := scanAll(&sc); !slices.Equal(seqs, []uint64{3, 4, 5}) {
		t.Fatalf("from %d: %v", offs[2], seqs)
	}

	// Damage in the third frame's payload: the scan stops there, with the
	// frame's *Error; Resume goes on from the fourth.
	seg[offs[2]+FrameHeaderSize] ^= 1
	sc = NewScanner(seg, HeaderSize)
	seqs, _ = scanAll(&sc)
	var se *Error
	if !slices.Equal(seqs, []uint64{1, 2}) || !errors.As(sc.Err(), &se) || se.Offset != offs[2] || sc.Offset() != offs[2] || sc.AtEnd() {
		t.Fatalf("damaged: read %v, stopped at %d with %v (AtEnd %v), want the damage at %d", seqs, sc.Offset(), sc.Err(), sc.AtEnd(), offs[2])
	}
	if sc.Next() {
		t.Fatal("Next after damage went on")
	}
	sc.Resume(offs[3])
	if seqs, _ = scanAll(&sc); !slices.Equal(seqs, []uint64{4, 5}) || !errors.Is(sc.Err(), ErrEnd) {
		t.Fatalf("resumed: %v, %v", seqs, sc.Err())
	}
	// Checksums are not verified by a verified scanner.
	sc = NewVerifiedScanner(seg, HeaderSize)
	if seqs, _ = scanAll(&sc); len(seqs) != 5 {
		t.Fatalf("verified scanner read %v", seqs)
	}
	// Unless asked, frame by frame: Verify finds the damaged frame, whose
	// *Error also stops the scan there; the frames before it pass, in a
	// window too.
	for _, sc := range []Scanner{NewVerifiedScanner(seg, HeaderSize), NewVerifiedScannerAt(seg[offs[1]:end], offs[1], offs[1])} {
		var good []uint64
		var err error
		for sc.Next() {
			if err = sc.Verify(); err != nil {
				break
			}
			good = append(good, sc.Frame().Seq)
		}
		if len(good) == 0 || good[len(good)-1] != 2 || !errors.As(err, &se) || se.Offset != offs[2] || sc.Err() != err || sc.Next() || sc.Offset() != offs[2] {
			t.Fatalf("Verify: passed %v, then %v (scan stopped at %d with %v), want the damage at %d", good, err, sc.Offset(), sc.Err(), offs[2])
		}
	}
}

func TestFrameKinds(t *testing.T) {
	for _, c := range []struct {
		flags                        uint32
		ack, batch, commit, compress bool
	}{
		{0, false, false, false, false},
		{FlagAck, true, false, false, false},
		{FlagBatch, false, true, false, false},
		{FlagBatch | FlagCommit, false, true, true, false},
		{FlagZstd, false, false, false, true},
	} {
		f := Frame{Flags: c.flags}
		if f.IsAck() != c.ack || f.InBatch() != c.batch || f.Commits() != c.commit || f.Compressed() != c.compress {
			t.Errorf("flags %#x: ack %v batch %v commit %v compressed %v", c.flags, f.IsAck(), f.InBatch(), f.Commits(), f.Compressed())
		}
	}
}

// TestScannerAtWindow: a scanner over a window of a segment reports the
// segment's offsets, stops without error where the window ends between
// frames, and with ErrPartial at a frame the window holds only part of;
// damage is still an *Error.
func TestScannerAtWindow(t *testing.T) {
	seg := make([]byte, HeaderSize, 1<<16)
	var offs []int64
	for i := range 40 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i*13)
		offs = append(offs, int64(len(seg)))
		f := make([]byte, FrameSize(len(p)))
		PutFrame(f, uint64(i+1), 0, len(p), p)
		seg = append(seg, f...)
	}
	end := int64(len(seg))
	for wi := range offs {
		base := offs[wi]
		for cut := base + FrameHeaderSize/2; cut <= end; cut += 40 {
			sc := NewVerifiedScannerAt(seg[base:cut], base, base)
			k := wi
			for sc.Next() {
				fr := sc.Frame()
				if fr.Offset != offs[k] || fr.Seq != uint64(k+1) {
					t.Fatalf("window [%d, %d): frame %d at %d seq %d, want at %d seq %d", base, cut, k, fr.Offset, fr.Seq, offs[k], k+1)
				}
				k++
			}
			atBoundary := cut == end || k < len(offs) && offs[k] == cut
			switch {
			case atBoundary && sc.Err() != nil:
				t.Fatalf("window [%d, %d) ends between frames: %v", base, cut, sc.Err())
			case !atBoundary && (!errors.Is(sc.Err(), ErrPartial) || sc.Offset() != offs[k]):
				t.Fatalf("window [%d, %d) cuts frame %d at %d: %v at %d", base, cut, k, offs[k], sc.Err(), sc.Offset())
			case atBoundary && sc.Offset() != cut:
				t.Fatalf("window [%d, %d): stopped at %d", base, cut, sc.Offset())
			}
		}
	}
	// Damage inside a window is an *Error, not ErrPartial: a length past
	// MaxPayload, a checksum-free field out of range.
	bad := bytes.Clone(seg)
	bad[offs[3]+12] = 0x80 // unknown flag
	sc := NewVerifiedScannerAt(bad[offs[2]:], offs[2], offs[2])
	for sc.Next() {
	}
	var se *Error
	if !errors.As(sc.Err(), &se) || se.Offset != offs[3] {
		t.Fatalf("a damaged frame in a window: %v, want an *Error at %d", sc.Err(), offs[3])
	}
	bad = bytes.Clone(seg)
	binary.LittleEndian.PutUint32(bad[offs[3]+8:], MaxPayload+1)
	sc = NewVerifiedScannerAt(bad[offs[2]:offs[4]], offs[2], offs[2])
	for sc.Next() {
	}
	if !errors.As(sc.Err(), &se) || se.Offset != offs[3] {
		t.Fatalf("a frame claiming more than MaxPayload in a window: %v, want an *Error at %d", sc.Err(), offs[3])
	}
}
