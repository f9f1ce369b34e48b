package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/kafkaoffsets"
	"github.com/walpub/walpub/internal/testutil"
)

const skipMessage = "KAFKA_BROKERS not set; run scripts/kafka.sh start and eval $(scripts/kafka.sh env) first, or use .ci/run"

// brokers returns $KAFKA_BROKERS, skipping the test when it is unset. A
// configured run needs kcat as its independent consumer: without it the test
// fails rather than skips.
func brokers(t *testing.T) string {
	t.Helper()
	b := os.Getenv("KAFKA_BROKERS")
	if b == "" {
		t.Skip(skipMessage)
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("KAFKA_BROKERS is set but kcat is not installed (apt-get install kcat): %v", err)
	}
	return b
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// topicName returns a topic name unique to this test and this run.
func topicName(t *testing.T) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	return fmt.Sprintf("walpub-it-%s-%d", name, time.Now().UnixNano())
}

// createTopic creates topic with the given partitions and the broker's
// default replication factor (1 on a single broker, 3 on the cluster of
// scripts/kafka.sh) through a plain kgo client, and waits until every
// partition has a leader.
func createTopic(t *testing.T, brokerList, topic string, partitions int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokerList, ",")...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic = topic
	rt.NumPartitions = int32(partitions)
	rt.ReplicationFactor = -1 // the broker's default.replication.factor
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			t.Fatalf("creating topic %s: %v", topic, err)
		}
	}

	for {
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		mreq.Topics = append(mreq.Topics, mt)
		mresp, err := mreq.RequestWith(ctx, cl)
		if err == nil && len(mresp.Topics) == 1 && mresp.Topics[0].ErrorCode == 0 &&
			len(mresp.Topics[0].Partitions) == partitions {
			ready := true
			for _, p := range mresp.Topics[0].Partitions {
				ready = ready && p.ErrorCode == 0 && p.Leader >= 0
			}
			if ready {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s has no leaders after creation (last error %v)", topic, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// message is one record as the independent consumer saw it.
type message struct {
	partition int
	key       string
	value     string
}

// consume reads topic from the beginning to its end with kcat, the
// independent consumer, over the PLAINTEXT listener.
func consume(t *testing.T, brokerList, topic string, args ...string) []message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-C", "-q", "-b", brokerList, "-t", topic,
		"-o", "beginning", "-e", "-f", `%p\t%k\t%s\n`}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C -t %s: %v\n%s", topic, err, stderr.String())
	}
	var msgs []message
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.SplitN(line, "\t", 3)
		if len(fields) != 3 {
			t.Fatalf("kcat printed an unexpected line %q", line)
		}
		var p int
		if _, err := fmt.Sscan(fields[0], &p); err != nil {
			t.Fatalf("kcat printed an unexpected partition in %q", line)
		}
		msgs = append(msgs, message{partition: p, key: fields[1], value: fields[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading kcat output: %v", err)
	}
	return msgs
}

// modeOptions returns opts, with kafka.WithExactlyOnce("") added when
// exactlyOnce is set.
func modeOptions(exactlyOnce bool, opts ...kafka.Option) []kafka.Option {
	if exactlyOnce {
		return append(opts, kafka.WithExactlyOnce(""))
	}
	return opts
}

// consumeCommitted reads topic from the beginning to its end with a kgo
// consumer, read_committed.
func consumeCommitted(t *testing.T, brokerList, topic string) []message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var msgs []message
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(brokerList, ",")...), kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	_, err := kafkaoffsets.Consume(ctx, opts, topic,
		func(r *kgo.Record) {
			msgs = append(msgs, message{partition: int(r.Partition), key: string(r.Key), value: string(r.Value)})
		})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// drain flushes p (waiting up to 2 minutes for every record written to be
// confirmed; after names what came before, for the failure message),
// closes it, and returns its stats as they were after the flush. It fails
// the test if a record was dead-lettered: the broker refuses none of the
// records the tests write.
func drain(t *testing.T, ctx context.Context, p *kafka.Producer, after string) kafka.Stats {
	t.Helper()
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatalf("Flush%s: %v (stats %+v)", after, err, p.Stats())
	}
	st := p.Stats()
	if err := p.Close(fctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("producer stats after Flush: %+v", st)
	if st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered", st.DeadLettered)
	}
	return st
}

// verifyOptions tunes verify.
type verifyOptions struct {
	// allowExtra accepts records on the broker that are not in want: in the
	// kill -9 test, a Write may return (or journal its record) just before
	// the child is killed and prints its index.
	allowExtra bool
	// exactlyOnce reads read_committed, with kcat and with a kgo consumer,
	// and fails on any duplicate.
	exactlyOnce bool
}

// verified is what verify counted on the broker.
type verified struct {
	written    int // len(want)
	messages   int // messages on the topic, duplicates included
	duplicates int // messages beyond the first copy of a record
	missing    int // records of want not on the topic: lost
}

