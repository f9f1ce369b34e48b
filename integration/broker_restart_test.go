package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/walpub/walpub/adapter/kafka"
)

// kafkaScript runs $KAFKA_SCRIPT (scripts/kafka.sh) with one command and
// its arguments, failing the test if it fails.
func kafkaScript(t *testing.T, args ...string) {
	t.Helper()
	if err := runKafkaScript(t, args...); err != nil {
		t.Fatal(err)
	}
}

// runKafkaScript is kafkaScript returning the error, for goroutines other
// than the test's.
func runKafkaScript(t *testing.T, args ...string) error {
	t.Helper()
	script := os.Getenv("KAFKA_SCRIPT")
	start := time.Now()
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s (%v): %s", script, strings.Join(args, " "), time.Since(start).Round(time.Millisecond),
		strings.TrimSpace(string(out)))
	return nil
}

// TestIntegrationBrokerRestart stops the broker with scripts/kafka.sh while
// a producer writes, keeps writing while it is down, starts it again, and
// checks after Flush that every record reached it. The outage must have
// happened: the broker's port refuses connections once it is stopped, and
// while it is down records are written and none is confirmed.
func TestIntegrationBrokerRestart(t *testing.T) {
	brokerRestart(t, false)
}

// TestIntegrationExactlyOnceBrokerRestart is TestIntegrationBrokerRestart
// with kafka.WithExactlyOnce: read_committed, every record exactly once.
func TestIntegrationExactlyOnceBrokerRestart(t *testing.T) {
	brokerRestart(t, true)
}

func brokerRestart(t *testing.T, exactlyOnce bool) {
	b := brokers(t)
	if os.Getenv("KAFKA_SCRIPT") == "" {
		t.Skip("KAFKA_SCRIPT not set (the path of scripts/kafka.sh, printed by scripts/kafka.sh env); needed to stop and start the broker")
	}
	topic := topicName(t)
	createTopic(t, b, topic, 2)
	logger, _ := newLogger(t)
	p := newProducer(t, "kafka://"+b+"/"+topic, modeOptions(exactlyOnce,
		kafka.WithJournal(t.TempDir()),
		kafka.WithLogger(logger),
		kafka.WithRetryBackoff(50*time.Millisecond, time.Second),
	)...)
	ctx := context.Background()

	// Whatever happens, leave a running broker for the tests after this one.
	brokerDown := false
	t.Cleanup(func() {
		if brokerDown {
			kafkaScript(t, "start")
		}
	})

	stopWriter := startWriter(t, p, "k", 2*time.Millisecond)
	time.Sleep(1500 * time.Millisecond)
	brokerDown = true
	kafkaScript(t, "stop")
	addr := strings.Split(b, ",")[0]
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("the broker at %s still accepts connections after kafka.sh stop", addr)
	}
	// Let confirmations the producer had received before the broker
	// went land.
	time.Sleep(500 * time.Millisecond)
	downStart := p.Stats()
	time.Sleep(2 * time.Second) // writes go on into the journal
	downEnd := p.Stats()
	kafkaScript(t, "start")
	brokerDown = false
	time.Sleep(1500 * time.Millisecond)
	keys := stopWriter()
	t.Logf("stats while the broker was down: %+v, then %+v", downStart, downEnd)
	if written(downEnd) <= written(downStart) {
		t.Errorf("no record was written while the broker was down")
	}
	if downEnd.Delivered != downStart.Delivered {
		t.Errorf("%d records were confirmed while the broker was down", downEnd.Delivered-downStart.Delivered)
	}

	drain(t, ctx, p, " after the broker restart")
	verify(t, b, topic, keys, verifyOptions{exactlyOnce: exactlyOnce})
}

// written is how many records the producer has journaled: confirmed,
// waiting or in flight, or dead-lettered.
func written(st kafka.Stats) int64 {
	return st.Delivered + int64(st.Queued) + int64(st.InFlight) + st.DeadLettered
}
