package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// reseal recomputes a header's checksum after a test changed a field.
func reseal(b []byte) { binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56])) }

func randHeader(r *rand.Rand) Header {
	h := Header{Version: uint16(1 + r.IntN(Version)), ID: 1 + r.Uint64N(1<<40), FirstSeq: 1 + r.Uint64N(1<<50), Size: HeaderSize + 8*r.Int64N(1<<20), Generation: r.Uint64N(5)}
	if r.IntN(2) == 0 {
		h.Flags = SegCompacted
		if r.IntN(2) == 0 {
			h.MergedThrough = h.ID + 1 + r.Uint64N(100)
		}
	}
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		h := randHeader(r)
		b := make([]byte, HeaderSize+10)
		PutHeader(b, h)
		got, err := DecodeHeader(b)
		if err != nil {
			t.Fatalf("DecodeHeader(%+v): %v", h, err)
		}
		if got != h {
			t.Fatalf("round trip: %+v -> %+v", h, got)
		}
		if got.Compacted() != (h.Flags&SegCompacted != 0) {
			t.Fatal("Compacted")
		}
	}
}

func TestHeaderRejects(t *testing.T) {
	good := make([]byte, HeaderSize)
	PutHeader(good, Header{ID: 3, FirstSeq: 100, Size: 1 << 16})
	cases := []struct {
		name string
		b    func() []byte
	}{
		{"short", func() []byte { return good[:HeaderSize-1] }},
		{"empty", func() []byte { return nil }},
		{"zeros", func() []byte { return make([]byte, HeaderSize) }},
		{"magic", func() []byte { b := bytes.Clone(good); b[0] = 'X'; reseal(b); return b }},
		{"checksum", func() []byte { b := bytes.Clone(good); b[57] ^= 1; return b }},
		{"version-0", func() []byte { b := bytes.Clone(good); b[8] = 0; reseal(b); return b }},
		{"version-next", func() []byte { b := bytes.Clone(good); b[8] = Version + 1; reseal(b); return b }},
		{"flags", func() []byte { b := bytes.Clone(good); b[10] = 2; reseal(b); return b }},
		{"reserved", func() []byte { b := bytes.Clone(good); b[13] = 1; reseal(b); return b }},
		{"id-zero", func() []byte { b := bytes.Clone(good); clear(b[16:24]); reseal(b); return b }},
		{"first-seq-zero", func() []byte { b := bytes.Clone(good); clear(b[24:32]); reseal(b); return b }},
		{"size-small", func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint64(b[32:], 8); reseal(b); return b }},
		{"size-huge", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint64(b[32:], MaxSize+8)
			reseal(b)
			return b
		}},
		{"size-unaligned", func() []byte { b := bytes.Clone(good); b[32] = 65; reseal(b); return b }},
		{"merged-not-compacted", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint64(b[48:], 9)
			reseal(b)
			return b
		}},
		{"merged-below-id", func() []byte {
			b := bytes.Clone(good)
			b[10] = byte(SegCompacted)
			binary.LittleEndian.PutUint64(b[48:], 2)
			reseal(b)
			return b
		}},
	}
	for _, c := range cases {
		_, err := DecodeHeader(c.b())
		var se *Error
		if !errors.As(err, &se) || se.Offset != 0 || se.Reason == "" {
			t.Errorf("%s: %v, want an *Error at offset 0", c.name, err)
		}
	}
	// Every single-bit flip of the checksummed bytes is caught.
	for i := range 56 * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, err := DecodeHeader(b); err == nil {
			t.Fatalf("flip of bit %d of byte %d accepted", i%8, i/8)
		}
	}
}

// frameBuf encodes a frame at HeaderSize in a zeroed segment buffer with
// extra room after it.
func frameBuf(seq uint64, flags uint32, raw int, payload []byte, extra int) []byte {
	b := make([]byte, HeaderSize+FrameSize(len(payload))+extra)
	PutFrame(b[HeaderSize:], seq, flags, raw, payload)
	return b
}

