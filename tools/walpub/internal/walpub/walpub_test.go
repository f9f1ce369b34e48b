package walpub

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestEmbeddedBroker is the README's first command: lines on stdin, no
// URL: the embedded broker receives them all and walpub reads them back.
func TestEmbeddedBroker(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, lines("", 2000), "--journal", journal)
	if r.code != ExitOK {
		t.Fatal(r)
	}
	for _, want := range []string{
		"walpub: 2000 records journaled, 2000 confirmed by the broker, 0 unconfirmed in " + journal,
		`walpub: read back from the embedded broker: topic "walpub" holds 2000 records, 2000 distinct _id`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stderr, `embedded Kafka broker (kfake) on 127.0.0.1:`) {
		t.Errorf("stderr: %s", r.stderr)
	}
	in, ok := journalInfo(t, journal)
	if !ok || in.Pending != 0 || in.NextSeq != 2001 {
		t.Errorf("journal: %+v", in)
	}
	// Again with the same journal: nothing left to resend, a fresh broker.
	r = walpub(t, "x\n", "--journal", journal, "--topic", "other")
	if r.code != ExitOK || !strings.Contains(r.stdout, `topic "other" holds 1 records, 1 distinct _id`) {
		t.Fatal(r)
	}
}

// TestExactlyOnceFlag: --exactly-once publishes in transactions (the
// journal keeps its transactional ID), and the read-back, read_committed,
// finds every record once.
func TestExactlyOnceFlag(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, lines("", 2000), "--journal", journal, "--exactly-once")
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if want := `topic "walpub" holds 2000 records, 2000 distinct _id`; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r)
	}
	b, err := os.ReadFile(filepath.Join(journal, "exactly-once.json"))
	if err != nil || !strings.Contains(string(b), `"transactional_id":"walpub-`) {
		t.Fatalf("the journal's exactly-once state: %q, %v", b, err)
	}
}

