package walpub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/tools/internal/binding"
)

// TestUsageErrorsLeaveJournalAlone: a command line walpub refuses (exit 2)
// creates no journal directory, and leaves an existing journal's binding
// as it was: every flag and the URL are checked before the journal is
// touched.
func TestUsageErrorsLeaveJournalAlone(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"kafka://a:99999/t"},
		{"kafka://a b:9092/t"},
		{"kafka://a:9092/t?x=1"},
		{"--tls-ca", filepath.Join(dir, "missing.pem"), "kafka://a:9092/t"},
		{"--tls-ca", notPEM, "kafka://a:9092/t"},
	} {
		journal := filepath.Join(t.TempDir(), "j")
		r := walpub(t, "", append([]string{"--journal", journal}, args...)...)
		if r.code != ExitUsage {
			t.Errorf("walpub %s: %s", strings.Join(args, " "), r)
		}
		if _, err := os.Stat(journal); err == nil {
			t.Errorf("walpub %s: exit %d, and the journal directory %s was created", strings.Join(args, " "), r.code, journal)
		}
	}
	// A journal bound to the embedded broker keeps its binding.
	journal := embeddedJournal(t, DefaultTopic)
	r := walpub(t, "", "--journal", journal, "kafka://a:99999/t")
	if b, err := os.ReadFile(filepath.Join(journal, binding.File)); r.code != ExitUsage || err != nil || string(b) != binding.Embedded+"\n" {
		t.Errorf("walpub on a bad URL: exit %d, the journal's binding is now %q (%v), want %q\n%s", r.code, b, err, binding.Embedded, r)
	}
}

// TestTopicRefused: a --topic Kafka refuses is a usage error naming
// --topic and what the user typed, not the embedded broker's internal
// URL, and comes before anything starts (the embedded broker, the
// journal).
func TestTopicRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--topic", "bad topic"},
		{"--topic", "bad topic", "kafka://127.0.0.1:9/t"},
	} {
		journal := filepath.Join(t.TempDir(), "j")
		r := walpub(t, "a\n", append([]string{"--journal", journal}, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, `walpub: --topic: kafka: invalid topic: topic "bad topic"`) ||
			strings.Contains(r.stderr, "kafka://127.0.0.1") || strings.Contains(r.stderr, "embedded Kafka broker") {
			t.Errorf("walpub %s: %s", strings.Join(args, " "), r)
		}
		if _, err := os.Stat(journal); err == nil {
			t.Errorf("walpub %s: the journal directory was created", strings.Join(args, " "))
		}
	}
}

// TestPartitionsNeedEmbedded: --partitions sets the embedded broker's
// topic; with a broker URL it would be ignored, so it is refused (exit 2),
// as --sasl and --tls are without one.
func TestPartitionsNeedEmbedded(t *testing.T) {
	for _, n := range []string{"3", "1"} {
		journal := filepath.Join(t.TempDir(), "j")
		r := walpub(t, "a\n", "--journal", journal, "--drain-timeout", "10ms", "--partitions", n, deadURL(t, "t"))
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--partitions") {
			t.Errorf("--partitions %s with a broker URL: %s", n, r)
		}
		if _, err := os.Stat(journal); err == nil {
			t.Errorf("--partitions %s with a broker URL: the journal directory was created", n)
		}
	}
}

// TestEmptyKeyDelimRefused: --key-delim "" would split no line (bytes.Cut
// at "" gives an empty key and the whole line): a usage error.
func TestEmptyKeyDelimRefused(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, "k v\n", "--journal", journal, "--key-delim", "")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--key-delim") {
		t.Errorf(`--key-delim "": %s`, r)
	}
	if _, err := os.Stat(journal); err == nil {
		t.Error(`--key-delim "": the journal directory was created`)
	}
}