// rawFrame writes frame header fields as given (valid or not) and a correct
// checksum, so that a test reaches the checks after the checksum.
func rawFrame(stored uint32, flags uint32, seq uint64, raw, reserved uint32, payload []byte) []byte {
	b := make([]byte, HeaderSize+FrameSize(len(payload))+64)
	f := b[HeaderSize:]
	binary.LittleEndian.PutUint32(f[8:], stored)
	binary.LittleEndian.PutUint32(f[12:], flags)
	binary.LittleEndian.PutUint64(f[16:], seq)
	binary.LittleEndian.PutUint32(f[24:], raw)
	binary.LittleEndian.PutUint32(f[28:], reserved)
	copy(f[32:], payload)
	binary.LittleEndian.PutUint64(f[0:], xxhash.Sum64(f[8:32+len(payload)]))
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	flagSets := []uint32{0, FlagZstd, FlagBatch, FlagBatch | FlagCommit, FlagBatch | FlagZstd, FlagBatch | FlagCommit | FlagZstd, FlagAck}
	for range 2000 {
		n := r.IntN(300)
		if r.IntN(10) == 0 {
			n = r.IntN(70000)
		}
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		flags := flagSets[r.IntN(len(flagSets))]
		if r.IntN(2) == 0 {
			flags |= FlagSumPayload
		}
		seq := 1 + r.Uint64N(1<<60)
		raw := n
		if flags&FlagZstd != 0 {
			raw = r.IntN(1 << 20)
		}
		// Garbage around the frame must not leak into it or be touched.
		b := make([]byte, HeaderSize+FrameSize(n)+16)
		for i := range b {
			b[i] = 0xA5
		}
		if w := PutFrame(b[HeaderSize:], seq, flags, raw, payload); w != FrameSize(n) || w%Align != 0 || w < FrameHeaderSize+n {
			t.Fatalf("PutFrame wrote %d bytes for %d payload bytes", w, n)
		}
		if !bytes.Equal(b[HeaderSize+FrameSize(n):], bytes.Repeat([]byte{0xA5}, 16)) {
			t.Fatal("PutFrame wrote past the frame")
		}
		fr, err := DecodeFrame(b, HeaderSize)
		if err != nil {
			t.Fatalf("DecodeFrame: %v", err)
		}
		if fr.Seq != seq || fr.Flags != flags || int(fr.RawLen) != raw || !bytes.Equal(fr.Payload, payload) ||
			fr.Offset != HeaderSize || fr.Size() != FrameSize(n) || fr.End() != HeaderSize+int64(FrameSize(n)) {
			t.Fatalf("round trip: got %+v", fr)
		}
		if cap(fr.Payload) != len(fr.Payload) {
			t.Fatal("Payload's capacity reaches past the frame")
		}
	}
}

func TestFrameRejects(t *testing.T) {
	good := frameBuf(7, 0, 5, []byte("hello"), 64)
	p := []byte("payload!")
	cases := []struct {
		name string
		b    []byte
		off  int64
	}{
		{"offset-in-header", good, 8},
		{"offset-unaligned", good, HeaderSize + 4},
		{"offset-past-end", good, int64(len(good)) + 8},
		{"truncated-header", append(make([]byte, HeaderSize), 1, 2, 3), HeaderSize},
		{"length-past-segment", rawFrame(1000, 0, 1, 1000, 0, p), HeaderSize},
		{"length-huge", rawFrame(MaxPayload+1, 0, 1, 0, 0, nil), HeaderSize},
		{"checksum", func() []byte { b := bytes.Clone(good); b[HeaderSize+33] ^= 1; return b }(), HeaderSize},
		{"unknown-flags", rawFrame(8, 1<<7, 1, 8, 0, p), HeaderSize},
		{"reserved", rawFrame(8, 0, 1, 8, 1, p), HeaderSize},
		{"commit-without-batch", rawFrame(8, FlagCommit, 1, 8, 0, p), HeaderSize},
		{"ack-with-batch", rawFrame(8, FlagAck|FlagBatch, 1, 8, 0, p), HeaderSize},
		{"ack-with-zstd", rawFrame(8, FlagAck|FlagZstd, 1, 8, 0, p), HeaderSize},
		{"raw-huge", rawFrame(8, FlagZstd, 1, MaxPayload+1, 0, p), HeaderSize},
		{"raw-differs", rawFrame(8, 0, 1, 9, 0, p), HeaderSize},
		{"seq-zero", rawFrame(8, 0, 0, 8, 0, p), HeaderSize},
		{"padding", func() []byte {
			b := frameBuf(7, 0, 5, []byte("hello"), 64)
			b[HeaderSize+FrameHeaderSize+6] = 1
			return b
		}(), HeaderSize},
	}
	for _, c := range cases {
		_, err := DecodeFrame(c.b, c.off)
		var se *Error
		if !errors.As(err, &se) || errors.Is(err, ErrEnd) || se.Offset != c.off {
			t.Errorf("%s: %v, want an *Error at offset %d", c.name, err, c.off)
		}
	}
	// An ack frame may have seq 0; the end of the data is ErrEnd.
	if _, err := DecodeFrame(rawFrame(8, FlagAck, 0, 8, 0, p), HeaderSize); err != nil {
		t.Errorf("ack frame with seq 0: %v", err)
	}
	for _, b := range [][]byte{make([]byte, HeaderSize+100), make([]byte, HeaderSize+8), make([]byte, HeaderSize)} {
		if _, err := DecodeFrame(b, HeaderSize); !errors.Is(err, ErrEnd) {
			t.Errorf("zeros (%d bytes): %v, want ErrEnd", len(b), err)
		}
	}
	// Every single-bit flip of a frame's header and payload is caught,
	// under either checksum (the flag that names it included).
	for _, g := range [][]byte{good, frameBuf(7, FlagSumPayload, 5, []byte("hello"), 64)} {
		for i := HeaderSize; i < HeaderSize+FrameHeaderSize+5; i++ {
			for bit := range 8 {
				b := bytes.Clone(g)
				b[i] ^= 1 << bit
				if _, err := DecodeFrame(b, HeaderSize); err == nil {
					t.Fatalf("flags %#x: flip of bit %d of byte %d accepted", HeaderFlags(g[HeaderSize:]), bit, i)
				}
			}
		}
	}
}

