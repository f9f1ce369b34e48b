package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestRepairWithKey: an encrypted record altered with its checksum fixed
// up is damage only the key tells. Repair, without it, leaves the log as
// it is; RepairWithKey with another key, or for a plain log, is ErrKey
// and changes nothing; with the log's key it cuts the log at the record,
// after which the log opens with the key and reads the records before it.
func TestRepairWithKey(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithEncryption(testKey))
	for i := 1; i <= 5; i++ {
		if _, err := l.Append([]byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	path, fr := tamperSealed(t, dir, 3)

	before := readDir(t, dir)
	if rep, err := Repair(dir); err != nil || rep != (RepairReport{}) {
		t.Fatalf("Repair without the key: %+v, %v; want nothing done", rep, err)
	}
	other := bytes.Repeat([]byte{9}, len(testKey))
	if rep, err := RepairWithKey(dir, other); !errors.Is(err, ErrKey) || rep != (RepairReport{}) {
		t.Fatalf("RepairWithKey, another key: %+v, %v; want ErrKey", rep, err)
	}
	if !readDir(t, dir).equal(before) {
		t.Fatal("Repair without the key, or with another, changed the log")
	}

	rep, err := RepairWithKey(dir, testKey)
	if err != nil || rep.Path != path || rep.Offset != fr.Offset || rep.Moved == 0 {
		t.Fatalf("RepairWithKey: %+v, %v; want a cut of %s at %d", rep, err, path, fr.Offset)
	}
	l = mustOpen(t, dir, WithEncryption(testKey))
	defer mustClose(t, l)
	if next := l.Stats().NextSeq; next != 3 {
		t.Fatalf("NextSeq after the repair %d, want 3", next)
	}
	for q := uint64(1); q <= 2; q++ {
		if d, err := l.Get(q); err != nil || string(d) != fmt.Sprintf("record %d", q) {
			t.Fatalf("Get(%d): %q, %v", q, d, err)
		}
	}

	plain := t.TempDir()
	pl := mustOpen(t, plain)
	if _, err := pl.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, pl)
	if _, err := RepairWithKey(plain, testKey); !errors.Is(err, ErrKey) {
		t.Fatalf("RepairWithKey of a plain log: %v; want ErrKey", err)
	}
}

// tamperSealed alters the ciphertext of the encrypted record seq of the
// closed log in dir and fixes up its frame's checksum, so that only its
// authentication, which needs the key, tells the damage; it returns the
// segment file and the frame as it was.
func tamperSealed(t *testing.T, dir string, seq uint64) (string, segment.Frame) {
	t.Helper()
	path, fr := sealedFrame(t, dir, seq)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fb := b[fr.Offset:]
	fb[segment.FrameHeaderSize+segment.NonceSize] ^= 1
	binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, segment.FrameHeaderSize+len(fr.Payload)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fr
}
