package walpub

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/walpub/walpub/internal/kfaketest"
)

// writeKeyFile writes a key file of 64 hex characters with mode perm.
func writeKeyFile(t *testing.T, name string, perm os.FileMode, hexKey string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(hexKey+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// TestJournalKeyFile: --journal-key-file encrypts the journal (no record
// in plain text on disk, the journal says it is encrypted); records left
// unconfirmed are resent by a run with the key; a run without it, or with
// another key, is refused with a message naming the flag; a key file its
// group or others may read is refused as a usage error.
func TestJournalKeyFile(t *testing.T) {
	key := writeKeyFile(t, "journal.key", 0o600, strings.Repeat("ab", 32))
	other := writeKeyFile(t, "other.key", 0o600, strings.Repeat("cd", 32))
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, lines("secret-", 40), "--journal", journal, "--journal-key-file", key, "--drain-timeout", "300ms", deadURL(t, "enc"))
	if r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	in, ok := journalInfo(t, journal)
	if !ok || !in.Encrypted || in.Pending != 40 || in.EncryptedRecords != in.Records {
		t.Fatalf("journal: %+v", in)
	}
	ents, err := os.ReadDir(journal)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(journal, e.Name())); err == nil && bytes.Contains(b, []byte("secret-")) {
			t.Fatalf("%s holds a record in plain text", e.Name())
		}
	}

	c := kfaketest.New(t, kfake.SeedTopics(1, "enc"))
	r = walpub(t, "", "--journal", journal, kfaketest.URL(c, "enc"))
	if r.code != ExitError || !strings.Contains(r.stderr, "is encrypted: give its key with --journal-key-file FILE") {
		t.Fatalf("without the key: %v", r)
	}
	r = walpub(t, "", "--journal", journal, "--journal-key-file", other, kfaketest.URL(c, "enc"))
	if r.code != ExitError || !strings.Contains(r.stderr, "is encrypted under another key than the one in "+other) {
		t.Fatalf("with another key: %v", r)
	}
	r = walpub(t, "", "--journal", journal, "--journal-key-file", key, kfaketest.URL(c, "enc"))
	if r.code != ExitOK || !strings.Contains(r.stderr, "sending first the 40 records an earlier run left unconfirmed") {
		t.Fatalf("with the key: %v", r)
	}
	if got, want := values(readTopic(t, c.ListenAddrs(), "enc")), strings.Fields(lines("secret-", 40)); !slices.Equal(got, want) {
		t.Fatalf("topic %q, want %q", got, want)
	}

	for _, bad := range []struct{ path, msg string }{
		{writeKeyFile(t, "open.key", 0o640, strings.Repeat("ab", 32)), "its group or others may read it; make it 0600"},
		{writeKeyFile(t, "short.key", 0o600, "abcd"), "does not hold 64 hexadecimal characters"},
		{filepath.Join(t.TempDir(), "missing.key"), "no such file"},
	} {
		r = walpub(t, "x\n", "--journal", filepath.Join(t.TempDir(), "j2"), "--journal-key-file", bad.path)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--journal-key-file: ") || !strings.Contains(r.stderr, bad.msg) {
			t.Fatalf("key file %s: %v", bad.path, r)
		}
	}
}
