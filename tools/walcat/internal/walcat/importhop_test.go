package walcat

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walpub/walpub/tools/internal/binding"
	"github.com/walpub/walpub/wal"
)

// hopTestdata is the journals hop-client wrote for package hop's tests.
func hopTestdata(name string) string {
	return filepath.Join("..", "..", "..", "..", "adapter", "kafka", "hop", "testdata", name)
}

// TestImportHop: walcat import-hop appends a hop journal's unsent messages
// once; a second run appends nothing; dump shows them with their _id.
func TestImportHop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "walpub.journal")
	src := hopTestdata("v2.journal")
	var out strings.Builder
	for range 2 {
		r := walcat(t, "import-hop", src, dir)
		if r.code != ExitOK || r.stderr != "" {
			t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
		out.WriteString("$ walcat import-hop v2.journal DIR\n" + r.stdout)
	}
	r := walcat(t, "dump", "--pending", dir)
	if r.code != ExitOK {
		t.Fatal(r.stderr)
	}
	out.WriteString("$ walcat dump --pending DIR\n" + r.stdout)
	got := normalize(out.String(), map[string]string{dir: "DIR", src: "v2.journal"})
	got = timeStamp.ReplaceAllString(got, "time=TIME")
	golden(t, "import-hop", got)
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"_id"=d01cf671-6003-4378-b4e6-ead8d140af87`) {
		t.Errorf("dump: %s", r.stdout)
	}
}

var timeStamp = regexp.MustCompile(`time=\S+`)

// TestImportHopErrors: damage stops the import with the offset (exit 1,
// nothing appended); --salvage imports what is readable; a v1 journal
// needs --topic; a torn tail is reported and left out.
func TestImportHopErrors(t *testing.T) {
	b, err := os.ReadFile(hopTestdata("v2.journal"))
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "damaged.journal")
	b2 := append([]byte(nil), b...)
	b2[100] ^= 1
	if err := os.WriteFile(damaged, b2, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "j")
	r := walcat(t, "import-hop", damaged, dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "record 0 at offset 0: body CRC mismatch") ||
		!strings.Contains(r.stderr, "Nothing was imported") {
		t.Fatalf("damaged: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused import created the journal")
	}
	r = walcat(t, "import-hop", "--salvage", damaged, dir)
	if r.code != ExitOK || !strings.Contains(r.stderr, "skipped: hop journal") || !strings.Contains(r.stdout, "2 messages appended") {
		t.Fatalf("salvage: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}

	torn := filepath.Join(t.TempDir(), "torn.journal")
	if err := os.WriteFile(torn, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	r = walcat(t, "import-hop", torn, filepath.Join(t.TempDir(), "j"))
	if r.code != ExitOK || !strings.Contains(r.stderr, "ends with 29 bytes of a record cut short") ||
		!strings.Contains(r.stdout, "3 messages appended") {
		t.Errorf("torn: exit %d: %s%s", r.code, r.stdout, r.stderr) // its last sent record is cut: message 4 is pending again
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"import-hop", hopTestdata("v1.journal"), filepath.Join(t.TempDir(), "j")}, ExitUsage},
		{[]string{"import-hop", "--topic", "t", hopTestdata("v1.journal"), filepath.Join(t.TempDir(), "j")}, ExitOK},
		{[]string{"import-hop", hopTestdata("v2.journal")}, ExitUsage},
		{[]string{"import-hop", "--bogus", "a", "b"}, ExitUsage},
		{[]string{"import-hop", filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir(), "j")}, ExitDamaged},
	} {
		if r := walcat(t, tc.args...); r.code != tc.code {
			t.Errorf("walcat %s: exit %d, want %d: %s", strings.Join(tc.args, " "), r.code, tc.code, r.stderr)
		}
	}
}

// TestImportHopEncrypted: import-hop --key-file creates an encrypted
// journal that opens with that key alone; into an encrypted journal it
// imports only with its key (without it, or with another, exit 1 and
// nothing appended); an unreadable key file is a usage error.
func TestImportHopEncrypted(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "walpub.journal")
	key, keyFile, other := keyFiles(t, base)
	src := hopTestdata("v2.journal")
	r := walcat(t, "import-hop", "--key-file", keyFile, src, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "2 messages appended") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := wal.Open(dir); !errors.Is(err, wal.ErrKey) {
		t.Fatalf("the imported journal opened without its key: %v", err)
	}
	for _, args := range [][]string{{"import-hop", src, dir}, {"import-hop", "--key-file", other, src, dir}} {
		if r := walcat(t, args...); r.code != ExitDamaged || !strings.Contains(r.stderr, "is encrypted, and --key-file gave no key or another key") {
			t.Fatalf("walcat %v: %v", args, r)
		}
	}
	if r := walcat(t, "import-hop", "--key-file", filepath.Join(base, "missing"), src, dir); r.code != ExitUsage || !strings.Contains(r.stderr, "--key-file") {
		t.Fatalf("missing key file: %v", r)
	}
	r = walcat(t, "import-hop", "--key-file", keyFile, src, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "nothing appended, 2 already imported") {
		t.Fatalf("second import: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if recs := pendingRecords(t, dir, wal.WithEncryption(key)); len(recs) != 2 {
		t.Fatalf("%d records in the journal, want 2", len(recs))
	}
}

// TestImportHopEmbeddedBinding: a journal bound to walpub's embedded
// broker (a trial ran on it) is unbound before an import, so that the
// imported messages never go to the in-memory broker; with records of the
// trial still pending nothing is imported; with the binding locked (a
// walpub running) nothing is either.
func TestImportHopEmbeddedBinding(t *testing.T) {
	src := hopTestdata("v2.journal")
	journal := func(pending int) string {
		dir := filepath.Join(t.TempDir(), "walpub.journal")
		l, err := wal.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		for range pending {
			if _, err := l.Append([]byte("a trial's record")); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := binding.Write(dir, binding.Embedded); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	pendingIn := func(dir string) int {
		v, err := wal.OpenView(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		return v.Info().Pending
	}

	dir := journal(0)
	r := walcat(t, "import-hop", src, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "messages appended") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if had, err := binding.Read(dir); err != nil || had != "" {
		t.Errorf("after the import the journal is bound to %q (%v), want no binding", had, err)
	}
	if n := pendingIn(dir); n != 2 {
		t.Errorf("%d pending after the import, want hop's 2", n)
	}

	dir = journal(1)
	r = walcat(t, "import-hop", src, dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "holds 1 records a walpub run on its embedded broker left") || !strings.Contains(r.stderr, "nothing imported") {
		t.Fatalf("a trial's record pending: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if had, _ := binding.Read(dir); had != binding.Embedded {
		t.Errorf("refused import changed the binding to %q", had)
	}
	if n := pendingIn(dir); n != 1 {
		t.Errorf("%d pending after a refused import, want the trial's 1", n)
	}

	dir = journal(0)
	unlock, err := binding.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	r = walcat(t, "import-hop", src, dir)
	unlock()
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "in use by another process") {
		t.Fatalf("binding locked: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if had, _ := binding.Read(dir); had != binding.Embedded {
		t.Errorf("import with the binding locked changed it to %q", had)
	}
	if n := pendingIn(dir); n != 0 {
		t.Errorf("%d pending after an import with the binding locked", n)
	}
}

// TestKeyOnPlainJournalRefused: import-hop and dead-letters given a key
// for a journal that exists and is not encrypted refuse it (exit 2) and
// change nothing: opened with the key, the journal would be encrypted
// from then on, and walpub without the key could not open it.
func TestKeyOnPlainJournalRefused(t *testing.T) {
	base := t.TempDir()
	_, keyFile, _ := keyFiles(t, base)
	dir := filepath.Join(base, "walpub.journal")
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("plain")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"import-hop", "--key-file", keyFile, hopTestdata("v2.journal"), dir},
		{"dead-letters", "--drop", "--key-file", keyFile, dir},
		{"dead-letters", "--requeue", "--key-file", keyFile, dir},
	} {
		r := walcat(t, args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "is not encrypted: with --key-file it would be from now on") {
			t.Errorf("%v: exit %d: %s%s", args, r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "encryption")); err == nil {
			t.Fatalf("%v: the journal is encrypted now", args)
		}
	}
	l, err = wal.Open(dir)
	if err != nil {
		t.Fatalf("the journal no longer opens without a key: %v", err)
	}
	defer l.Close()
	if n := l.Stats().Pending; n != 1 {
		t.Errorf("%d pending, want the 1 record written", n)
	}
}

// TestKeyOnJournalWithoutEncryptionFile: an encrypted journal whose
// encryption file is gone (walcat repair moves a damaged one aside) is
// still encrypted: its records are, and wal.Open needs the key (it checks
// it against a record). import-hop and dead-letters must take the right
// key for it, not call the journal unencrypted and refuse the key, while
// without a key they fail with ErrKey.
func TestKeyOnJournalWithoutEncryptionFile(t *testing.T) {
	base := t.TempDir()
	key, keyFile, other := keyFiles(t, base)
	dir := filepath.Join(base, "walpub.journal")
	l, err := wal.Open(dir, wal.WithEncryption(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"dead-letters", "--drop", "--key-file", keyFile, dir},
		{"import-hop", "--key-file", keyFile, hopTestdata("v2.journal"), dir},
	} {
		if err := os.Remove(filepath.Join(dir, "encryption")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if r := walcat(t, args...); r.code != ExitOK {
			t.Errorf("%v: exit %d: %s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// Another key is still refused.
	if err := os.Remove(filepath.Join(dir, "encryption")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	r := walcat(t, "dead-letters", "--drop", "--key-file", other, dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "is encrypted, and --key-file gave no key or another key") {
		t.Errorf("another key: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	l, err = wal.Open(dir, wal.WithEncryption(key))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n := l.Stats().Pending; n != 3 {
		t.Fatalf("%d records pending, want 3 (the one written, the 2 imported)", n)
	}
}
