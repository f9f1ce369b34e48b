package wal

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// Encryption at rest (WithEncryption). What is sealed, and why nonces
// never repeat under one key, is said at segment.Sealer; how a log knows
// it is encrypted and which key is its own, here.
//
// A log is encrypted when its directory holds the file "encryption" (see
// package index: a random salt and the key check of the log's key with
// it) or any segment holds an encrypted frame. Open of an encrypted log
// without a key, or with a key whose check differs, fails with ErrKey
// before anything on disk changes: load only reads. Where the file is
// missing but encrypted frames exist (Repair moved a damaged one aside),
// the key is checked by opening the first encrypted record on disk
// instead, and the file written again.
//
// The first Open with a key of a log that has no such file writes it,
// synced and renamed into place, before any record is appended: a power
// cut can leave encrypted frames only in a log whose file is durable, or
// whose key the frames themselves check.

// checkKey checks key (nil: none given) against the log st describes.
// It returns the Sealer for key (nil without a key), with the seq from
// which records must be encrypted (PlainBelow) where the log says, and
// whether the encryption file must be written, or ErrKey.
func checkKey(st *loaded, key []byte) (sl *segment.Sealer, writeFile bool, err error) {
	var sealed *seg
	for _, s := range st.segs {
		if s.sealedAt != 0 {
			sealed = s
			break
		}
	}
	if key == nil {
		switch {
		case st.haveEnc:
			return nil, false, fmt.Errorf("%w: %s says the log is encrypted", ErrKey, st.encPath)
		case sealed != nil:
			return nil, false, fmt.Errorf("%w: %s holds an encrypted record at offset %d", ErrKey, sealed.file.Path, sealed.sealedAt)
		}
		return nil, false, nil
	}
	if sl, err = segment.NewSealer(key); err != nil {
		return nil, false, fmt.Errorf("wal: %w", err)
	}
	if st.haveEnc {
		if !keyFits(sl, st.enc) {
			return nil, false, fmt.Errorf("%w: the key check in %s does not match", ErrKey, st.encPath)
		}
		sl.PlainBelow = st.enc.FromSeq
		return sl, false, nil
	}
	// No file: from the next record on, or, where Repair moved a damaged
	// one aside, from the first encrypted record on disk.
	sl.PlainBelow = st.nextSeq
	if sealed != nil {
		fr, err := readFrame(sealed.file, sealed.sealedAt)
		if err != nil {
			return nil, false, corrupt(sealed.file.Path, sealed.sealedAt, 0, FixCut, "%s", err).causedBy(err)
		}
		if _, err := openSealed(sl, fr); err != nil {
			if !errors.Is(err, segment.ErrAuth) {
				// A fault reading the mapping, not a key that differs.
				return nil, false, fmt.Errorf("wal: %s at offset %d: %w", sealed.file.Path, sealed.sealedAt, err)
			}
			// Another key, or the record altered with its checksum fixed
			// up: with no key check to go by, they look the same.
			return nil, false, fmt.Errorf("%w: the first encrypted record, %s at offset %d (seq %d), does not open with the key given",
				ErrKey, sealed.file.Path, sealed.sealedAt, fr.Seq)
		}
		sl.PlainBelow = fr.Seq
	}
	return sl, true, nil
}

// openSealed opens fr's sealed payload; a fault reading the mapping is an
// error.
func openSealed(sl *segment.Sealer, fr segment.Frame) (_ []byte, err error) {
	defer catchFault("", &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return sl.Open(nil, fr)
}

// keyFits reports whether sl's key is the one whose key check the
// encryption file e holds.
func keyFits(sl *segment.Sealer, e index.Encryption) bool {
	check := sl.KeyCheck(e.CheckInput())
	return hmac.Equal(check[:], e.Check[:])
}

// writeEncryptionFile records that the log is encrypted under sl's key
// from seq sl.PlainBelow on: a fresh random salt and the key check with it
// and that seq, synced and renamed into place before any record is
// sealed.
func (l *Log) writeEncryptionFile(sl *segment.Sealer) error {
	e := index.Encryption{Version: index.EncryptionVersion, Cipher: index.CipherAESGCM, FromSeq: sl.PlainBelow}
	rand.Read(e.Salt[:])
	e.Check = sl.KeyCheck(e.CheckInput())
	b := make([]byte, index.EncryptionSize)
	index.PutEncryption(b, e)
	if _, err := l.writeFileAtomic(l.encPath(), b); err != nil {
		return fmt.Errorf("wal: write the encryption file: %w", err)
	}
	l.encBytes = int64(len(b))
	return nil
}

func (l *Log) encPath() string { return vfs.Join(l.dir, index.EncryptionName) }

// unsealRecord returns the record in fr, an encrypted frame: opened and,
// if compressed, decompressed into buf's storage (a fresh copy when buf
// is nil). Without a sealer it is ErrKey; a payload that does not
// authenticate is a *CorruptionError caused by ErrAuth.
func unsealRecord(fr segment.Frame, path string, buf []byte, sl *segment.Sealer) ([]byte, error) {
	if sl == nil {
		return nil, fmt.Errorf("wal: %s at offset %d (seq %d) is encrypted: %w", path, fr.Offset, fr.Seq, ErrKey)
	}
	dst := buf
	var tmp *[]byte
	if fr.Compressed() {
		tmp = bufPool.Get().(*[]byte)
		defer bufPool.Put(tmp)
		dst = *tmp
	}
	plain, err := sl.Open(dst, fr)
	if err != nil {
		return nil, corrupt(path, fr.Offset, fr.Seq, FixCut,
			"encrypted record does not authenticate: altered, or encrypted under another key").causedBy(err)
	}
	if !fr.Compressed() {
		return plain, nil
	}
	*tmp = plain[:0]
	return decompress(fr, plain, path, buf)
}
