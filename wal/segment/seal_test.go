package segment

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"
)

func testSealer(t testing.TB, b byte) *Sealer {
	t.Helper()
	s, err := NewSealer(bytes.Repeat([]byte{b}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealRoundTrip seals payloads of several sizes into frames that
// DecodeFrame accepts, opens them back, and checks that every frame got a
// different nonce and that the plaintext is nowhere in the frame.
func TestSealRoundTrip(t *testing.T) {
	s := testSealer(t, 1)
	seen := map[string]bool{}
	for i, n := range []int{0, 1, 15, 16, 17, 100, 1024, 5000} {
		plain := bytes.Repeat([]byte("secret!"), n/7+1)[:n]
		buf := make([]byte, HeaderSize+SealedSize(n)+FrameHeaderSize)
		flags := FlagBatch
		if i%2 == 1 {
			flags |= FlagSumPayload // either checksum over a sealed payload
		}
		w := s.PutFrame(buf[HeaderSize:], uint64(i+1), flags, n, plain)
		if w != SealedSize(n) {
			t.Fatalf("PutFrame wrote %d bytes, SealedSize says %d", w, SealedSize(n))
		}
		fr, err := DecodeFrame(buf, HeaderSize)
		if err != nil {
			t.Fatalf("n=%d: DecodeFrame: %v", n, err)
		}
		if !fr.Encrypted() || !fr.InBatch() || fr.Flags&FlagSumPayload != flags&FlagSumPayload || fr.Seq != uint64(i+1) || int(fr.RawLen) != n || len(fr.Payload) != n+Overhead {
			t.Fatalf("n=%d: decoded %+v", n, fr)
		}
		if n >= 7 && bytes.Contains(buf, []byte("secret!")) {
			t.Fatalf("n=%d: plaintext in the frame", n)
		}
		got, err := s.Open(nil, fr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: Open = %q, %v", n, got, err)
		}
		nc := string(Nonce(fr))
		if len(nc) != NonceSize || seen[nc] {
			t.Fatalf("n=%d: nonce %x repeated or missing", n, nc)
		}
		seen[nc] = true
	}
	// Many more.
	dst := make([]byte, SealedSize(0))
	for i := range 1000 {
		s.PutFrame(dst, uint64(i+1), 0, 0, nil)
		fr, err := DecodeFrame(append(make([]byte, HeaderSize), dst...), HeaderSize)
		if err != nil {
			t.Fatal(err)
		}
		if nc := string(Nonce(fr)); seen[nc] {
			t.Fatalf("nonce %x repeated after %d frames", nc, i)
		} else {
			seen[nc] = true
		}
	}
}

// TestSealTamper checks that a sealed frame changed anywhere the tag
// covers, or opened with another key, fails with ErrAuth and returns
// nothing; that the fields the tag does not bind (batch, commit) do not
// matter; and that non-encrypted frames are refused.
func TestSealTamper(t *testing.T) {
	s, other := testSealer(t, 1), testSealer(t, 2)
	plain := []byte("the quick brown fox")
	buf := make([]byte, HeaderSize+SealedSize(len(plain)))
	s.PutFrame(buf[HeaderSize:], 7, 0, len(plain), plain)
	fr, err := DecodeFrame(buf, HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(nil, fr); !errors.Is(err, ErrAuth) {
		t.Fatalf("Open with another key: %v", err)
	}
	for i := range fr.Payload {
		for bit := range 8 {
			f := fr
			f.Payload = bytes.Clone(fr.Payload)
			f.Payload[i] ^= 1 << bit
			if got, err := s.Open(nil, f); !errors.Is(err, ErrAuth) || got != nil {
				t.Fatalf("byte %d bit %d flipped: %q, %v", i, bit, got, err)
			}
		}
	}
	for name, f := range map[string]Frame{
		"seq":        {Seq: fr.Seq + 1, Flags: fr.Flags, RawLen: fr.RawLen, Payload: fr.Payload},
		"raw len":    {Seq: fr.Seq, Flags: fr.Flags, RawLen: fr.RawLen + 1, Payload: fr.Payload},
		"zstd flag":  {Seq: fr.Seq, Flags: fr.Flags | FlagZstd, RawLen: fr.RawLen, Payload: fr.Payload},
		"not sealed": {Seq: fr.Seq, Flags: 0, RawLen: fr.RawLen, Payload: fr.Payload},
		"short":      {Seq: fr.Seq, Flags: fr.Flags, Payload: fr.Payload[:Overhead-1]},
	} {
		if got, err := s.Open(nil, f); !errors.Is(err, ErrAuth) || got != nil {
			t.Fatalf("%s changed: %q, %v", name, got, err)
		}
	}
	f := fr
	f.Flags |= FlagBatch | FlagCommit
	if got, err := s.Open(nil, f); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("batch flags, which the tag does not bind: %q, %v", got, err)
	}
}

// TestSealedLengths checks the length rules DecodeFrame applies to
// encrypted frames: stored = raw + Overhead unless compressed, and at
// least Overhead.
func TestSealedLengths(t *testing.T) {
	s := testSealer(t, 1)
	buf := make([]byte, HeaderSize+SealedSize(10))
	s.PutFrame(buf[HeaderSize:], 1, 0, 10, make([]byte, 10))
	fix := func(b []byte) {
		h := b[HeaderSize:]
		n := binary.LittleEndian.Uint32(h[8:])
		finishFrame(h, int(n))
	}
	b := bytes.Clone(buf)
	binary.LittleEndian.PutUint32(b[HeaderSize+24:], 11)
	fix(b)
	if _, err := DecodeFrame(b, HeaderSize); err == nil {
		t.Fatal("an encrypted frame with raw length != stored - overhead decoded")
	}
	b = make([]byte, HeaderSize+FrameSize(Overhead-1))
	startFrame(b[HeaderSize:], 1, FlagEncrypted|FlagZstd, 100, Overhead-1)
	b[HeaderSize+FrameHeaderSize] = 1
	finishFrame(b[HeaderSize:], Overhead-1)
	if _, err := DecodeFrame(b, HeaderSize); err == nil {
		t.Fatal("an encrypted compressed frame shorter than the overhead decoded")
	}
	b = make([]byte, HeaderSize+FrameSize(Overhead))
	startFrame(b[HeaderSize:], 1, FlagEncrypted|FlagAck, Overhead, Overhead)
	b[HeaderSize+FrameHeaderSize] = 1
	finishFrame(b[HeaderSize:], Overhead)
	if _, err := DecodeFrame(b, HeaderSize); err == nil {
		t.Fatal("an encrypted ack frame decoded")
	}
}

// TestKeyCheck: the key check depends on the key and the salt, and holds
// nothing of the key.
func TestKeyCheck(t *testing.T) {
	a, b := testSealer(t, 1), testSealer(t, 2)
	s1, s2 := []byte("salt-one-16bytes"), []byte("salt-two-16bytes")
	if c1, c2 := a.KeyCheck(s1), testSealer(t, 1).KeyCheck(s1); c1 != c2 {
		t.Fatal("KeyCheck is not deterministic")
	}
	if a.KeyCheck(s1) == b.KeyCheck(s1) || a.KeyCheck(s1) == a.KeyCheck(s2) {
		t.Fatal("KeyCheck does not depend on the key and the salt")
	}
	if c := a.KeyCheck(s1); bytes.Contains(c[:], []byte{1, 1, 1, 1}) {
		t.Fatalf("KeyCheck %x looks like the key", c)
	}
	if _, err := NewSealer(make([]byte, 16)); err == nil {
		t.Fatal("NewSealer accepted a 16-byte key")
	}
}

func BenchmarkSeal(b *testing.B) {
	s := testSealer(b, 1)
	for _, n := range []int{100, 1024} {
		b.Run("size="+strconv.Itoa(n), func(b *testing.B) {
			plain := make([]byte, n)
			dst := make([]byte, SealedSize(n))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				s.PutFrame(dst, 1, 0, n, plain)
			}
		})
	}
}

// TestSealAAD: the associated data PutFrame seals with (the header in
// place) is what Open rebuilds from the decoded fields.
func TestSealAAD(t *testing.T) {
	dst := make([]byte, SealedSize(5))
	startFrame(dst, 42, FlagEncrypted|FlagZstd, 77, 5+Overhead)
	var ad [aadSize]byte
	putAAD(ad[:], 42, FlagEncrypted|FlagZstd|FlagBatch|FlagCommit, 77, 5+Overhead)
	if !bytes.Equal(ad[:], dst[8:8+aadSize]) {
		t.Fatalf("associated data %x, header %x", ad, dst[8:8+aadSize])
	}
}

// countingReader counts the reads made of it, and reads from r.
type countingReader struct {
	r     io.Reader
	reads []int
}

func (c *countingReader) Read(b []byte) (int, error) {
	c.reads = append(c.reads, len(b))
	return c.r.Read(b)
}

// TestNonceReadPerFrame: each sealed frame's nonce is read from the
// system's generator when the frame is sealed, not handed out from random
// bytes read ahead and kept in the process, which every copy of the
// process (a cloned VM or container snapshot) would hand out again.
// Before, one read of 4092 bytes served 341 frames.
func TestNonceReadPerFrame(t *testing.T) {
	s := testSealer(t, 1)
	c := &countingReader{r: rand.Reader}
	saved := rand.Reader
	rand.Reader = c
	defer func() { rand.Reader = saved }()
	dst := make([]byte, SealedSize(5))
	nonces := map[string]bool{}
	for range 3 {
		s.PutFrame(dst, 1, 0, 5, []byte("plain"))
		nonces[string(dst[FrameHeaderSize:FrameHeaderSize+NonceSize])] = true
	}
	if len(c.reads) != 3 || c.reads[0] != NonceSize || len(nonces) != 3 {
		t.Fatalf("3 frames sealed with %d distinct nonces from reads of %v bytes; want a read of %d bytes for each", len(nonces), c.reads, NonceSize)
	}
}
