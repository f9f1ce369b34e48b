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
	// EncryptionVersion is the version of the encryption files this
	// package writes. Version 2 added FromSeq; version 1 files are read
	// as well.
	EncryptionVersion = 2
)

// Encryption says that a log is encrypted, and how to tell its key: Check
// is the key check (segment.Sealer.KeyCheck) of the log's key with
// CheckInput (the salt, and from version 2 FromSeq).
type Encryption struct {
	Version uint16 // 0 in a value to encode: EncryptionVersion
	Cipher  uint16
	Salt    [SaltSize]byte
	Check   [segment.KeyCheckSize]byte
	// FromSeq: every record from this seq on is encrypted (version 2; 0
	// in a version 1 file, which does not say).
	FromSeq uint64
}

// CheckInput is what the key check covers: the salt and, from version 2,
// FromSeq, so that the seq from which records must be encrypted cannot be
// changed without the key.
func (e Encryption) CheckInput() []byte {
	if e.Version == 1 {
		return e.Salt[:]
	}
	return binary.LittleEndian.AppendUint64(e.Salt[:len(e.Salt):len(e.Salt)], e.FromSeq)
}

// PutEncryption encodes e into b[:EncryptionSize], as version
// EncryptionVersion.
func PutEncryption(b []byte, e Encryption) {
	_ = b[EncryptionSize-1]
	clear(b[:EncryptionSize])
	copy(b, EncryptionMagic)
	binary.LittleEndian.PutUint16(b[8:], EncryptionVersion)
	binary.LittleEndian.PutUint16(b[10:], e.Cipher)
	copy(b[16:32], e.Salt[:])
	copy(b[32:48], e.Check[:])
	binary.LittleEndian.PutUint64(b[48:], e.FromSeq)
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
	}
	v := binary.LittleEndian.Uint16(b[8:])
	from := binary.LittleEndian.Uint64(b[48:])
	switch {
	case v != 1 && v != EncryptionVersion:
		return Encryption{}, &FormatError{8, "unsupported encryption file version"}
	case binary.LittleEndian.Uint16(b[10:]) != CipherAESGCM:
		return Encryption{}, &FormatError{10, "unknown cipher"}
	case !segment.AllZero(b[12:16]) || v == 1 && from != 0:
		return Encryption{}, &FormatError{12, "reserved encryption file bytes are not zero"}
	case v == 2 && (from == 0 || from > segment.MaxSeq+1):
		return Encryption{}, &FormatError{48, "invalid first encrypted seq"}
	}
	e := Encryption{Version: v, Cipher: CipherAESGCM, FromSeq: from}
	copy(e.Salt[:], b[16:32])
	copy(e.Check[:], b[32:48])
	return e, nil
}
