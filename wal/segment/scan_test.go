package segment

import (
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
