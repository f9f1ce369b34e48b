package segment

import "errors"

// Scanner reads the frames of a segment's bytes one after the other:
//
//	sc := segment.NewScanner(b, segment.HeaderSize)
//	for sc.Next() {
//		fr := sc.Frame()
//		...
//	}
//	if err := sc.Err(); err != nil { ... } // the frame at sc.Offset()
//
// It stops at the end of the bytes it was given, at a zero frame header
// (the end of the data: Err returns ErrEnd) or at a damaged frame (Err
// returns its *Error). Resume goes on the scan elsewhere, after damage at
// the next frame Resync finds, say. A Scanner allocates nothing for valid
// frames; like DecodeFrame it never panics.
type Scanner struct {
	b      []byte
	base   int64 // the segment offset of b[0]: 0, or a window's (NewVerifiedScannerAt)
	lim    int64 // the segment offset where b ends: base+len(b)
	window bool  // b is a window: a frame b holds only part of is ErrPartial
	off    int64 // the current frame's offset; after Next returned false, where the scan stopped
	next   int64 // where Next decodes
	fr     Frame // without its Payload, which pay and n give (payload)
	pay    int   // where fr's payload begins in b
	n      int   // fr's stored payload length
	err    error
	verify bool
}

// NewScanner returns a Scanner of the frames of seg (the segment's bytes
// from its start, possibly cut short at the end of its data) from offset
// from, verifying each frame's checksum.
func NewScanner(seg []byte, from int64) Scanner {
	return Scanner{b: seg, lim: int64(len(seg)), off: from, next: from, verify: true}
}

// NewVerifiedScanner is NewScanner for bytes whose frames were verified
// before: see DecodeFrameVerified.
func NewVerifiedScanner(seg []byte, from int64) Scanner {
	return Scanner{b: seg, lim: int64(len(seg)), off: from, next: from}
}

// NewVerifiedScannerAt is NewVerifiedScanner for a window of a segment:
// win holds the segment's bytes from offset base on, and every offset
// (from, the scan's, its frames', its errors') is the segment's. The scan
// stops without error where win ends between frames, and with ErrPartial
// at a frame win holds only part of (a header, or a length within
// MaxPayload, that runs past it), which a reader that reads a segment a
// window at a time reads again in a window that holds it whole.
func NewVerifiedScannerAt(win []byte, base, from int64) Scanner {
	return Scanner{b: win, base: base, lim: base + int64(len(win)), off: from, next: from, window: true}
}

// NewScannerAt is NewVerifiedScannerAt verifying each frame's checksum,
// as NewScanner does.
func NewScannerAt(win []byte, base, from int64) Scanner {
	sc := NewVerifiedScannerAt(win, base, from)
	sc.verify = true
	return sc
}

// Next decodes the next frame and reports whether there is one.
func (s *Scanner) Next() bool {
	if s.err == nil && s.next < s.lim {
		return s.step() // one call a frame: Next itself is inlined
	}
	s.off = s.next // after an error, still the damaged frame's offset
	return false
}

// Verify checks the checksum of the frame Next decoded (which a scanner of
// verified bytes, NewVerifiedScanner or NewVerifiedScannerAt, does not):
// for a reader that rereads frames verified earlier and must not hand out
// bytes that changed since. A mismatch is an *Error at the frame, which
// also stops the scan.
func (s *Scanner) Verify() error {
	if s.err != nil {
		return s.err
	}
	if !checksumOK(s.b[s.off-s.base:], FrameHeaderSize+s.n) {
		s.err = errAt(s.off, "frame checksum mismatch")
		s.next = s.off
	}
	return s.err
}

// Frame returns the frame Next decoded.
func (s *Scanner) Frame() Frame {
	fr := s.fr
	fr.Payload = s.payload()
	return fr
}

// Current returns the frame Next decoded in place, valid until the next
// call to Next: a loop over many small frames spares itself a copy of
// each (which, right after Next stored its fields one by one, stalls on
// store forwarding).
//
// Next leaves the Payload to Current, which is inlined: storing a pointer
// costs a write barrier while the garbage collector marks, unless the
// compiler sees that the Scanner is on the stack, as it does in a loop
// over a Scanner of its own.
func (s *Scanner) Current() *Frame {
	s.fr.Payload = s.payload()
	return &s.fr
}

// payload returns the payload of the frame Next decoded.
func (s *Scanner) payload() []byte { return s.b[s.pay : s.pay+s.n : s.pay+s.n] }

// Offset returns the offset of the frame Next decoded; after Next
// returned false, the offset where the scan stopped.
func (s *Scanner) Offset() int64 { return s.off }

// Err returns what stopped the scan before the end of the bytes: ErrEnd
// at a zero frame header, a damaged frame's *Error; nil if every frame up
// to the end of the bytes decoded.
func (s *Scanner) Err() error { return s.err }

// AtEnd reports whether the scan stopped at the end of the data: the end
// of the bytes or a zero frame header.
func (s *Scanner) AtEnd() bool { return s.err == nil || errors.Is(s.err, ErrEnd) }

// Resume makes the next call to Next decode the frame at off, clearing the
// error that stopped the scan.
func (s *Scanner) Resume(off int64) { s.next, s.err = off, nil }

// IsAck reports whether f is an ack frame: its payload lists acknowledged
// seqs, not a record.
func (f *Frame) IsAck() bool { return f.Flags&FlagAck != 0 }

// InBatch reports whether f belongs to a batch of AppendBatch.
func (f *Frame) InBatch() bool { return f.Flags&FlagBatch != 0 }

// Commits reports whether f is the last frame of its batch.
func (f *Frame) Commits() bool { return f.Flags&FlagCommit != 0 }

// Compressed reports whether f's payload is one zstd frame.
func (f *Frame) Compressed() bool { return f.Flags&FlagZstd != 0 }

// Encrypted reports whether f's payload is sealed (see Sealer).
func (f *Frame) Encrypted() bool { return f.Flags&FlagEncrypted != 0 }