// TestChecksumSchemes: a frame without FlagSumPayload carries the xxhash64
// of its header fields and payload (format version 1), one with it the
// payload's xxhash64 folded with the header's words; each scheme's frame
// fails the other's check, and a change in any one header word, whatever
// its value, changes the folded checksum.
func TestChecksumSchemes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 500 {
		p := make([]byte, r.IntN(200))
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		seq, n := 1+r.Uint64N(1<<40), len(p)
		v1 := frameBuf(seq, FlagBatch, n, p, 0)[HeaderSize:]
		v2 := frameBuf(seq, FlagBatch|FlagSumPayload, n, p, 0)[HeaderSize:]
		end := FrameHeaderSize + n
		if got, want := binary.LittleEndian.Uint64(v1), xxhash.Sum64(v1[8:end]); got != want || Checksum(v1, end) != want {
			t.Fatalf("version 1 frame: checksum %x, Checksum %x, want the xxhash64 of bytes 8..%d, %x", got, Checksum(v1, end), end, want)
		}
		le := binary.LittleEndian
		w := [3]uint64{uint64(n) | uint64(FlagBatch|FlagSumPayload)<<32, seq, uint64(n)}
		fold := func(w [3]uint64) uint64 {
			h := make([]byte, FrameHeaderSize)
			le.PutUint64(h[8:], w[0])
			le.PutUint64(h[16:], w[1])
			le.PutUint64(h[24:], w[2])
			return foldHeader(xxhash.Sum64(p), h)
		}
		sum := fold(w)
		if got := le.Uint64(v2); got != sum || Checksum(v2, end) != sum {
			t.Fatalf("version 2 frame: checksum %x, Checksum %x, want %x", got, Checksum(v2, end), sum)
		}
		// The same header and payload under the other scheme fail.
		x := bytes.Clone(v1)
		le.PutUint32(x[12:], le.Uint32(x[12:])|FlagSumPayload)
		if checksumOK(x, end) {
			t.Fatal("a version 1 checksum passed as a folded one")
		}
		x = bytes.Clone(v2)
		le.PutUint32(x[12:], le.Uint32(x[12:])&^FlagSumPayload)
		if checksumOK(x, end) {
			t.Fatal("a folded checksum passed as a version 1 one")
		}
		// Any change to any one word changes the fold.
		for i := range w {
			c := w
			for c[i] == w[i] {
				c[i] = r.Uint64()
			}
			if fold(c) == sum {
				t.Fatalf("word %d changed from %x to %x: the same checksum", i, w[i], c[i])
			}
		}
	}
}

