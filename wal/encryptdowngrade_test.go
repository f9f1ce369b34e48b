package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestEncryptDowngradeToPlain: in a log that has only ever been
// encrypted, an encrypted frame rewritten on disk as a plain frame of the
// same size (FlagEncrypted cleared, attacker bytes, xxhash fixed up) is
// returned by Get and Pending as the record, without any error.
func TestEncryptDowngradeToPlain(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithEncryption(testKey))
	seq, err := l.Append([]byte("pay alice 10 EUR, from the encrypted journal"))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)

	path, fr := sealedFrame(t, dir, seq)
	b, _ := os.ReadFile(path)
	fb := b[fr.Offset:]
	stored := len(fr.Payload)
	evil := []byte(strings.Repeat("pay mallory 1M ", 10))[:stored]
	binary.LittleEndian.PutUint32(fb[12:], segment.FlagSumPayload) // flags: plain
	binary.LittleEndian.PutUint32(fb[24:], uint32(stored))         // raw = stored
	copy(fb[32:32+stored], evil)
	binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, 32+stored))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, WithEncryption(testKey))
	if err != nil {
		t.Logf("Open refused the downgraded log: %v", err)
		return
	}
	defer l.Close()
	d, err := l.Get(seq)
	if err == nil {
		t.Errorf("Get(%d) of a frame whose encryption was stripped: %q, no error (want ErrAuth/ErrCorrupt)", seq, d)
	}
	for rec, err := range l.Pending() {
		if err == nil && rec.Seq == seq {
			t.Errorf("Pending yielded the forged plain record %q", rec.Data)
		}
	}
}

// TestEncryptionFileVersion1: a log whose encryption file is version 1
// (written before the file said from which seq records are encrypted)
// still opens with its key and not with another, and its records read
// back; the file stays as it is.
func TestEncryptionFileVersion1(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithEncryption(testKey))
	seq, err := l.Append([]byte("sealed under a version 1 file"))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	path := filepath.Join(dir, index.EncryptionName)
	sl, err := segment.NewSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	e := index.Encryption{Version: 1, Cipher: index.CipherAESGCM}
	copy(e.Salt[:], "sixteen byte slt")
	e.Check = sl.KeyCheck(e.CheckInput())
	b := make([]byte, index.EncryptionSize)
	index.PutEncryption(b, e)
	binary.LittleEndian.PutUint16(b[8:], 1) // as version 1 wrote it
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := index.DecodeEncryption(b); err != nil || got.Version != 1 || got.FromSeq != 0 {
		t.Fatalf("version 1 file decodes as %+v, %v", got, err)
	}
	other := bytes.Repeat([]byte{7}, len(testKey))
	if _, err := Open(dir, WithEncryption(other)); !errors.Is(err, ErrKey) {
		t.Fatalf("Open with another key: %v, want ErrKey", err)
	}
	l = mustOpen(t, dir, WithEncryption(testKey))
	if d, err := l.Get(seq); err != nil || string(d) != "sealed under a version 1 file" {
		t.Fatalf("Get: %q, %v", d, err)
	}
	mustClose(t, l)
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, b) {
		t.Fatalf("the version 1 file changed (%v)", err)
	}
}
