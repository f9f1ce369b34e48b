package segment

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Sizes of a sealed (encrypted) payload; part of the on-disk format.
const (
	KeySize   = 32 // AES-256
	NonceSize = 12 // GCM's standard nonce
	TagSize   = 16
	// Overhead is what sealing adds to a payload: the nonce before the
	// ciphertext, the tag after it.
	Overhead = NonceSize + TagSize
	// KeyCheckSize is the size of the key check KeyCheck returns.
	KeyCheckSize = 16
)

// Labels of the keys derived from the user's key (HKDF-SHA256, no salt);
// part of the on-disk format.
const (
	frameKeyInfo = "walpub frame key v1"
	checkKeyInfo = "walpub key check v1"
)

// ErrAuth is returned by Sealer.Open for a sealed payload that does not
// authenticate: its bytes, or the header fields bound to them, were
// altered, or it was sealed under another key. Nothing of its plaintext
// is returned.
var ErrAuth = errors.New("segment: sealed payload does not authenticate (altered, or sealed under another key)")

// A Sealer seals and opens frame payloads with AES-256-GCM. It is safe
// for concurrent use.
//
// # Nonces
//
// Every sealed frame gets a fresh 96-bit nonce from crypto/rand, stored in
// the frame. No nonce is derived from anything in the log (seq, offset,
// segment, a counter kept on disk), so nothing that makes the log reuse
// those — Repair cutting records whose seqs are then written again, a
// crash losing a counter, compaction copying frames (it copies them as
// they are: the associated data holds nothing compaction changes), a
// recycled segment file, another log under the same key — can make a
// nonce repeat. The chance that two of n random nonces collide is below
// n²/2^97; NIST SP 800-38D (section 8.3) bounds random-nonce use of one key
// at 2^32 encryptions, which keeps it below 2^-32. So one key may seal at
// most 2^32 records (about 4.3 billion), counted over every log that uses
// it, over all time: rotate keys (a new log with a new key) well before.
//
// # Associated data
//
// The tag authenticates, besides the ciphertext, the frame's stored
// length, its zstd and encrypted flags, its seq and raw length: the 20
// bytes of the frame header from offset 8 on, with every other flag bit
// zero (stored length u32, flags u32, seq u64, raw length u32;
// little-endian).
// A sealed payload moved to another seq, or whose compression flag or
// lengths were changed (with the xxhash64 fixed up), fails to open. The
// batch and commit flags are not bound: compaction clears them on the
// records it copies.
type Sealer struct {
	aead  cipher.AEAD
	check []byte // the key check's HMAC key, derived from the key

	// PlainBelow, if not 0, is the seq from which every record of the
	// log is encrypted: a reader refuses an unencrypted record frame
	// there. Set once, before the Sealer is shared.
	PlainBelow uint64
}

// NewSealer returns a Sealer for a 32-byte key. The key is not kept: the
// Sealer holds keys derived from it (HKDF-SHA256), one for frames and one
// for key checks.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("segment: encryption key is %d bytes, want %d", len(key), KeySize)
	}
	fk, err := hkdf.Key(sha256.New, key, nil, frameKeyInfo, KeySize)
	if err != nil {
		return nil, fmt.Errorf("segment: derive the frame key: %w", err)
	}
	ck, err := hkdf.Key(sha256.New, key, nil, checkKeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("segment: derive the key check key: %w", err)
	}
	block, err := aes.NewCipher(fk)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	return &Sealer{aead: aead, check: ck}, nil
}

// KeyCheck returns a value that identifies the key together with salt
// (HMAC-SHA256 under a key derived from the key, truncated to 16 bytes):
// stored beside a log with a random salt, it tells whether a key is the
// log's without revealing anything about the key, and differs between
// logs under one key.
func (s *Sealer) KeyCheck(salt []byte) [KeyCheckSize]byte {
	m := hmac.New(sha256.New, s.check)
	m.Write(salt)
	var out [KeyCheckSize]byte
	copy(out[:], m.Sum(nil))
	return out
}

// SealedSize is the aligned size of the frame that seals n payload bytes.
func SealedSize(n int) int { return FrameSize(n + Overhead) }

// PutFrame encodes a frame whose payload is plain sealed, into dst, which
// must hold SealedSize(len(plain)) bytes, and returns the bytes written.
// flags gains FlagEncrypted; rawLen is the record's length before any
// compression, as for segment.PutFrame. plain must not overlap dst.
func (s *Sealer) PutFrame(dst []byte, seq uint64, flags uint32, rawLen int, plain []byte) int {
	flags |= FlagEncrypted
	stored := len(plain) + Overhead
	// The header with the unbound flags cleared is the associated data:
	// sealed in place, then the flags are set (no allocation).
	p := startFrame(dst, seq, flags&boundFlags, rawLen, stored)
	s.nonce(p[:NonceSize])
	s.aead.Seal(p[NonceSize:NonceSize], p[:NonceSize], plain, dst[8:8+aadSize])
	binary.LittleEndian.PutUint32(dst[12:], flags)
	return finishFrame(dst, stored)
}

// Open authenticates and decrypts the payload of fr, an encrypted frame,
// appending the plaintext (still compressed if fr is) to dst[:0]. A
// payload that does not authenticate is ErrAuth, and nothing of it is
// returned. dst must not overlap fr.Payload.
func (s *Sealer) Open(dst []byte, fr Frame) ([]byte, error) {
	if fr.Flags&FlagEncrypted == 0 || len(fr.Payload) < Overhead || len(fr.Payload) > MaxPayload {
		return nil, ErrAuth
	}
	ad := aadPool.Get().(*[aadSize]byte)
	putAAD(ad[:], fr.Seq, fr.Flags, fr.RawLen, uint32(len(fr.Payload)))
	out, err := s.aead.Open(dst[:0], fr.Payload[:NonceSize], fr.Payload[NonceSize:], ad[:])
	aadPool.Put(ad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// Nonce returns the nonce stored in fr, an encrypted frame, or nil.
func Nonce(fr Frame) []byte {
	if fr.Flags&FlagEncrypted == 0 || len(fr.Payload) < Overhead {
		return nil
	}
	return fr.Payload[:NonceSize]
}

// nonce fills b (NonceSize bytes) with fresh random bytes, read from the
// kernel's generator for this frame alone: bytes read ahead and kept in
// the process would be handed out again by every copy of it (a cloned VM
// or container snapshot, a restored checkpoint), repeating nonces under
// one key, while the kernel's generator is reseeded on such a fork (Linux:
// vgetrandom and the VM generation ID). crypto/rand.Read never fails (it
// ends the program if the kernel's generator is unusable, rather than
// return weak bytes).
func (s *Sealer) nonce(b []byte) {
	rand.Read(b)
}

// aadSize is the size of a sealed frame's associated data.
const aadSize = 20

// aadPool holds buffers for the associated data Open builds: one on the
// stack would escape through the cipher.AEAD interface.
var aadPool = sync.Pool{New: func() any { return new([aadSize]byte) }}

// boundFlags are the flags the associated data holds: those compaction
// keeps.
const boundFlags = FlagZstd | FlagEncrypted

// putAAD writes the associated data of a frame: what startFrame writes
// at offset 8 of its header, with only the bound flags.
func putAAD(b []byte, seq uint64, flags, rawLen, stored uint32) {
	binary.LittleEndian.PutUint32(b[0:], stored)
	binary.LittleEndian.PutUint32(b[4:], flags&boundFlags)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[16:], rawLen)
}