// TestDecodeFrameNeverPanics decodes random bytes at every offset.
func TestDecodeFrameNeverPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 200 {
		b := make([]byte, r.IntN(400))
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = byte(r.Uint32())
			}
		}
		for off := int64(-16); off < int64(len(b))+16; off++ {
			DecodeFrame(b, off)
		}
		nextValid(b, int64(r.IntN(len(b)+1)))
		LastNonZero(b, int64(r.IntN(len(b)+1)))
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(frameBuf(1, 0, 3, []byte("abc"), 0), int64(HeaderSize))
	f.Add(frameBuf(1, FlagSumPayload|FlagBatch|FlagCommit, 3, []byte("abc"), 0), int64(HeaderSize))
	f.Add(make([]byte, 200), int64(HeaderSize))
	f.Add(rawFrame(8, FlagAck, 0, 8, 0, []byte("12345678")), int64(HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte, off int64) {
		fr, err := DecodeFrame(b, off)
		if err == nil {
			// A decoded frame re-encodes to the same bytes.
			c := make([]byte, fr.Size())
			PutFrame(c, fr.Seq, fr.Flags, int(fr.RawLen), fr.Payload)
			if !bytes.Equal(c, b[off:fr.End()]) {
				t.Fatalf("frame at %d does not re-encode to its bytes", off)
			}
		}
	})
}

// nextValid is the first frame a fresh Resync finds from off.
func nextValid(seg []byte, off int64) int64 {
	next, _ := NewResync(seg).Next(off)
	return next
}

func TestNextValid(t *testing.T) {
	seg := make([]byte, 4096)
	var offs []int64
	off := int64(HeaderSize)
	for i := range 5 {
		offs = append(offs, off)
		off += int64(PutFrame(seg[off:], uint64(i+1), 0, 10*i, bytes.Repeat([]byte{'x'}, 10*i)))
	}
	for i, o := range offs {
		if got := nextValid(seg, o); got != o {
			t.Errorf("NextValid at frame %d (%d) = %d", i, o, got)
		}
		if i+1 < len(offs) {
			if got := nextValid(seg, o+1); got != offs[i+1] {
				t.Errorf("NextValid just after frame %d start = %d, want %d", i, got, offs[i+1])
			}
		}
	}
	if got := nextValid(seg, 0); got != HeaderSize {
		t.Errorf("NextValid(0) = %d, want %d", got, HeaderSize)
	}
	if got := nextValid(seg, offs[4]+1); got != -1 {
		t.Errorf("NextValid past the last frame = %d, want -1", got)
	}
	// Garbage is skipped: a valid frame after it is found.
	g := bytes.Clone(seg)
	for i := offs[1]; i < offs[3]; i++ {
		g[i] = byte(i * 7)
	}
	if got := nextValid(g, offs[1]); got != offs[3] {
		t.Errorf("NextValid over garbage = %d, want %d", got, offs[3])
	}
	if got := nextValid(seg[:offs[4]+8], offs[4]); got != -1 {
		t.Errorf("NextValid of a truncated frame = %d, want -1", got)
	}
}

// TestResyncWork: the bytes the search for a valid frame hashes stay
// within a few times the segment's size whatever it holds. Random bytes
// (every offset a candidate, a quarter of them claiming a length that
// fits) cost next to nothing; headers crafted to pass every check but the
// checksum, each claiming a long frame, stop the search (sure false) once
// the bound is reached, and a valid frame after them is not claimed.
func TestResyncWork(t *testing.T) {
	const size = 16 << 20
	bound := int64(4*size + 1<<20)
	r := rand.New(rand.NewPCG(7, 7))
	random := make([]byte, size)
	for i := HeaderSize; i < size; i += 8 {
		binary.LittleEndian.PutUint64(random[i:], r.Uint64())
	}
	valid := int64(size - 4096)
	PutFrame(random[valid:], 9, 0, 3, []byte("end"))
	rs := NewResync(random)
	if next, sure := rs.Next(HeaderSize); next != valid || !sure {
		t.Errorf("Next over random bytes = %d, %v; want %d, true", next, sure, valid)
	}
	if rs.Hashed > 1<<20 {
		t.Errorf("hashed %d bytes to cross %d random bytes", rs.Hashed, size)
	}

	crafted := make([]byte, size)
	for i := HeaderSize; i+FrameHeaderSize <= size; i += FrameHeaderSize {
		h := crafted[i:]
		binary.LittleEndian.PutUint64(h[0:], r.Uint64())
		binary.LittleEndian.PutUint32(h[8:], 8<<20)
		binary.LittleEndian.PutUint64(h[16:], 1)
		binary.LittleEndian.PutUint32(h[24:], 8<<20)
	}
	PutFrame(crafted[valid:], 9, 0, 3, []byte("end"))
	rs = NewResync(crafted)
	next, sure := rs.Next(HeaderSize)
	if sure || next < HeaderSize || next >= valid {
		t.Errorf("Next over crafted headers = %d, %v; want an offset before %d, false", next, sure, valid)
	}
	if rs.Hashed > bound || rs.Hashed < 2*size {
		t.Errorf("hashed %d bytes over crafted headers, want between %d and the bound %d", rs.Hashed, 2*size, bound)
	}
}

