package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka/hop"
	"github.com/walpub/walpub/internal/kafkaoffsets"
)

// hopPythonEnv names the Python of a venv with hop-client 0.13.0 installed,
// which the hop-client interop tests run; .ci/run sets it.
const hopPythonEnv = "HOP_PYTHON"

// hopPython returns $HOP_PYTHON, skipping the test without it.
func hopPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv(hopPythonEnv)
	if p == "" {
		t.Skip(hopPythonEnv + " not set: the python of a venv with hop-client (python3 -m venv V && V/bin/pip install hop-client==0.13.0 six); .ci/run sets it")
	}
	return p
}

// homeEnv is the environment of a process (hop's Python, walpub) whose
// home is home, so that it reads hop's configuration from there (none, or
// what the test wrote) and never the machine user's.
func homeEnv(home string) []string {
	return append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
}

// hopCmd runs a script of testdata with hop's Python, with home as its home.
func hopCmd(ctx context.Context, home, python, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("testdata", script)}, args...)...)
	cmd.Env = homeEnv(home)
	return cmd
}

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// tool returns the path of walpub's command name (walpub, walcat), built
// once per test binary.
func tool(t *testing.T, name string) string {
	t.Helper()
	toolsOnce.Do(func() {
		toolsDir, toolsErr = os.MkdirTemp("", "walpub-it-tools")
		if toolsErr != nil {
			return
		}
		for _, n := range []string{"walpub", "walcat"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(toolsDir, n), "github.com/walpub/walpub/tools/"+n).CombinedOutput()
			if err != nil {
				toolsErr = fmt.Errorf("go build %s: %v\n%s", n, err, out)
				return
			}
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return filepath.Join(toolsDir, name)
}

// run runs a command with home as its home and stdin as its input,
// failing the test unless it exits 0, and returns its stdout.
func run(t *testing.T, home, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = homeEnv(home)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// hopSeen is one message as hop_consume.py printed it.
type hopSeen struct {
	Model   string `json:"model"`
	ID      string `json:"id"`
	Sender  string `json:"sender"`
	Format  string `json:"format"`
	Test    bool   `json:"test"`
	Content any    `json:"content"`
}

func hopConsume(t *testing.T, home, python, url string, args ...string) []hopSeen {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out []byte
	for try := 1; ; try++ {
		cmd := hopCmd(ctx, home, python, "hop_consume.py", append([]string{url}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err == nil {
			break
		}
		// hop's consumer gives up on an error librdkafka would retry: the
		// group coordinator still loading the group metadata, which a
		// loaded broker can take seconds to do after the group topic is
		// made. Its output is whole or thrown away, so it starts again.
		if msg := stderr.String(); try < 5 && (strings.Contains(msg, "NOT_COORDINATOR") || strings.Contains(msg, "COORDINATOR_LOAD_IN_PROGRESS")) {
			t.Logf("hop_consume.py, try %d: the group coordinator is not ready; trying again", try)
			time.Sleep(2 * time.Second)
			continue
		}
		t.Fatalf("hop_consume.py: %v\n%s", err, stderr.String())
	}
	var seen []hopSeen
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var s hopSeen
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("hop_consume.py printed %q: %v", line, err)
		}
		seen = append(seen, s)
	}
	return seen
}

// topicIDs returns the value of every record on topic, by the _id it
// carries (as a UUID string), read from the beginning to the end with a
// kgo consumer over the PLAINTEXT listener: what walpub put on the topic.
// (Not read from walpub's journal: a journal whose records were all
// confirmed reclaims them when it closes.)
func topicIDs(t *testing.T, brokerList, topic string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := map[string][]byte{}
	_, err := kafkaoffsets.Consume(ctx, []kgo.Opt{kgo.SeedBrokers(strings.Split(brokerList, ",")...)}, topic,
		func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == hop.HeaderID {
					ids[uuidString(h.Value)] = r.Value
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestHopClientReadsWalpub: a hop user's setup — hop's auth.toml and the
// SASL_SSL listener (TLS + SCRAM, as Hopskotch is reached) — serves both:
// walpub publishes with the credential from auth.toml, and hop-client's
// own consumer, with the same file, decodes what `walpub --hop-format json`
// published as JSONBlob models, each with the _id walpub gave it and the
// credential's user as _sender, and skips what --test marked unless told
// not to.
func TestHopClientReadsWalpub(t *testing.T) {
	b := brokers(t)
	python := hopPython(t)
	ssl, ca := os.Getenv("KAFKA_SSL_BROKERS"), os.Getenv("KAFKA_SSL_CA")
	if ssl == "" || ca == "" {
		t.Fatal("KAFKA_SSL_BROKERS and KAFKA_SSL_CA are not set (scripts/kafka.sh env sets them)")
	}
	topic := topicName(t)
	createTopic(t, b, topic, 1)
	broker, _, _ := strings.Cut(ssl, ",")
	url := "kafka://" + broker + "/" + topic
	user := os.Getenv("KAFKA_SCRAM_USER")
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".config", "hop"), 0o700); err != nil {
		t.Fatal(err)
	}
	// As `hop auth add` writes it.
	auth := fmt.Sprintf("[[auth]]\nusername = %q\npassword = %q\nhostname = %q\nprotocol = \"SASL_SSL\"\nmechanism = \"SCRAM_SHA_512\"\nssl_ca_location = %q\n",
		user, os.Getenv("KAFKA_SCRAM_PASSWORD"), broker, ca)
	if err := os.WriteFile(filepath.Join(home, ".config", "hop", "auth.toml"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}

	var in strings.Builder
	const n = 200
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&in, `{"i": %d, "event": "S%06d", "far": 1.5e-9, "tags": ["a", "b"]}`+"\n", i, i)
		case 1:
			fmt.Fprintf(&in, "[%d, null, true, \"x\"]\n", i)
		case 2:
			fmt.Fprintf(&in, "\"line %d\"\n", i)
		case 3:
			fmt.Fprintf(&in, "%d\n", i)
		}
	}
	journal := filepath.Join(t.TempDir(), "walpub.journal")
	out := run(t, home, in.String(), tool(t, "walpub"), "--hop-format", "json", "--journal", journal, "--drain-timeout", "60s", url)
	if !strings.Contains(out, fmt.Sprintf("%d records journaled, %d confirmed", n, n)) ||
		!strings.Contains(out, fmt.Sprintf("hop credential %q for %s from %s (SCRAM-SHA-512 over TLS)", user, broker, filepath.Join(home, ".config", "hop", "auth.toml"))) {
		t.Fatalf("walpub: %s", out)
	}
	run(t, home, `{"test": true}`+"\n", tool(t, "walpub"), "--hop-format", "json", "--test", "--journal", journal, "--drain-timeout", "60s", url)
	ids := topicIDs(t, b, topic)
	if len(ids) != n+1 {
		t.Fatalf("%d distinct _id on the topic, want %d", len(ids), n+1)
	}
	// What walpub put on the topic is its input, each line once.
	canon := func(b []byte) string {
		t.Helper()
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		c, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(c)
	}
	onTopic := map[string]int{}
	for _, v := range ids {
		onTopic[canon(v)]++
	}
	for _, line := range strings.Split(strings.TrimSpace(in.String()), "\n") {
		c := canon([]byte(line))
		if onTopic[c] == 0 {
			t.Fatalf("input line %s is not on the topic", line)
		}
		onTopic[c]--
	}

	check := func(seen []hopSeen, wantTest bool) {
		t.Helper()
		distinct := map[string]bool{}
		tests := 0
		for _, s := range seen {
			value, ok := ids[s.ID]
			if !ok {
				t.Fatalf("hop read a message with _id %q, which walpub did not publish: %+v", s.ID, s)
			}
			var want any
			if err := json.Unmarshal(value, &want); err != nil {
				t.Fatal(err)
			}
			if s.Model != "JSONBlob" || s.Format != hop.FormatJSON || s.Sender != user || !reflect.DeepEqual(s.Content, want) {
				t.Fatalf("hop read _id %s as %s (format %q, sender %q) with content %#v; walpub sent %s", s.ID, s.Model, s.Format, s.Sender, s.Content, value)
			}
			if s.Test {
				tests++
			}
			distinct[s.ID] = true
		}
		wantN, wantTests := n, 0
		if wantTest {
			wantN, wantTests = n+1, 1
		}
		if len(distinct) != wantN || tests != wantTests {
			t.Fatalf("hop read %d messages, %d distinct _id, %d test messages; want %d and %d", len(seen), len(distinct), tests, wantN, wantTests)
		}
		t.Logf("hop-client (auth.toml, SASL_SSL) read %d messages (%d distinct _id, %d test) as JSONBlob, each with the _id walpub published", len(seen), len(distinct), tests)
	}
	check(hopConsume(t, home, python, url, "--auth"), false)
	check(hopConsume(t, home, python, url, "--auth", "--include-test"), true)
}

// TestHopClientJournalImported: hop-client's RobustProducer is killed
// (SIGKILL) while publishing; walcat import-hop moves what its journal
// still holds to a walpub journal, walpub sends it, and every message whose
// hop write() returned is on the topic, every copy with the _id hop gave
// it. A second import appends nothing.
func TestHopClientJournalImported(t *testing.T) {
	b := brokers(t)
	python := hopPython(t)
	home := t.TempDir() // no hop credentials: the PLAINTEXT listener
	// hop writes faster than it sends: killed after a few thousand writes,
	// it leaves many of them in its journal. Should it have caught up
	// anyway, a new round kills it later.
	var (
		url, topic, dir, hopJournal string
		written                     map[int]string
		j                           *hop.Journal
	)
	for round, killAt := 1, 3000; ; round, killAt = round+1, killAt*2 {
		topic = topicName(t)
		createTopic(t, b, topic, 1)
		url = "kafka://" + strings.Split(b, ",")[0] + "/" + topic
		dir = t.TempDir()
		hopJournal = filepath.Join(dir, "publisher.journal")
		written = killHopProducer(t, home, python, url, hopJournal, killAt)
		// What hop itself still had to send.
		var err error
		if j, err = hop.ReadJournal(hopJournal, false); err != nil {
			t.Fatalf("the killed hop-client's journal: %v", err)
		}
		t.Logf("round %d: hop killed after %d writes returned; its journal: %d records, %d sent, %d pending, %d torn bytes",
			round, len(written), j.Records, j.Sent, len(j.Pending), j.TornBytes)
		if len(j.Pending) > 0 {
			break
		}
		if round == 3 {
			t.Fatalf("hop was killed with nothing pending %d times: the import has nothing to do", round)
		}
	}

	walJournal := filepath.Join(dir, "walpub.journal")
	out := run(t, home, "", tool(t, "walcat"), "import-hop", hopJournal, walJournal)
	if !strings.Contains(out, fmt.Sprintf("%d messages appended", len(j.Pending))) {
		t.Fatalf("import-hop: %s", out)
	}
	out = run(t, home, "", tool(t, "walpub"), "--journal", walJournal, "--drain-timeout", "60s", url)
	if !strings.Contains(out, fmt.Sprintf("0 records journaled, %d confirmed by the broker", len(j.Pending))) ||
		!strings.Contains(out, " 0 unconfirmed") {
		t.Fatalf("walpub: %s", out)
	}
	out = run(t, home, "", tool(t, "walcat"), "import-hop", hopJournal, walJournal)
	if !strings.Contains(out, fmt.Sprintf("nothing appended, %d already imported", len(j.Pending))) {
		t.Fatalf("second import-hop: %s", out)
	}

	// Every copy on the topic carries the _id hop gave its message.
	copies := map[int]int{}
	for _, r := range readAll(t, b, topic) {
		var v struct{ I *int }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.I == nil {
			t.Fatalf("a record on the topic is not one of hop's messages: %q", r.Value)
		}
		var id string
		for _, h := range r.Headers {
			if h.Key == hop.HeaderID && len(h.Value) == 16 {
				id = uuidString(h.Value)
			}
		}
		if want, ok := written[*v.I]; ok && id != want {
			t.Fatalf("message %d on the topic has _id %q; hop gave it %s", *v.I, id, want)
		}
		copies[*v.I]++
	}
	lost, dups := 0, 0
	for i := range written {
		switch {
		case copies[i] == 0:
			lost++
		case copies[i] > 1:
			dups += copies[i] - 1
		}
	}
	if lost > 0 {
		t.Fatalf("%d of the %d messages whose hop write() returned are not on the topic", lost, len(written))
	}
	t.Logf("all %d messages whose write() returned are on the topic with hop's _id (%d duplicates; %d records on the topic)",
		len(written), dups, sumValues(copies))
}

// killHopProducer runs hop_produce.py (hop's RobustProducer, journal
// hopJournal) and kills it with SIGKILL once killAt of its write() calls
// have returned. It returns the number and _id of every message whose
// write() returned.
func killHopProducer(t *testing.T, home, python, url, hopJournal string, killAt int) map[int]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := hopCmd(ctx, home, python, "hop_produce.py", url, hopJournal, strconv.Itoa(20*killAt))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	written := map[int]string{} // message number -> the _id hop gave it
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var i int
		var id string
		if _, err := fmt.Sscan(sc.Text(), &i, &id); err != nil {
			t.Fatalf("hop_produce.py printed %q", sc.Text())
		}
		written[i] = id
		if len(written) == killAt {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	werr := cmd.Wait()
	if len(written) < killAt {
		t.Fatalf("hop_produce.py stopped after %d writes: %v\n%s", len(written), werr, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("hop_produce.py was not killed: %v", werr)
	}
	return written
}

// uuidString formats a 16-byte _id as Python's str(uuid.UUID(bytes=...)).
func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func sumValues(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// readAll reads every record of topic up to its end with a kgo consumer
// (kcat prints headers only as text).
func readAll(t *testing.T, brokerList, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []*kgo.Record
	_, err := kafkaoffsets.Consume(ctx, []kgo.Opt{kgo.SeedBrokers(strings.Split(brokerList, ",")...)}, topic,
		func(r *kgo.Record) { out = append(out, r) })
	if err != nil {
		t.Fatalf("reading %s: %v", topic, err)
	}
	return out
}
