package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const benchTopic = "walpub-bench"

// producerFunc sends up to n records of payloads from pl to topic on
// brokers, stopping early at deadline, and returns once every sent record
// is confirmed. It reports how many records it sent and how long the timed
// part took (from the first Write or Produce to the end of Flush).
type producerFunc func(ctx context.Context, brokers []string, topic, dir string, pl *payloads, n int64, deadline time.Duration) (int64, time.Duration, error)

// producers holds the bare kgo client and, when adapter/kafka builds, the
// robust producer (registered in producer_walpub.go).
var producers = map[string]producerFunc{"kgo": runKgo}

// bareClient returns a bare franz-go client, idempotent (the default),
// acks=all, every other option at its default, warmed up (metadata,
// producer ID, connections) by one record of pl.
func bareClient(ctx context.Context, brokers []string, topic string, pl *payloads) (*kgo.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		return nil, err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: pl.next()}).FirstErr(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("warm-up produce: %w", err)
	}
	return cl, nil
}

// failures counts the records a client's promises report failed.
type failures struct {
	n     atomic.Int64
	first atomic.Value
}

func (f *failures) promise(_ *kgo.Record, err error) {
	if err != nil && f.n.Add(1) == 1 {
		f.first.Store(err)
	}
}

func (f *failures) err() error {
	if n := f.n.Load(); n > 0 {
		return fmt.Errorf("%d records failed, first: %v", n, f.first.Load())
	}
	return nil
}

// runKgo is the reference: bareClient producing each record as it comes.
func runKgo(ctx context.Context, brokers []string, topic, _ string, pl *payloads, n int64, maxTime time.Duration) (int64, time.Duration, error) {
	cl, err := bareClient(ctx, brokers, topic, pl)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	var failed failures
	var sent int64
	start := time.Now()
	deadline := start.Add(maxTime)
	for sent < n {
		cl.Produce(ctx, &kgo.Record{Value: pl.next()}, failed.promise)
		sent++
		if sent%256 == 0 && time.Now().After(deadline) {
			break
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return sent, 0, err
	}
	return sent, time.Since(start), failed.err()
}

// runProducer is the child process of a producer measurement. broker is
// "kfake" (a cluster started in this process) or "real" (KAFKA_BROKERS).
func runProducer(name, broker, dir string, n int64, maxTime time.Duration, prof string) (*childResult, error) {
	fn, ok := producers[name]
	if !ok {
		return nil, fmt.Errorf("producer %q is not built in", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var brokers []string
	topic := benchTopic
	switch broker {
	case "kfake":
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		defer c.Close()
		brokers = c.ListenAddrs()
	case "real":
		brokers = strings.Split(os.Getenv("KAFKA_BROKERS"), ",")
		topic = fmt.Sprintf("%s-%d", benchTopic, time.Now().UnixNano())
		if err := createTopic(ctx, brokers, topic, 3); err != nil {
			return nil, err
		}
		defer deleteTopic(brokers, topic)
	default:
		return nil, fmt.Errorf("unknown broker %q", broker)
	}
	stop, err := startProfile(prof)
	if err != nil {
		return nil, err
	}
	u := getUsage()
	sent, elapsed, err := fn(ctx, brokers, topic, dir, newPayloads(kib), n, maxTime)
	extra := addUsage(nil, u) // includes the warm-up and, for kfake, the broker
	stop()
	if err != nil {
		return nil, err
	}
	return &childResult{Records: sent, Bytes: sent * kib, Seconds: elapsed.Seconds(), Extra: extra}, nil
}

func createTopic(ctx context.Context, brokers []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = topic
	t.NumPartitions = partitions
	t.ReplicationFactor = 1
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

func deleteTopic(brokers []string, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{topic}
	t := kmsg.NewDeleteTopicsRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	req.RequestWith(ctx, cl)
}
