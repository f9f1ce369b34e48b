package walpub

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/walpub/walpub/internal/kfaketest"
)

// hopHeaders returns a record's hop headers as "key=value", _id as its length.
func hopHeaders(rec *kgo.Record) []string {
	var hs []string
	for _, h := range rec.Headers {
		switch h.Key {
		case "_id":
			hs = append(hs, fmt.Sprintf("_id/%d", len(h.Value)))
		default:
			hs = append(hs, h.Key+"="+string(h.Value))
		}
	}
	return hs
}

// TestHopFormat: --hop-format and --test put hop's headers on every record,
// after --header's; --sasl's user is the _sender.
func TestHopFormat(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "alerts"),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "alice", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := "{\"event\": 1}\n[1, 2]\n\"text\"\n"
	r := walpub(t, in, "--journal", filepath.Join(t.TempDir(), "j"), "--hop-format", "JSON", "--test",
		"--header", "src=x", "--sasl", "SCRAM-SHA-512:alice:secret", kfaketest.URL(c, "alerts"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs := readTopicSASL(t, c.ListenAddrs(), "alerts")
	if got := values(recs); !slices.Equal(got, strings.Split(strings.TrimSuffix(in, "\n"), "\n")) {
		t.Fatalf("values %q", got)
	}
	want := []string{"src=x", "_sender=alice", "_test=true", "_format=json", "_id/16"}
	for _, rec := range recs {
		if got := hopHeaders(rec); !slices.Equal(got, want) {
			t.Errorf("record %d: headers %q, want %q", rec.Offset, got, want)
		}
	}

	// Without credentials there is no _sender; without --test no _test.
	c2 := kfaketest.New(t, kfake.SeedTopics(1, "blobs"))
	r = walpub(t, "\x00\xff\n", "--journal", filepath.Join(t.TempDir(), "j"), "--hop-format", "blob", kfaketest.URL(c2, "blobs"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs = readTopic(t, c2.ListenAddrs(), "blobs")
	if len(recs) != 1 || !slices.Equal(hopHeaders(recs[0]), []string{"_format=blob", "_id/16"}) {
		t.Errorf("blob: %d records, headers %q", len(recs), hopHeaders(recs[0]))
	}
}

// readTopicSASL is readTopic for the SASL cluster of TestHopFormat.
func readTopicSASL(t *testing.T, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	return readTopicOpts(t, addrs, topic, kgo.SASL(scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism()))
}

// TestHopFormatBadLine: the first line that is not valid JSON stops the
// input with an error naming the line; the lines before it are journaled
// and sent, nothing after it is.
func TestHopFormatBadLine(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "checked"))
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, "{\"a\": 1}\n2\n{\"a\": \n{\"b\": 4}\n", "--journal", journal, "--hop-format", "json", kfaketest.URL(c, "checked"))
	if r.code != ExitError {
		t.Fatalf("exit %d, want %d: %s", r.code, ExitError, r)
	}
	if !strings.Contains(r.stderr, "walpub: standard input, line 3: not a valid json message: unexpected end of JSON input") {
		t.Errorf("stderr does not name the line: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "2 records journaled, 2 confirmed by the broker, 0 unconfirmed") {
		t.Errorf("stdout: %s", r.stdout)
	}
	if got := values(readTopic(t, c.ListenAddrs(), "checked")); !slices.Equal(got, []string{`{"a": 1}`, "2"}) {
		t.Errorf("topic holds %q", got)
	}

	// A file, --whole: the file is named; with --key-delim the value alone
	// is checked.
	bad := filepath.Join(t.TempDir(), "bad.xml")
	if err := os.WriteFile(bad, []byte("<VOEvent/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = walpub(t, "", "--journal", journal, "--whole", "--hop-format", "voevent", kfaketest.URL(c, "checked"), bad)
	if r.code != ExitError || !strings.Contains(r.stderr, bad+": not a valid voevent message: the root element is VOEvent, not voe:VOEvent") {
		t.Errorf("voevent: %s", r)
	}
	r = walpub(t, "k1 {\"x\": 1}\nk2 {}\n", "--journal", journal, "--key-delim", " ", "--hop-format", "json", kfaketest.URL(c, "checked"))
	if r.code != ExitOK {
		t.Errorf("key-delim: %s", r)
	}
}

func TestHopUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--hop-format", "avro"},
		{"--hop-format", "js on"},
		{"--hop-format", "json", "--header", "_format=blob"},
		{"--test", "--header", "_test=true"},
		{"--test", "--header", "_sender=bob"},
	} {
		r := walpub(t, "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "walpub --help") {
			t.Errorf("walpub %s: %s", strings.Join(args, " "), r)
		}
	}
}
