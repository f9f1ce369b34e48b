package walcat

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/segment"
)

// buildTamperedLog writes an encrypted log of 5 records and alters the
// ciphertext of seq 3, fixing up the frame's checksum, so that only its
// authentication, which needs the key, tells the damage.
func buildTamperedLog(t *testing.T, dir string, key []byte) wal.RecordInfo {
	t.Helper()
	l := openLog(t, dir, wal.WithEncryption(key))
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, []byte(fmt.Sprintf("secret %d", i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := recordAt(t, dir, 3)
	b, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	fb := b[r.Offset:]
	fb[segment.FrameHeaderSize+segment.NonceSize+1] ^= 0x40
	binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, segment.FrameHeaderSize+r.StoredSize))
	if err := os.WriteFile(r.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRepairKeyFile: a record of an encrypted log that does not
// authenticate (altered, checksum fixed up) is damage that dump
// --key-file reports, pointing at repair; repair --key-file cuts the log
// there, keeping the cut bytes aside, after which dump reads the records
// before it. Before, repair took no --key-file (a usage error), and
// without it called the log healthy: the damage had no fix. Without the
// key, repair says it could not check the encrypted records; with
// another key, it refuses and changes nothing.
func TestRepairKeyFile(t *testing.T) {
	dir := t.TempDir()
	_, keyFile, other := keyFiles(t, t.TempDir())
	key, _, _ := keyFiles(t, t.TempDir())
	r3 := buildTamperedLog(t, dir, key)

	d := walcat(t, "dump", "--key-file", keyFile, dir)
	if d.code != ExitDamaged || !strings.Contains(d.stderr, "does not authenticate") || !strings.Contains(d.stderr, "walcat repair --key-file") {
		t.Fatalf("dump --key-file: exit %d\nstdout: %s\nstderr: %s", d.code, d.stdout, d.stderr)
	}

	r := walcat(t, "repair", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout+r.stderr, "--key-file") {
		t.Errorf("repair without the key: exit %d, want 0 and a word on --key-file\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	before := snapshot(t, dir)
	r = walcat(t, "repair", "--key-file", other, dir)
	if r.code == ExitOK {
		t.Errorf("repair with another key: exit 0\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	compareSnapshots(t, "repair with another key", before, snapshot(t, dir))

	r = walcat(t, "repair", "--key-file", keyFile, "--dry-run", dir)
	if r.code != ExitDamaged || !strings.Contains(r.stdout, "does not authenticate") {
		t.Errorf("repair --dry-run --key-file: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	compareSnapshots(t, "repair --dry-run", before, snapshot(t, dir))

	r = walcat(t, "repair", "--key-file", keyFile, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, fmt.Sprintf("cut %s at offset %d", r3.Path, r3.Offset)) || !strings.Contains(r.stdout, "repaired:") {
		t.Fatalf("repair --key-file: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	d = walcat(t, "dump", "--raw", "--key-file", keyFile, dir)
	if d.code != ExitOK || d.stdout != "secret 1\nsecret 2\n" {
		t.Fatalf("dump after the repair: exit %d\nstdout: %q\nstderr: %s", d.code, d.stdout, d.stderr)
	}

	plain := t.TempDir()
	buildPlainLog(t, plain)
	if r := walcat(t, "repair", "--key-file", keyFile, plain); r.code != ExitUsage || !strings.Contains(r.stderr, "not encrypted") {
		t.Errorf("repair --key-file of a plain log: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyKeyFile: verify --key-file authenticates an encrypted log's
// records, so it finds a record altered with its checksum fixed up, which
// verify without the key (checksums only) calls healthy, and points at
// repair with the key. Another key, or a key for a plain log, is refused.
// Before, verify took no --key-file (a usage error).
func TestVerifyKeyFile(t *testing.T) {
	dir := t.TempDir()
	key, keyFile, other := keyFiles(t, t.TempDir())
	r3 := buildTamperedLog(t, dir, key)

	if v := walcat(t, "verify", dir); v.code != ExitOK {
		t.Errorf("verify without the key: exit %d, want 0 (checksums only)\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
	v := walcat(t, "verify", "--key-file", keyFile, dir)
	if v.code != ExitDamaged || !strings.Contains(v.stdout, "does not authenticate") ||
		!strings.Contains(v.stdout, fmt.Sprintf("offset: %d", r3.Offset)) || !strings.Contains(v.stdout, "walcat repair --key-file FILE "+dir) {
		t.Errorf("verify --key-file: exit %d\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
	if v := walcat(t, "verify", "--key-file", other, dir); v.code != ExitDamaged || !strings.Contains(v.stderr, "not the key") {
		t.Errorf("verify with another key: exit %d\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
	plain := t.TempDir()
	buildPlainLog(t, plain)
	if v := walcat(t, "verify", "--key-file", keyFile, plain); v.code != ExitUsage || !strings.Contains(v.stderr, "not encrypted") {
		t.Errorf("verify --key-file of a plain log: exit %d\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
}

// TestByHandDamage: a segment's name on a directory is damage walcat
// repair does not change (wal.FixByHand): verify and repair --dry-run say
// to move it away, not that repair would cut the log there, and repair
// refuses, changing nothing.
func TestByHandDamage(t *testing.T) {
	dir := t.TempDir()
	buildPlainLog(t, dir)
	odd := filepath.Join(dir, segment.Name(9))
	if err := os.Mkdir(odd, 0o700); err != nil {
		t.Fatal(err)
	}
	advice := "Move " + odd + " out of the log's directory"
	if v := walcat(t, "verify", dir); v.code != ExitDamaged || !strings.Contains(v.stdout, advice) || strings.Contains(v.stdout, `Run "walcat repair`) {
		t.Errorf("verify: exit %d\nstdout: %s\nstderr: %s", v.code, v.stdout, v.stderr)
	}
	before := snapshot(t, dir)
	for _, args := range [][]string{{"repair", "--dry-run", dir}, {"repair", dir}} {
		r := walcat(t, args...)
		if r.code != ExitDamaged || !strings.Contains(r.stdout, advice) || strings.Contains(r.stdout, "would cut") {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
		}
	}
	compareSnapshots(t, "repair", before, snapshot(t, dir))
}
