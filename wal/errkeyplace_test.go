package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
)

// TestErrKeyNamesWhere: Open's ErrKey says which file (and, for a record,
// which offset) told it the key is wrong or missing, as a *CorruptionError
// does for damage: without the encryption file, the first encrypted
// record that does not open under the key given (a plain record before
// it), or that is there when no key was; with it, the file whose key
// check differs or that says the log is encrypted. Before, each was the
// bare sentinel.
func TestErrKeyNamesWhere(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if _, err := l.Append([]byte("plain")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	l = mustOpen(t, dir, WithEncryption(testKey))
	if _, err := l.Append([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	seg, fr := sealedFrame(t, dir, 2)
	encPath := filepath.Join(dir, index.EncryptionName)
	check := func(what string, opts []Option, want ...string) {
		t.Helper()
		l, err := Open(dir, opts...)
		if err == nil {
			l.Close()
			t.Fatalf("%s: Open succeeded, want ErrKey", what)
		}
		if !errors.Is(err, ErrKey) {
			t.Fatalf("%s: Open: %v, want ErrKey", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: Open: %q does not say %q", what, err, w)
			}
		}
	}
	check("another key, encryption file", []Option{WithEncryption(otherKey)}, encPath)
	check("no key, encryption file", nil, encPath)
	b, err := os.ReadFile(encPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(encPath); err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("offset %d", fr.Offset)
	check("another key, no encryption file", []Option{WithEncryption(otherKey)}, seg, at)
	check("no key, no encryption file", nil, seg, at)
	if err := os.WriteFile(encPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mustClose(t, mustOpen(t, dir, WithEncryption(testKey)))
}
