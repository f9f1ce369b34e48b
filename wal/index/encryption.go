package index

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
	"github.com/walpub/walpub/wal/segment"
)

// The encryption file; part of the on-disk format.
const (
	EncryptionName  = "encryption"
	EncryptionMagic = "WALPUBEN"
	EncryptionSize  = 64
	// CipherAESGCM is AES-256-GCM with a random 96-bit nonce a frame
	// (segment.Sealer).
	CipherAESGCM = 1
	// SaltSize is the size of the key check's salt.
	SaltSize = 16
)

// Encryption says that a log is encrypted, and how to tell its key: Check
// is the key check (segment.Sealer.KeyCheck) of the log's key with Salt.
type Encryption struct {
	Cipher uint16
	Salt   [SaltSize]byte
	Check  [segment.KeyCheckSize]byte
}

// PutEncryption encodes e into b[:EncryptionSize].
func PutEncryption(b []byte, e Encryption) {
	_ = b[EncryptionSize-1]
	clear(b[:EncryptionSize])
	copy(b, EncryptionMagic)
	binary.LittleEndian.PutUint16(b[8:], Version)
	binary.LittleEndian.PutUint16(b[10:], e.Cipher)
	copy(b[16:32], e.Salt[:])
	copy(b[32:48], e.Check[:])
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
}

// DecodeEncryption decodes and verifies an encryption file's bytes. It
// never panics.
func DecodeEncryption(b []byte) (Encryption, error) {
	switch {
	case len(b) != EncryptionSize:
		return Encryption{}, &FormatError{0, "encryption file is not 64 bytes"}
	case string(b[:8]) != EncryptionMagic:
		return Encryption{}, &FormatError{0, "bad encryption file magic"}
	case binary.LittleEndian.Uint64(b[56:]) != xxhash.Sum64(b[:56]):
		return Encryption{}, &FormatError{0, "encryption file checksum mismatch"}
	case binary.LittleEndian.Uint16(b[8:]) != Version:
		return Encryption{}, &FormatError{8, "unsupported encryption file version"}
	case binary.LittleEndian.Uint16(b[10:]) != CipherAESGCM:
		return Encryption{}, &FormatError{10, "unknown cipher"}
	case !segment.AllZero(b[12:16]) || !segment.AllZero(b[48:56]):
		return Encryption{}, &FormatError{12, "reserved encryption file bytes are not zero"}
	}
	e := Encryption{Cipher: CipherAESGCM}
	copy(e.Salt[:], b[16:32])
	copy(e.Check[:], b[32:48])
	return e, nil
}
