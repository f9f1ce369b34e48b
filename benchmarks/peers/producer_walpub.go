//go:build !noadapter

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/walpub/walpub/adapter/kafka"
)

func init() {
	producers["walpub"] = runRobust
	backlogFill = robustFill
	backlogOpen = robustOpen
}

func kafkaURL(brokers []string, topic string) string {
	u := "kafka://"
	for i, b := range brokers {
		if i > 0 {
			u += ","
		}
		u += b
	}
	return u + "/" + topic
}

// runRobust sends through the robust producer with its journal in dir and
// every option at its default.
func runRobust(ctx context.Context, brokers []string, topic, dir string, pl *payloads, n int64, maxTime time.Duration) (int64, time.Duration, error) {
	p, err := kafka.NewProducer(kafkaURL(brokers, topic), kafka.WithJournal(dir))
	if err != nil {
		return 0, 0, err
	}
	defer p.Close(ctx)
	if err := p.Write(ctx, &kgo.Record{Value: pl.next()}); err != nil {
		return 0, 0, fmt.Errorf("warm-up write: %w", err)
	}
	if err := p.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("warm-up flush: %w", err)
	}
	var sent int64
	start := time.Now()
	deadline := start.Add(maxTime)
	for sent < n {
		if err := p.Write(ctx, &kgo.Record{Value: pl.next()}); err != nil {
			return sent, 0, fmt.Errorf("write %d: %w", sent, err)
		}
		sent++
		if sent%256 == 0 && time.Now().After(deadline) {
			break
		}
	}
	if err := p.Flush(ctx); err != nil {
		return sent, 0, err
	}
	elapsed := time.Since(start)
	if err := p.Close(ctx); err != nil {
		return sent, elapsed, fmt.Errorf("close: %w", err)
	}
	return sent, elapsed, nil
}

// unreachable is a loopback port nothing listens on: the producer keeps
// every record journaled and keeps retrying.
const unreachable = "kafka://127.0.0.1:1/" + benchTopic

// robustFill journals n records of 1 KiB with no broker to send them to,
// then closes, leaving them all pending.
func robustFill(dir string, n int64) (*childResult, error) {
	p, err := kafka.NewProducer(unreachable, kafka.WithJournal(dir))
	if err != nil {
		return nil, err
	}
	pl := newPayloads(kib)
	ctx := context.Background()
	start := time.Now()
	for i := int64(0); i < n; i++ {
		if err := p.Write(ctx, &kgo.Record{Value: pl.next()}); err != nil {
			return nil, fmt.Errorf("write %d: %w", i, err)
		}
	}
	elapsed := time.Since(start)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("close: %w", err)
	}
	return &childResult{Records: n, Bytes: n * kib, Seconds: elapsed.Seconds()}, nil
}

// robustOpen opens the producer on the journal dir (broker unreachable),
// holds it for hold while the sender works through the backlog, and
// reports what it saw.
func robustOpen(dir string, hold time.Duration) (*childResult, error) {
	start := time.Now()
	p, err := kafka.NewProducer(unreachable, kafka.WithJournal(dir))
	if err != nil {
		return nil, err
	}
	opened := time.Since(start)
	time.Sleep(hold)
	st := p.Stats()
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("close: %w", err)
	}
	return &childResult{
		Records: int64(st.Queued + st.InFlight), Seconds: opened.Seconds(),
		Extra: map[string]float64{
			"queued": float64(st.Queued), "inflight": float64(st.InFlight),
			"journal_bytes": float64(st.JournalBytes),
		},
	}, nil
}