// TestLinesFromFiles: every line of every file (and "-" for stdin) is a
// record, in order, without its line ending, with --key and --header.
func TestLinesFromFiles(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "lines"))
	dir := t.TempDir()
	f1 := filepath.Join(dir, "a.txt")
	f2 := filepath.Join(dir, "b.txt")
	if err := os.WriteFile(f1, []byte("one\r\ntwo\n\nfour"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("L", 600<<10) // longer than the read buffer
	if err := os.WriteFile(f2, []byte(long+"\nlast\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := walpub(t, "from stdin\n", "--journal", filepath.Join(dir, "j"), kfaketest.URL(c, "lines"), f1, "-", f2,
		"--key", "k", "--header", "src=test", "--header", "n=1")
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs := readTopic(t, c.ListenAddrs(), "lines")
	want := []string{"one", "two", "", "four", "from stdin", long, "last"}
	if got := values(recs); !slices.Equal(got, want) {
		t.Fatalf("values %q, want %q", got, want)
	}
	for _, rec := range recs {
		if string(rec.Key) != "k" || string(header(rec, "src")) != "test" || string(header(rec, "n")) != "1" || len(header(rec, "_id")) != 16 {
			t.Fatalf("record %d: key %q headers %v", rec.Offset, rec.Key, rec.Headers)
		}
	}
	if !strings.Contains(r.stdout, "7 records journaled, 7 confirmed by the broker, 0 unconfirmed") {
		t.Error(r)
	}
}

// TestLastLineCR: a "\r" ending the last line, with no "\n" after it, is
// not a line ending ("\n" or "\r\n"): it stays in the record.
func TestLastLineCR(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "cr"))
	r := walpub(t, "a\r\nb\r", "--journal", filepath.Join(t.TempDir(), "j"), kfaketest.URL(c, "cr"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if got, want := values(readTopic(t, c.ListenAddrs(), "cr")), []string{"a", "b\r"}; !slices.Equal(got, want) {
		t.Fatalf("values %q, want %q", got, want)
	}
}

// TestInputErrorNamesFilesNotRead: a FILE that fails in a read stops the
// input there; the lines of the files after it, neither journaled nor
// read, are named (the files) on stderr, with exit 1.
func TestInputErrorNamesFilesNotRead(t *testing.T) {
	const bad = "/proc/self/mem" // its first read fails: EIO
	if f, err := os.Open(bad); err != nil {
		t.Skip(err)
	} else if _, err := f.Read(make([]byte, 1)); err == nil {
		f.Close()
		t.Skipf("%s reads", bad)
	} else {
		f.Close()
	}
	dir := t.TempDir()
	before, after := filepath.Join(dir, "before"), filepath.Join(dir, "after")
	for _, f := range []string{before, after} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := walpub(t, "", "--journal", filepath.Join(dir, "j"), before, bad, after)
	if r.code != ExitError || !strings.Contains(r.stdout, "1 records journaled, 1 confirmed") ||
		!strings.Contains(r.stderr, "reading "+bad) || !strings.Contains(r.stderr, "not read: "+after) {
		t.Errorf("walpub before %s after: %s", bad, r)
	}
}

// TestWholeFiles: --whole makes each file one record, byte for byte.
func TestWholeFiles(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "files"))
	dir := t.TempDir()
	contents := [][]byte{[]byte("line 1\nline 2\n"), {0, 1, 2, '\n', 0xff}, {}}
	var args []string
	for i, b := range contents {
		f := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	r := walpub(t, "", append([]string{"--whole", "--journal", filepath.Join(dir, "j"), kfaketest.URL(c, "files")}, args...)...)
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs := readTopic(t, c.ListenAddrs(), "files")
	if len(recs) != len(contents) {
		t.Fatalf("%d records, want %d", len(recs), len(contents))
	}
	for i, rec := range recs {
		if !bytes.Equal(rec.Value, contents[i]) {
			t.Errorf("record %d: %q, want %q", i, rec.Value, contents[i])
		}
	}
	// Standard input as one record.
	r = walpub(t, "a\nb\n", "--whole", "--journal", filepath.Join(dir, "j"), kfaketest.URL(c, "files"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if recs := readTopic(t, c.ListenAddrs(), "files"); string(recs[len(recs)-1].Value) != "a\nb\n" {
		t.Errorf("stdin record %q", recs[len(recs)-1].Value)
	}
}

// TestKeyDelim splits each line into key and value.
func TestKeyDelim(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "kv"))
	r := walpub(t, "a\tx\nb\ty\tz\nnokey\n", "--key-delim", "\t", "--journal", filepath.Join(t.TempDir(), "j"), kfaketest.URL(c, "kv"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	recs := readTopic(t, c.ListenAddrs(), "kv")
	var got []string
	for _, rec := range recs {
		got = append(got, fmt.Sprintf("%v:%s=%s", rec.Key != nil, rec.Key, rec.Value))
	}
	if want := []string{"true:a=x", "true:b=y\tz", "false:=nokey"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestUnconfirmedThenResent: with no broker to answer, walpub gives up
// after --drain-timeout without a confirmation, exits 3 and leaves the
// records journaled; the next run sends them first, then its own.
func TestUnconfirmedThenResent(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, lines("old", 50), "--journal", journal, "--drain-timeout", "1200ms", "--progress", deadURL(t, "resend"))
	if r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	if !strings.Contains(r.stdout, "50 records journaled, 0 confirmed by the broker, 50 unconfirmed") ||
		!strings.Contains(r.stderr, "50 records stay in "+journal+"; the next walpub run with this journal sends them first") {
		t.Error(r)
	}
	// --progress on a non-terminal: a line per second.
	if !strings.Contains(r.stderr, "walpub: sent 50  confirmed 0  pending 50  0 records/s  journal ") {
		t.Errorf("no progress line:\n%s", r.stderr)
	}
	if in, _ := journalInfo(t, journal); in.Pending != 50 {
		t.Fatalf("journal: %+v", in)
	}

	c := kfaketest.New(t, kfake.SeedTopics(1, "resend"))
	r = walpub(t, "new\n", "--journal", journal, kfaketest.URL(c, "resend"))
	if r.code != ExitOK {
		t.Fatal(r)
	}
	if !strings.Contains(r.stderr, "sending first the 50 records an earlier run left unconfirmed") ||
		!strings.Contains(r.stdout, "1 records journaled, 51 confirmed by the broker (50 of them left by an earlier run), 0 unconfirmed") {
		t.Error(r)
	}
	want := append(strings.Fields(lines("old", 50)), "new")
	if got := values(readTopic(t, c.ListenAddrs(), "resend")); !slices.Equal(got, want) {
		t.Fatalf("topic %q, want %q", got, want)
	}
}

// TestSummaryLeftoverUnconfirmed: when the records an earlier run left
// are not confirmed this time either, the summary does not count them
// among the confirmed ("0 confirmed by the broker (3 of them left by an
// earlier run)"); it says they were to send besides the run's own.
func TestSummaryLeftoverUnconfirmed(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	url := deadURL(t, "left")
	if r := walpub(t, "a\nb\nc\n", "--journal", journal, "--drain-timeout", "10ms", url); r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	r := walpub(t, "d\n", "--journal", journal, "--drain-timeout", "10ms", url)
	if r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	if strings.Contains(r.stdout, "of them left by an earlier run") ||
		!strings.Contains(r.stdout, "walpub: 1 records journaled (and 3 an earlier run left), 0 confirmed by the broker, 4 unconfirmed in "+journal) {
		t.Errorf("summary: %s", r)
	}
}

// TestEmbeddedRefusesForeignJournal: the embedded broker must not swallow
// records an earlier run left for another broker's topic.
func TestEmbeddedRefusesForeignJournal(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, "precious\n", "--journal", journal, "--drain-timeout", "10ms", deadURL(t, "orders"))
	if r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	r = walpub(t, "x\n", "--journal", journal)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "the embedded broker would swallow them") {
		t.Fatal(r)
	}
	if in, _ := journalInfo(t, journal); in.Pending != 1 || in.NextSeq != 2 {
		t.Fatalf("the journal changed: %+v", in)
	}
}

// TestEmbeddedRefusesJournalBoundElsewhere: records journaled for a real
// broker, on the embedded broker's own topic, are refused by the embedded
// broker (exit 2, naming where they are bound), and the journal keeps
// them; a journal bound to the embedded broker is taken by it.
func TestEmbeddedRefusesJournalBoundElsewhere(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	url := deadURL(t, DefaultTopic)
	r := walpub(t, "1\n2\n3\n4\n5\n", "--journal", journal, "--drain-timeout", "10ms", url)
	if r.code != ExitUnconfirmed {
		t.Fatal(r)
	}
	brokers := strings.TrimSuffix(strings.TrimPrefix(url, "kafka://"), "/"+DefaultTopic)
	r = walpub(t, "", "--journal", journal)
	if r.code != ExitUsage || !strings.Contains(r.stderr, brokers) || !strings.Contains(r.stderr, "embedded broker") {
		t.Fatalf("embedded broker on a journal bound to %s: %v", brokers, r)
	}
	if in, _ := journalInfo(t, journal); in.Pending != 5 || in.NextSeq != 6 {
		t.Fatalf("the journal changed: %+v", in)
	}

	// Bound to the embedded broker: an embedded run takes what an earlier
	// one left.
	own := filepath.Join(t.TempDir(), "own")
	if r := walpub(t, "a\n", "--journal", own); r.code != ExitOK {
		t.Fatal(r)
	}
	if r := walpub(t, "b\n", "--journal", own); r.code != ExitOK {
		t.Fatal(r)
	}
}

// TestInterrupt: the first signal stops reading input (which never ends
// here), the records read so far are confirmed, the exit status says
// which signal came.
func TestInterrupt(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "intr"))
	journal := filepath.Join(t.TempDir(), "j")
	pr, pw := io.Pipe()
	defer pw.Close()
	w := startSignalled(pr, "--journal", journal, kfaketest.URL(c, "intr"))
	if _, err := io.WriteString(pw, lines("i", 20)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "20 records journaled", func() bool {
		in, ok := journalInfo(t, journal)
		return ok && in.Records == 20
	})
	w.sigs <- syscall.SIGTERM
	code := <-w.done
	if code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d\n%s\n%s", code, w.out.String(), w.errOut.String())
	}
	if !strings.Contains(w.errOut.String(), "terminated: no more input; waiting at most 30s for confirmations") ||
		!strings.Contains(w.out.String(), "20 records journaled, 20 confirmed by the broker, 0 unconfirmed") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", w.out.String(), w.errOut.String())
	}
	if got := values(readTopic(t, c.ListenAddrs(), "intr")); len(got) != 20 {
		t.Errorf("topic: %q", got)
	}
}

