package walpub

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/tools/internal/binding"
	"github.com/walpub/walpub/wal"
)

// TestBusyJournalBindingUntouched: a run for the embedded broker on a
// journal another walpub is using (its journal and its binding locked,
// bound to a real broker) fails as "in use" and leaves the binding as it
// was: rebound to the embedded broker, the records the other run journals
// would be swallowed by the next embedded run.
func TestBusyJournalBindingUntouched(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "j")
	l, err := wal.Open(dir) // the other run's journal
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const bound = "127.0.0.1:19097\n"
	if err := os.WriteFile(filepath.Join(dir, binding.File), []byte(bound), 0o600); err != nil {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, binding.File+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r := walpub(t, "", "--journal", dir, "--topic", "t")
	if r.code != ExitError || !strings.Contains(r.stderr, "in use") {
		t.Errorf("walpub on a busy journal: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir, binding.File)); err != nil || string(b) != bound {
		t.Fatalf("the busy journal's binding is now %q (%v), want %q", b, err, bound)
	}
}

// TestRealBrokerRefusesEmbeddedJournal: records an embedded-broker run
// left in a journal (killed before they were confirmed) are not sent to
// the next real broker named with that journal: exit 2, the journal kept.
// A run on the embedded broker then takes them.
func TestRealBrokerRefusesEmbeddedJournal(t *testing.T) {
	dir := embeddedJournal(t, DefaultTopic, "trial 1", "trial 2")
	r := walpub(t, "real\n", "--journal", dir, deadURL(t, "events"))
	if r.code != ExitUsage || !strings.Contains(r.stderr, "journaled for the embedded broker") {
		t.Fatalf("a real broker on a journal bound to the embedded one: %s", r)
	}
	if in, _ := journalInfo(t, dir); in.Pending != 2 || in.NextSeq != 3 {
		t.Fatalf("the journal changed: %+v", in)
	}
	r = walpub(t, "", "--journal", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, "2 of them left by an earlier run") {
		t.Fatalf("the embedded broker taking them: %s", r)
	}
}

// TestEmbeddedJournalOtherTopic: records an embedded-broker trial with
// --topic left are refused by an embedded run for another topic, which
// tells how to have them taken: by an embedded run with the trial's
// topic, as the README says, not by a real broker, which refuses them
// (and told to run the embedded broker). Following the advice works.
func TestEmbeddedJournalOtherTopic(t *testing.T) {
	dir := embeddedJournal(t, "trial", "left")
	r := walpub(t, "", "--journal", dir)
	want := "walpub --journal " + dir + " --topic trial </dev/null"
	if r.code != ExitError || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "kafka://") {
		t.Fatalf("an embedded run for another topic: stderr lacks %q or sends them to a real broker: %s", want, r)
	}
	if r := walpub(t, "", "--journal", dir, "--topic", "trial"); r.code != ExitOK {
		t.Fatalf("following the advice: %s", r)
	}
}

// encodedRecord is a journal record as the producer journals it, with
// its own _id.
func encodedRecord(t *testing.T, topic, value string) []byte {
	t.Helper()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return kafka.EncodeRecord(&kgo.Record{Topic: topic, Value: []byte(value),
		Headers: []kgo.RecordHeader{{Key: "_id", Value: id}}})
}

// embeddedJournal returns a journal bound to the embedded broker holding
// a record for topic of each of values, unconfirmed, as a killed
// embedded-broker run leaves them.
func embeddedJournal(t *testing.T, topic string, values ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "j")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := binding.Write(dir, binding.Embedded); err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if _, err := l.Append(encodedRecord(t, topic, v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