func TestLastNonZero(t *testing.T) {
	for _, n := range []int{0, 1, 7, 4095, 4096, 4097, 10000} {
		b := make([]byte, n)
		for _, off := range []int64{0, int64(n) / 2, int64(n)} {
			if got := LastNonZero(b, off); got != off {
				t.Errorf("zeros(%d) from %d: %d", n, off, got)
			}
		}
		for _, at := range []int{0, n / 3, n - 1, 4095, 4096} {
			if at >= n || at < 0 {
				continue
			}
			c := bytes.Clone(b)
			c[at] = 9
			for _, off := range []int64{0, int64(at), int64(at) + 1} {
				want := int64(at + 1)
				if off > int64(at) {
					want = off
				}
				if got := LastNonZero(c, off); got != want {
					t.Errorf("%d bytes, non-zero at %d, from %d: %d, want %d", n, at, off, got, want)
				}
			}
		}
	}
	if !AllZero(make([]byte, 13)) || AllZero([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}) || !AllZero(nil) {
		t.Error("AllZero")
	}
}

// TestErrEndIsASentinel: the end of the data is segment.ErrEnd, matched
// with errors.Is (also wrapped), and is not a damaged frame (*Error).
func TestErrEndIsASentinel(t *testing.T) {
	_, err := DecodeFrame(make([]byte, HeaderSize+2*FrameHeaderSize), HeaderSize)
	if !errors.Is(err, ErrEnd) || !errors.Is(fmt.Errorf("wrapped: %w", err), ErrEnd) {
		t.Fatalf("DecodeFrame over zeros: %v, want ErrEnd", err)
	}
	var se *Error
	if errors.As(err, &se) {
		t.Fatalf("ErrEnd is a *segment.Error (%v): the end of the data would read as damage", se)
	}
}

// TestNames: Name and ParseName agree, and ParseName takes only the names
// Name gives (a stray "x.seg" in a log directory is not a segment).
func TestNames(t *testing.T) {
	for _, id := range []uint64{1, 42, 1<<64 - 1} {
		if got, ok := ParseName(Name(id)); !ok || got != id {
			t.Errorf("ParseName(Name(%d)) = %d, %v", id, got, ok)
		}
	}
	if Name(7) != "00000000000000000007.seg" {
		t.Errorf("Name(7) = %q", Name(7))
	}
	for _, bad := range []string{"x.seg", "7.seg", "00000000000000000000.seg", "00000000000000000007.seg.tmp",
		"+0000000000000000007.seg", "00000000000000000007", "next-7.seg.tmp"} {
		if id, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) = %d, true", bad, id)
		}
	}
}