// TestInterruptTwice: with no broker and no drain limit, a second signal
// ends the drain; the records stay journaled.
func TestInterruptTwice(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	w := startSignalled(strings.NewReader("a\nb\n"), "--journal", journal, "--drain-timeout", "0", deadURL(t, "t"))
	waitUntil(t, "2 records journaled", func() bool {
		in, ok := journalInfo(t, journal)
		return ok && in.Records == 2
	})
	w.sigs <- os.Interrupt
	w.sigs <- os.Interrupt
	if code := <-w.done; code != ExitUnconfirmed {
		t.Fatalf("exit %d\n%s\n%s", code, w.out.String(), w.errOut.String())
	}
	if in, _ := journalInfo(t, journal); in.Pending != 2 {
		t.Fatalf("journal: %+v", in)
	}
}

// TestInterruptKeepsWhatWasRead: walpub has consumed lines from a pipe
// (io.Pipe's Write returns once the reader took every byte), then SIGTERM
// comes: every line it consumed is journaled, since the pipe will not give
// them again.
func TestInterruptKeepsWhatWasRead(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	pr, pw := io.Pipe()
	defer pw.Close()
	w := startSignalled(pr, "--journal", journal, "--drain-timeout", "1s", deadURL(t, "t"))
	const n = 3000
	if _, err := io.WriteString(pw, lines("x", n)); err != nil {
		t.Fatal(err)
	}
	w.sigs <- syscall.SIGTERM
	code := <-w.done
	in, _ := journalInfo(t, journal)
	t.Logf("exit %d\n%s%s", code, w.out.String(), w.errOut.String())
	if in.Records != n {
		t.Errorf("%d lines consumed from the pipe, %d journaled: %d lost; summary: %s", n, in.Records, n-in.Records, strings.TrimSpace(w.out.String()))
	}
}