// verify reads topic back with kcat and checks the producer's promises
// against want, the keys of every record whose Write returned, in write
// order; every key is distinct and keys sort in write order (the tests
// zero-pad their numbers). It fails the test for a lost record, a value
// that does not match its key, and, per partition, a record whose first copy
// arrived before the first copy of a record written earlier. Duplicates are
// counted, logged and returned.
func verify(t *testing.T, brokerList, topic string, want []string, opts verifyOptions) verified {
	t.Helper()
	if !opts.exactlyOnce {
		return check(t, "kcat", consume(t, brokerList, topic), want, opts)
	}
	v := check(t, "kcat read_committed", consume(t, brokerList, topic, "-X", "isolation.level=read_committed"), want, opts)
	check(t, "kgo read_committed", consumeCommitted(t, brokerList, topic), want, opts)
	return v
}

// check is verify's check of the messages a consumer read; it returns what
// it counted.
func check(t *testing.T, consumer string, msgs []message, want []string, opts verifyOptions) verified {
	t.Helper()
	if len(want) == 0 {
		// Nothing to find: every check below would pass, whatever the
		// topic holds (with allowExtra, even garbage).
		t.Errorf("%s: no record was written: there is nothing to verify", consumer)
	}
	wanted := make(map[string]bool, len(want))
	for _, k := range want {
		wanted[k] = true
	}
	seen := make(map[string]int, len(msgs))
	lastFirst := map[int]string{} // per partition: the last key seen for the first time
	var extra, outOfOrder, badValue []string
	for _, m := range msgs {
		if m.value != valueFor(m.key) {
			badValue = append(badValue, fmt.Sprintf("%s=%q", m.key, m.value))
		}
		seen[m.key]++
		if seen[m.key] > 1 {
			continue
		}
		if !wanted[m.key] {
			extra = append(extra, m.key)
		}
		if last, ok := lastFirst[m.partition]; ok && m.key < last {
			outOfOrder = append(outOfOrder, fmt.Sprintf("p%d: %s after %s", m.partition, m.key, last))
		}
		lastFirst[m.partition] = m.key
	}
	var missing []string
	for _, k := range want {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%s: wrote %d records; the broker has %d messages, %d distinct, %d duplicates, %d not in the written set, %d missing",
		consumer, len(want), len(msgs), len(seen), dups, len(extra), len(missing))
	if opts.exactlyOnce && dups > 0 {
		t.Errorf("%s: %d DUPLICATES with exactly once", consumer, dups)
	}
	if len(missing) > 0 {
		t.Errorf("LOST %d of %d records whose Write returned; first: %v", len(missing), len(want), head(missing))
	}
	if len(extra) > 0 && !opts.allowExtra {
		t.Errorf("%d records on the broker were never written: %v", len(extra), head(extra))
	}
	if len(badValue) > 0 {
		t.Errorf("%d records have a value that does not match their key: %v", len(badValue), head(badValue))
	}
	if len(outOfOrder) > 0 {
		t.Errorf("%d records arrived before a record written earlier to the same partition: %v", len(outOfOrder), head(outOfOrder))
	}
	return verified{written: len(want), messages: len(msgs), duplicates: dups, missing: len(missing)}
}

func head(s []string) []string {
	return s[:min(len(s), 10)]
}

// valueFor is the value every test writes with a key, so that verify can
// tell a record's value was not mixed up with another's.
func valueFor(key string) string {
	return "value-of-" + key
}

// record returns the record the tests write for key.
func record(key string) *kgo.Record {
	return &kgo.Record{Key: []byte(key), Value: []byte(valueFor(key))}
}

// newLogger returns a debug-level logger into a buffer, whose last lines
// the test prints if it fails.
func newLogger(t *testing.T) (*slog.Logger, *testutil.SyncBuffer) {
	buf := new(testutil.SyncBuffer)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		t.Logf("last producer log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startWriter writes records with keys prefix-000000, prefix-000001, ...
// through p in a goroutine, sleeping for every after each write, until the
// returned function is called; that function stops the writer and returns
// the keys whose Write returned nil. It is also called at cleanup, so that
// a test that fails half-way leaves no writer behind.
func startWriter(t *testing.T, p *kafka.Producer, prefix string, every time.Duration) (stop func() []string) {
	stopCh := make(chan struct{})
	result := make(chan []string, 1)
	go func() {
		ctx := context.Background()
		result <- writeKeys(t, func(r *kgo.Record) error { return p.Write(ctx, r) }, prefix, 1<<30, stopCh, every)
	}()
	stop = sync.OnceValue(func() []string {
		close(stopCh)
		return <-result
	})
	t.Cleanup(func() { stop() })
	return stop
}

// newProducer opens a producer and closes it at cleanup (with a short
// deadline: a test that got there normally has closed it already).
func newProducer(t *testing.T, url string, opts ...kafka.Option) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(url, opts...)
	if err != nil {
		t.Fatalf("NewProducer(%s): %v", url, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// writeKeys writes records with keys prefix-000000, prefix-000001, ... through
// write, pacing itself, until stop is closed or n records are written, and
// returns the keys whose write returned nil. Any write error fails the test.
func writeKeys(t *testing.T, write func(*kgo.Record) error, prefix string, n int, stop <-chan struct{}, every time.Duration) []string {
	t.Helper()
	var keys []string
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return keys
		default:
		}
		k := fmt.Sprintf("%s-%06d", prefix, i)
		if err := write(record(k)); err != nil {
			t.Errorf("Write(%s): %v", k, err)
			return keys
		}
		keys = append(keys, k)
		if every > 0 {
			time.Sleep(every)
		}
	}
	return keys
}
