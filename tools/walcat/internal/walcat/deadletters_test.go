package walcat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/wal"
)

// TestDeadLetters requeues two dead letters (a third, an undecodable
// journal record kept as bytes, names no topic and stays), then drops what
// is left: the journal gains the two records, _id and all, and the
// dead-letter log ends empty. Usage errors exit 2.
func TestDeadLetters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	openLog(t, dir).Close()
	dl := openLog(t, filepath.Join(dir, kafka.DeadLetterDir))
	recs := kafkaRecords()[:2]
	for _, r := range recs {
		r.Topic = "events"
	}
	mustAppend(t, dl, kafka.EncodeDeadLetter(recs[0], "MESSAGE_TOO_LARGE"))
	mustAppend(t, dl, kafka.EncodeDeadLetter(recs[1], "MESSAGE_TOO_LARGE"))
	mustAppend(t, dl, []byte("not a record"))
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"dead-letters", dir}, {"dead-letters", "--requeue", "--drop", dir}} {
		if r := walcat(t, args...); r.code != ExitUsage {
			t.Fatalf("walcat %v: %v", args, r)
		}
	}
	r := walcat(t, "dead-letters", "--requeue", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "2 dead letters appended") || !strings.Contains(r.stdout, "1 dead letters kept") {
		t.Fatal(r)
	}
	pending := func(d string) []wal.Record {
		l := openLog(t, d)
		defer l.Close()
		var out []wal.Record
		for rec, err := range l.Pending() {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, wal.Record{Seq: rec.Seq, Data: append([]byte(nil), rec.Data...)})
		}
		return out
	}
	got := pending(dir)
	if len(got) != 2 {
		t.Fatalf("%d records in the journal after the requeue, want 2", len(got))
	}
	for i, rec := range got {
		r, err := kafka.DecodeRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Topic != recs[i].Topic || string(r.Value) != string(recs[i].Value) || len(r.Headers) != len(recs[i].Headers) {
			t.Fatalf("requeued record %d: %+v, want %+v", i, r, recs[i])
		}
	}
	if n := len(pending(filepath.Join(dir, kafka.DeadLetterDir))); n != 1 {
		t.Fatalf("%d records left in the dead-letter log, want the undecodable one", n)
	}
	if r := walcat(t, "dead-letters", "--drop", dir); r.code != ExitOK || !strings.Contains(r.stdout, "1 dead letters dropped") {
		t.Fatal(r)
	}
	if n := len(pending(filepath.Join(dir, kafka.DeadLetterDir))); n != 0 {
		t.Fatalf("%d records left in the dead-letter log after --drop", n)
	}
}

// TestDeadLettersEncrypted: an encrypted journal's dead letters move with
// --key-file; without it, or with another key, nothing moves.
func TestDeadLettersEncrypted(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "journal")
	key, keyFile, other := keyFiles(t, base)
	openLog(t, dir, wal.WithEncryption(key)).Close()
	dl := openLog(t, filepath.Join(dir, kafka.DeadLetterDir), wal.WithEncryption(key))
	r0 := kafkaRecords()[0]
	r0.Topic = "events"
	mustAppend(t, dl, kafka.EncodeDeadLetter(r0, "MESSAGE_TOO_LARGE"))
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"dead-letters", "--requeue", dir}, {"dead-letters", "--requeue", "--key-file", other, dir}} {
		if r := walcat(t, args...); r.code != ExitDamaged || !strings.Contains(r.stderr, "is encrypted, and --key-file gave no key or another key") {
			t.Fatalf("walcat %v: %v", args, r)
		}
	}
	if r := walcat(t, "dead-letters", "--requeue", "--key-file", keyFile, dir); r.code != ExitOK || !strings.Contains(r.stdout, "1 dead letters appended") {
		t.Fatal(r)
	}
	recs := pendingRecords(t, dir, wal.WithEncryption(key))
	if len(recs) != 1 || string(recs[0].Value) != string(r0.Value) {
		t.Fatalf("journal: %v, want the requeued record alone", recs)
	}
}

// TestDeadLettersNoJournal: dead-letters on a directory that holds no
// journal (a wrong path, an empty directory) fails and changes nothing.
// Before, it created a journal and a dead-letter log there and said
// "0 dead letters dropped".
func TestDeadLettersNoJournal(t *testing.T) {
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("not a journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir(), other} {
		for _, op := range []string{"--drop", "--requeue"} {
			before := snapshot(t, dir)
			r := walcat(t, "dead-letters", op, dir)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "holds no log") {
				t.Errorf("walcat dead-letters %s on a directory without a journal: exit %d, want %d and an error naming it\nstdout: %sstderr: %s", op, r.code, ExitUsage, r.stdout, r.stderr)
			}
			compareSnapshots(t, "walcat dead-letters "+op, before, snapshot(t, dir))
		}
	}
}