// TestSecondInterruptJournalsWhatWasRead: a second signal right after the
// first ends the drain, not the journaling of the lines walpub had read
// (all of them here, in one read of a file, which --sync always, slowing
// the journal, reads ahead): they are journaled, as --help says, not
// dropped unreported.
func TestSecondInterruptJournalsWhatWasRead(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	const n = 5000
	input := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(input, []byte(lines("x", n)), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startSignalled(nil, "--journal", journal, "--sync", "always", "--drain-timeout", "0", deadURL(t, "t"), input)
	waitUntil(t, "a record journaled", func() bool {
		in, ok := journalInfo(t, journal)
		return ok && in.Records > 0
	})
	w.sigs <- os.Interrupt
	w.sigs <- os.Interrupt
	code := <-w.done
	if in, _ := journalInfo(t, journal); code != ExitUnconfirmed || in.Records != n {
		t.Errorf("%d lines read, %d journaled, exit %d:\n%s%s", n, in.Records, code, w.out.String(), w.errOut.String())
	}
}

// TestInterruptNamesLineBegun: walpub has read the start of a line (or of
// a --whole input) and waits in a read for the rest when SIGINT comes: it
// does not wait for that read, and the bytes it read are not journaled,
// so it names them on stderr, as --help says.
func TestInterruptNamesLineBegun(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		input string
		want  string
		n     int // records journaled before the interrupt
	}{
		{nil, "a\nb\npart", "interrupted while reading standard input: its line 3, 4 bytes read so far, is not journaled", 2},
		{[]string{"--whole"}, "part", "interrupted while reading standard input: its 4 bytes read so far are not journaled", 0},
	} {
		journal := filepath.Join(t.TempDir(), "j")
		pr, pw := io.Pipe()
		w := startSignalled(pr, append([]string{"--journal", journal}, tc.args...)...)
		if _, err := io.WriteString(pw, tc.input); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the records journaled", func() bool {
			in, ok := journalInfo(t, journal)
			return ok && in.Records == tc.n
		})
		w.sigs <- os.Interrupt
		code := <-w.done
		pw.Close()
		if code != 128+int(syscall.SIGINT) || !strings.Contains(w.errOut.String(), tc.want) {
			t.Errorf("walpub %v, %q read, then SIGINT: exit %d, stderr lacks %q:\n%s%s", tc.args, tc.input, code, tc.want, w.out.String(), w.errOut.String())
		}
	}
}

