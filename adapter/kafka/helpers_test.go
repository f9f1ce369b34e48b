package kafka

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/walpub/walpub/internal/headers"
	"github.com/walpub/walpub/internal/kafkaoffsets"
)

// helperEnv selects a helper mode when the test binary is re-executed as a
// child process (see crash_test.go).
const helperEnv = "WALPUB_KAFKA_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

// holdProduces makes c hold every produce request until the returned
// channel is closed.
func holdProduces(c *kfake.Cluster) chan struct{} {
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	return release
}

// fastRetries makes the client and the producer retry quickly, so that
// fault tests do not sit in production-sized backoffs.
func fastRetries() []Option {
	return []Option{
		WithRetryBackoff(10*time.Millisecond, 200*time.Millisecond),
		WithClient(kgo.MetadataMinAge(10*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond })),
	}
}

// newTestProducer opens a producer on a fresh journal in t's temp dir and
// closes it when the test ends (if the test did not).
func newTestProducer(t testing.TB, url string, opts ...Option) (*Producer, string) {
	t.Helper()
	dir := t.TempDir() + "/journal"
	p, err := NewProducer(url, append(append([]Option{WithJournal(dir)}, fastRetries()...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p, dir
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readTopic consumes every record of topic, per partition in offset order.
func readTopic(t testing.TB, addrs []string, topic string) map[int32][]*kgo.Record {
	t.Helper()
	return readTopicWith(t, addrs, topic)
}

// readTopicWith is readTopic with more consumer options.
func readTopicWith(t testing.TB, addrs []string, topic string, opts ...kgo.Opt) map[int32][]*kgo.Record {
	t.Helper()
	out := make(map[int32][]*kgo.Record)
	_, err := kafkaoffsets.Consume(ctxTimeout(t, 30*time.Second), append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, opts...),
		topic, func(r *kgo.Record) { out[r.Partition] = append(out[r.Partition], r) })
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func header(r *kgo.Record, key string) []byte {
	v, _ := headers.Value(r, key)
	return v
}

// tally counts the copies of each _id on the topic.
type tally struct {
	copies map[string]int
	byID   map[string]*kgo.Record
}

func countIDs(t testing.TB, parts map[int32][]*kgo.Record) tally {
	t.Helper()
	tl := tally{copies: map[string]int{}, byID: map[string]*kgo.Record{}}
	for _, rs := range parts {
		for _, r := range rs {
			id := header(r, idHeader)
			if len(id) != idLen {
				t.Fatalf("record at %d/%d has _id %x", r.Partition, r.Offset, id)
			}
			k := hex.EncodeToString(id)
			tl.copies[k]++
			if tl.byID[k] == nil {
				tl.byID[k] = r
			}
		}
	}
	return tl
}

func (tl tally) duplicates() int {
	n := 0
	for _, c := range tl.copies {
		n += c - 1
	}
	return n
}

// deliveries counts OnDelivery calls.
type deliveries struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (d *deliveries) add(r *kgo.Record) {
	d.mu.Lock()
	d.recs = append(d.recs, r)
	d.mu.Unlock()
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.recs)
}

// testRecord is record i of a run: key k<i%keys>, value "v<i>" padded.
func testRecord(i, keys, pad int) *kgo.Record {
	v := fmt.Sprintf("v%08d", i)
	if pad > len(v) {
		v += strings.Repeat(".", pad-len(v))
	}
	return &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%keys), Value: []byte(v)}
}

// writeRecords writes testRecord(i, keys, pad) for i in [0, n) to p.
func writeRecords(t testing.TB, ctx context.Context, p *Producer, n, keys, pad int) {
	t.Helper()
	for i := range n {
		if err := p.Write(ctx, testRecord(i, keys, pad)); err != nil {
			t.Fatal(err)
		}
	}
}

func recordIndex(t testing.TB, r *kgo.Record) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(string(r.Value), "v%08d", &i); err != nil {
		t.Fatalf("value %.20q: %v", r.Value, err)
	}
	return i
}