func TestPageAlign(t *testing.T) {
	for _, c := range [][2]int64{{0, 0}, {1, PageSize}, {PageSize, PageSize}, {PageSize + 1, 2 * PageSize}, {MinSize - 1, MinSize}} {
		if got := PageAlign(c[0]); got != c[1] {
			t.Errorf("PageAlign(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

// TestPaddingEveryByte: a non-zero byte anywhere in a frame's padding is
// damage, whatever the padding's length; the payload's last byte is not
// mistaken for padding.
func TestPaddingEveryByte(t *testing.T) {
	for n := 1; n <= 2*Align; n++ {
		p := bytes.Repeat([]byte{0xff}, n)
		b := frameBuf(1, 0, n, p, HeaderSize)
		if _, err := DecodeFrame(b, HeaderSize); err != nil {
			t.Fatalf("payload of %d bytes of 0xff: %v", n, err)
		}
		for i := HeaderSize + FrameHeaderSize + n; i < HeaderSize+FrameSize(n); i++ {
			for _, v := range []byte{1, 0x80} {
				d := bytes.Clone(b)
				d[i] = v
				var se *Error
				if _, err := DecodeFrame(d, HeaderSize); !errors.As(err, &se) || se.Reason != "non-zero frame padding" {
					t.Errorf("payload of %d bytes, padding byte %d set to %#x: %v, want non-zero padding", n, i-HeaderSize-FrameHeaderSize-n, v, err)
				}
			}
		}
	}
}

// TestAllZero: a non-zero byte anywhere is found, whatever the length.
func TestAllZero(t *testing.T) {
	for n := range 100 {
		b := make([]byte, n)
		if !AllZero(b) {
			t.Fatalf("%d zeros: not all zero", n)
		}
		for i := range n {
			b[i] = 1 << (i % 8)
			if AllZero(b) {
				t.Fatalf("%d bytes, byte %d set: all zero", n, i)
			}
			b[i] = 0
		}
	}
}

// TestPutFrameHeader: a header from PutFrameHeader, the payload and
// FramePadding zeros are the bytes PutFrame writes, for every padding.
func TestPutFrameHeader(t *testing.T) {
	for _, sum := range []uint32{0, FlagSumPayload} {
		for n := range 3 * Align {
			p := bytes.Repeat([]byte{byte(n + 1)}, n)
			want := make([]byte, FrameSize(n))
			PutFrame(want, 9, FlagBatch|FlagCommit|sum, n, p)
			var h [FrameHeaderSize]byte
			PutFrameHeader(h[:], 9, FlagBatch|FlagCommit|sum, n, p)
			got := append(append(h[:], p...), make([]byte, FramePadding(n))...)
			if !bytes.Equal(got, want) {
				t.Fatalf("flags %#x, payload of %d bytes: header, payload and padding\n%x\nwant\n%x", sum, n, got, want)
			}
		}
	}
}

// TestResyncFindsFrameWithZeroFirstWords: the end of the data is a frame
// header of 32 zero bytes, not 16. A frame's first 16 bytes (checksum,
// stored length, flags) are all zero for one frame only: an empty plain
// record of the version 1 checksum scheme (no flag) at the one seq whose
// checksum is 0 (xxhash64 of the header's 24 bytes after the checksum, a
// bijection of the seq). The Scanner reads it; the search for a frame
// after damage skipped it, and with it the record.
func TestResyncFindsFrameWithZeroFirstWords(t *testing.T) {
	const seq = 5027305878554004365 // found by inverting xxhash64; checked below
	seg := make([]byte, HeaderSize+4*FrameHeaderSize)
	at := int64(HeaderSize + FrameHeaderSize)
	if n := PutFrame(seg[at:], seq, 0, 0, nil); n != FrameHeaderSize {
		t.Fatalf("frame of %d bytes", n)
	}
	if !AllZero(seg[at : at+16]) {
		t.Fatalf("the frame's first 16 bytes are not zero: %x", seg[at:at+16])
	}
	sc := NewScanner(seg, at)
	if !sc.Next() || sc.Frame().Seq != seq {
		t.Fatalf("the Scanner does not read the frame: %v", sc.Err())
	}
	seg[HeaderSize] = 1 // damage before it
	if next, sure := NewResync(seg).Next(HeaderSize); next != at || !sure {
		t.Fatalf("Resync.Next = %d, %v; want the frame at %d", next, sure, at)
	}
}

// TestResyncAtZeroTail: a window whose trailing zeros were left out finds
// the frame it ends in, by either checksum scheme, wherever the zeros
// begin (in the payload, the padding, even the header), and only where
// nothing but zeros was left out.
func TestResyncAtZeroTail(t *testing.T) {
	const base = 4096
	payload := append([]byte("ends in zeros"), make([]byte, 45)...)
	for _, flags := range []uint32{0, FlagSumPayload} {
		// 8 bytes of damage, then the frame.
		full := append(bytes.Repeat([]byte{0xee}, Align), frameBuf(9, flags, len(payload), payload, 0)[HeaderSize:]...)
		found := 0
		for k := Align + 1; k <= len(full); k++ {
			next, sure := NewResyncAt(full[:k], base).Next(base)
			zerosCut := AllZero(full[k:])
			switch {
			case !sure:
				t.Fatalf("flags %#x, window of %d bytes: the search stopped unsure", flags, k)
			case zerosCut && next != base+Align:
				t.Fatalf("flags %#x, window of %d bytes (only zeros left out): Next = %d, want %d", flags, k, next, base+Align)
			case !zerosCut && next != -1:
				t.Fatalf("flags %#x, window of %d bytes (non-zero bytes left out): Next = %d, want none", flags, k, next)
			}
			if zerosCut {
				found++
			}
		}
		if found < len(payload)-13 {
			t.Fatalf("flags %#x: only %d windows ended in the frame's zeros", flags, found)
		}
		// A whole segment's Resync does not read past its end.
		if next, _ := NewResync(full[:len(full)-8]).Next(Align + HeaderSize); next != -1 {
			t.Fatalf("flags %#x: NewResync found a frame running past the segment's end at %d", flags, next)
		}
	}
}