// child starts the test binary as a walpub process.
func child(t *testing.T, stdin io.Reader, args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = stdin
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// TestKilledProcessNoBroker: a walpub process that journaled everything
// but reached no broker is killed with SIGKILL; the next run delivers its
// records first, then its own.
func TestKilledProcessNoBroker(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "j")
	input := filepath.Join(dir, "in")
	const n = 300
	if err := os.WriteFile(input, []byte(lines("k", n)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, out := child(t, nil, "--journal", journal, "--drain-timeout", "0", deadURL(t, "killed"), input)
	waitUntil(t, "the child journals every line", func() bool {
		in, ok := journalInfo(t, journal)
		return ok && in.Records == n
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if in, _ := journalInfo(t, journal); in.Pending != n {
		t.Fatalf("after the kill: %+v\nchild output:\n%s", in, out.String())
	}

	c := kfaketest.New(t, kfake.SeedTopics(1, "killed"))
	r := walpub(t, "after\n", "--journal", journal, kfaketest.URL(c, "killed"))
	if r.code != ExitOK || !strings.Contains(r.stdout, fmt.Sprintf("(%d of them left by an earlier run)", n)) {
		t.Fatal(r)
	}
	want := append(strings.Fields(lines("k", n)), "after")
	if got := values(readTopic(t, c.ListenAddrs(), "killed")); !slices.Equal(got, want) {
		t.Fatalf("topic holds %d records %q..., want %d", len(got), got[:min(5, len(got))], len(want))
	}
}

// TestKilledProcessMidStream: a walpub process publishing to a live
// broker is killed with SIGKILL while records are in flight (it must die of
// the signal, leaving records unconfirmed in its journal); after the next
// run, every record the killed process journaled is on the topic
// (duplicates allowed, no loss).
func TestKilledProcessMidStream(t *testing.T) {
	topics := make([]string, killAttempts)
	for i := range topics {
		topics[i] = fmt.Sprintf("mid-%d", i)
	}
	c := kfaketest.New(t, kfake.SeedTopics(1, topics...))
	killMidStream(t, c.ListenAddrs(), func(i int) string { return topics[i] })
}

// TestKilledProcessMidStreamRealBroker is TestKilledProcessMidStream
// against the broker of scripts/kafka.sh.
func TestKilledProcessMidStreamRealBroker(t *testing.T) {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("KAFKA_BROKERS is not set: start a broker with scripts/kafka.sh start; eval \"$(scripts/kafka.sh env)\"")
	}
	killMidStream(t, strings.Split(brokers, ","), func(int) string { return fmt.Sprintf("walpub-tool-kill-%d", time.Now().UnixNano()) })
}

// killAttempts bounds the tries of killMidStream at killing the child
// while records are unconfirmed.
const killAttempts = 5

// killMidStream kills a walpub child publishing to a topic (topic(i) for
// try i) while it has records journaled and unconfirmed, then checks that
// the next run sends every journaled record. The kill comes once progress
// shows records both confirmed and pending; the broker may have confirmed
// the rest by then (the progress line is a second old at most), so a
// try that killed a child with nothing unconfirmed, which would check no
// recovery, is made again, on a new journal and topic, up to killAttempts
// times.
func killMidStream(t *testing.T, addrs []string, topic func(try int) string) {
	for try := range killAttempts {
		if killMidStreamOnce(t, addrs, topic(try)) {
			return
		}
	}
	t.Fatalf("in %d tries, the child was killed each time with none of its journaled records unconfirmed: not mid-stream", killAttempts)
}

// killMidStreamOnce is one try of killMidStream; it reports false, having
// checked nothing, if the child had nothing unconfirmed when killed.
func killMidStreamOnce(t *testing.T, addrs []string, topic string) bool {
	url := "kafka://" + strings.Join(addrs, ",") + "/" + topic
	dir := t.TempDir()
	journal := filepath.Join(dir, "j")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, out := child(t, pr, "--progress", "--journal", journal, url)
	pr.Close()
	// Feed lines until the child shows progress with records both
	// confirmed and pending, then kill it.
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := io.WriteString(pw, lines(fmt.Sprintf("m%d-", i), 500)); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	progress := regexp.MustCompile(`confirmed ([1-9]\d*)  pending ([1-9]\d*)`)
	waitUntil(t, "progress with records confirmed and pending", func() bool { return progress.MatchString(out.String()) })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	close(stop)
	pw.Close()
	<-fed
	// Kill succeeds on a child that has exited on its own but is not yet
	// reaped: the fault happened only if the wait status says SIGKILL.
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child did not die of the SIGKILL: %v\nchild output:\n%s", werr, out.String())
	}

	// Everything the killed process journaled, by _id.
	v, err := wal.OpenView(journal)
	if err != nil {
		t.Fatal(err)
	}
	journaled := map[string]string{}
	pending := 0
	for rec, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		k, err := kafka.DecodeRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		journaled[string(header(k, "_id"))] = string(k.Value)
		if !rec.Acked {
			pending++
		}
	}
	v.Close()
	t.Logf("killed with %d records journaled, %d unconfirmed", len(journaled), pending)
	if pending == 0 {
		// Everything was confirmed before the kill: the next run has
		// nothing to resend, and the test would check no recovery.
		t.Logf("the child was killed with none of its %d journaled records unconfirmed: not mid-stream; again", len(journaled))
		return false
	}

	r := walpub(t, "", "--journal", journal, url)
	if r.code != ExitOK {
		t.Fatal(r)
	}
	onTopic := map[string]bool{}
	dups := 0
	for _, rec := range readTopic(t, addrs, topic) {
		id := string(header(rec, "_id"))
		if onTopic[id] {
			dups++
		}
		onTopic[id] = true
	}
	lost := 0
	for id, val := range journaled {
		if !onTopic[id] {
			if lost < 5 {
				t.Errorf("journaled record %q is not on the topic", val)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d journaled records lost", lost, len(journaled))
	}
	t.Logf("all %d journaled records on the topic, %d duplicates", len(journaled), dups)
	return true
}

func TestUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, args := range [][]string{
		{"--bogus"},
		{"--sync", "sometimes"},
		{"--sync", "every=-1s"},
		{"--sasl", "PLAIN:user"},
		{"--sasl", "GSSAPI:u:p", "kafka://h:9092/t"},
		{"--tls"},
		{"--sasl", "PLAIN:u:p"},
		{"kafka://a:9092/t", "kafka://b:9092/t"},
		{"kafka://a:9092"},
		{"kafka://a:9092/"},
		{missing},
		{t.TempDir()},
		{"--key", "k", "--key-delim", ","},
		{"--whole", "--key-delim", ","},
		{"--partitions", "0"},
		{"--partitions", "10001"},
		{"--partitions", "4294967297"},
		{"--header", "_id=0123456789abcdef"},
		{"--header", "_test=false"},
		{"--header", "_format=json"},
		{"--header", "_sender=someone"},
		{"--drain-timeout", "-1s"},
	} {
		r := walpub(t, "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "walpub --help") {
			t.Errorf("walpub %s: %s", strings.Join(args, " "), r)
		}
	}
	r := walpub(t, "", "--journal", filepath.Join(t.TempDir(), "j"), "kafka://a:99999/t")
	if r.code != ExitUsage {
		t.Errorf("bad URL: %s", r)
	}
	r = walpub(t, "", "--help")
	if r.code != ExitOK || !strings.Contains(r.stdout, "Usage:\n  walpub [flags] [kafka://[USER@]host:port") ||
		!strings.Contains(r.stdout, "  --drain-timeout duration\n") {
		t.Errorf("--help: %s", r)
	}
	// $WALPUB_SASL is checked like --sasl.
	var out, errOut testutil.SyncBuffer
	code := Main(context.Background(), []string{"kafka://h:9092/t"}, Env{Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return map[string]string{SASLEnv: "nope"}[k] }})
	if code != ExitUsage || !strings.Contains(errOut.String(), "$WALPUB_SASL") {
		t.Errorf("WALPUB_SASL=nope: exit %d: %s", code, errOut.String())
	}
}

// TestSASLEnvEmbedded: $WALPUB_SASL, exported for the real broker, does
// not stop a run on the embedded broker, which uses no SASL: it is
// --sasl's default, and the embedded broker refuses only --sasl given.
func TestSASLEnvEmbedded(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	code := Main(context.Background(), []string{"--journal", filepath.Join(t.TempDir(), "j")}, Env{
		Stdin: strings.NewReader("x\n"), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return map[string]string{SASLEnv: "SCRAM-SHA-512:alice:secret"}[k] }})
	if code != ExitOK || !strings.Contains(out.String(), "1 records journaled, 1 confirmed by the broker") {
		t.Errorf("WALPUB_SASL set, no URL: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestRealBroker publishes to the broker of scripts/kafka.sh, plaintext
// and, in the subtest SCRAM, through its SCRAM listener (which skips when
// KAFKA_SCRAM_BROKERS is unset: .ci/run fails on that skip).
func TestRealBroker(t *testing.T) {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("KAFKA_BROKERS is not set: start a broker with scripts/kafka.sh start; eval \"$(scripts/kafka.sh env)\"")
	}
	topic := fmt.Sprintf("walpub-tool-%d", time.Now().UnixNano())
	journal := filepath.Join(t.TempDir(), "j")
	r := walpub(t, lines("real", 1000), "--journal", journal, "--drain-timeout", "60s", "kafka://"+brokers+"/"+topic)
	if r.code != ExitOK || !strings.Contains(r.stdout, "1000 records journaled, 1000 confirmed") {
		t.Fatal(r)
	}
	recs := readTopic(t, strings.Split(brokers, ","), topic)
	if got := values(recs); !slices.Equal(got, strings.Fields(lines("real", 1000))) {
		t.Fatalf("topic holds %d records", len(got))
	}

	t.Run("SCRAM", func(t *testing.T) {
		scram := os.Getenv("KAFKA_SCRAM_BROKERS")
		if scram == "" {
			t.Skip("KAFKA_SCRAM_BROKERS is not set: eval \"$(scripts/kafka.sh env)\"")
		}
		sasl := os.Getenv("KAFKA_SCRAM_MECHANISM") + ":" + os.Getenv("KAFKA_SCRAM_USER") + ":" + os.Getenv("KAFKA_SCRAM_PASSWORD")
		var out, errOut testutil.SyncBuffer
		code := Main(context.Background(), []string{"--journal", filepath.Join(t.TempDir(), "j2"), "--drain-timeout", "60s",
			"kafka://" + scram + "/" + topic}, Env{Stdin: strings.NewReader("scram\n"), Stdout: &out, Stderr: &errOut,
			Getenv: func(k string) string { return map[string]string{SASLEnv: sasl}[k] }})
		if code != ExitOK {
			t.Fatalf("SCRAM: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		if recs := readTopic(t, strings.Split(brokers, ","), topic); string(recs[len(recs)-1].Value) != "scram" {
			t.Fatalf("SCRAM record not on the topic")
		}
	})

	t.Run("HopAuthSASLSSL", func(t *testing.T) { testHopAuthRealBroker(t, topic) })
}
