package walcat

import (
	"strings"
	"testing"

	"github.com/walpub/walpub/wal"
)

// TestRepairRequeue: repair says that the records it cut off are no
// longer in the log and that --requeue appends them again; repair
// --requeue then appends every record the side file holds that reads
// whole (here an encrypted log, cut at a record that does not
// authenticate: the records after it come back, opened with the key),
// renames the side file, and has nothing left to do the second time.
// Without the key it appends nothing and asks for it.
func TestRepairRequeue(t *testing.T) {
	dir := t.TempDir()
	key, keyFile, _ := keyFiles(t, t.TempDir())
	buildTamperedLog(t, dir, key)

	r := walcat(t, "repair", "--key-file", keyFile, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, `"walcat repair --requeue `+dir+`" appends again`) {
		t.Fatalf("repair: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = walcat(t, "repair", "--key-file", keyFile, dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, `earlier repairs left 1 side file of records cut off: "walcat repair --requeue `+dir+`"`) {
		t.Fatalf("repair of the healthy log: exit %d, want 0 and a word on the side file\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = walcat(t, "repair", "--requeue", dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "--key-file") {
		t.Fatalf("repair --requeue without the key: exit %d, want 1 asking for --key-file\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if got := pendingData(t, dir, key); strings.Join(got, ",") != "secret 1,secret 2" {
		t.Fatalf("pending after a refused requeue: %q", got)
	}
	r = walcat(t, "repair", "--key-file", keyFile, "--requeue", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "requeued 2 records") || !strings.Contains(r.stdout, "left out, unreadable:") {
		t.Fatalf("repair --requeue: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if got := pendingData(t, dir, key); strings.Join(got, ",") != "secret 1,secret 2,secret 4,secret 5" {
		t.Fatalf("pending after the requeue: %q", got)
	}
	r = walcat(t, "repair", "--key-file", keyFile, "--requeue", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "no side file of a repair is left to requeue") {
		t.Fatalf("second repair --requeue: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// pendingData returns the pending records of the log in dir, encrypted
// with key.
func pendingData(t *testing.T, dir string, key []byte) []string {
	t.Helper()
	l, err := wal.Open(dir, wal.WithEncryption(key))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []string
	for r, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(r.Data))
	}
	return got
}
