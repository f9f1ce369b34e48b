// Command kgolines publishes the lines of its standard input to a topic
// with a bare franz-go client, every option at its default (idempotent,
// acks=all), and waits until each is confirmed: the client walpub is built
// on, with no journal, for benchmarks/footprint.sh to compare the peak
// resident memory of the walpub command with.
//
//	kgolines HOST:PORT TOPIC <lines
//
// Like walpub, it reads with a 256 KiB buffer and drops each line's
// newline (and a carriage return before it). The topic is created on first
// use where the broker allows it. It exits 1 if a record failed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kgolines HOST:PORT TOPIC <lines")
		os.Exit(2)
	}
	n, err := publish(os.Args[1], os.Args[2], os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kgolines: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kgolines: %d records confirmed\n", n)
}

// publish sends every line of in to topic and returns how many records the
// broker confirmed, or the first error.
func publish(broker, topic string, in io.Reader) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx := context.Background()
	var ok, failed atomic.Int64
	var first atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err == nil {
			ok.Add(1)
		} else if failed.Add(1) == 1 {
			first.Store(err)
		}
	}
	br := bufio.NewReaderSize(in, 256<<10)
	for {
		line, rerr := br.ReadBytes('\n')
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) > 0 {
			cl.Produce(ctx, &kgo.Record{Value: line}, promise)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return ok.Load(), rerr
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return ok.Load(), err
	}
	if failed.Load() > 0 {
		return ok.Load(), fmt.Errorf("%d records failed, the first with: %w", failed.Load(), first.Load().(error))
	}
	return ok.Load(), nil
}
