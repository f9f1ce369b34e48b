package walpub

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/walpub/walpub/internal/headers"
	"github.com/walpub/walpub/internal/kafkaoffsets"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// childEnv makes the test binary run walpub itself (os.Args after "--"),
// for the tests that kill a walpub process.
const childEnv = "WALPUB_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(Main(context.Background(), args, Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: noHopHome}))
	}
	goleak.VerifyTestMain(m)
}

// noHopHome is os.Getenv without HOME and XDG_CONFIG_HOME, so that a
// walpub child process never reads the hop-client credentials of the
// machine's user.
func noHopHome(k string) string {
	if k == "HOME" || k == "XDG_CONFIG_HOME" {
		return ""
	}
	return os.Getenv(k)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// walpub runs Main in this process with stdin as its input.
func walpub(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut testutil.SyncBuffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	return result{out.String(), errOut.String(), code}
}

// signalled runs walpub (Main) in a goroutine with stdin and a signal
// channel the test sends on; done gives its exit status.
type signalled struct {
	sigs        chan os.Signal
	done        chan int
	out, errOut testutil.SyncBuffer
}

func startSignalled(stdin io.Reader, args ...string) *signalled {
	s := &signalled{sigs: make(chan os.Signal, 2), done: make(chan int)}
	go func() {
		s.done <- Main(context.Background(), args, Env{Stdin: stdin, Stdout: &s.out, Stderr: &s.errOut, Signals: s.sigs})
	}()
	return s
}

// deadURL names a loopback port where nothing listens.
func deadURL(t *testing.T, topic string) string {
	t.Helper()
	return "kafka://" + testutil.DeadAddr(t) + "/" + topic
}

// readTopic returns every record of topic, in offset order per partition.
func readTopic(t *testing.T, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	return readTopicOpts(t, addrs, topic)
}

// readTopicOpts is readTopic with client options (SASL, TLS).
func readTopicOpts(t *testing.T, addrs []string, topic string, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	_, err := kafkaoffsets.Consume(ctx, append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...), topic,
		func(r *kgo.Record) { out = append(out, r) })
	if err != nil {
		t.Fatalf("reading %s: %v", topic, err)
	}
	return out
}

func values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}

func header(r *kgo.Record, key string) []byte {
	v, _ := headers.Value(r, key)
	return v
}

// lines returns "prefix1\n" ... "prefixN\n".
func lines(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

// journalInfo looks at a journal without a lock (another process may hold
// it). A look that meets a record half written is retried.
func journalInfo(t *testing.T, dir string) (wal.Info, bool) {
	t.Helper()
	v, err := wal.OpenView(dir)
	if err != nil {
		return wal.Info{}, false
	}
	defer v.Close()
	return v.Info(), true
}

// waitUntil polls cond; the minute is a bound for a hung test, not a
// timing assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after a minute: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
