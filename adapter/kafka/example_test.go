package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
)

// The reference's context-manager usage: Close is deferred and drains.
func Example() {
	// An in-process broker stands in for a real one.
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, "events"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	dir, err := os.MkdirTemp("", "journal")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	p, err := kafka.NewProducer("kafka://"+cluster.ListenAddrs()[0]+"/events",
		kafka.WithJournal(filepath.Join(dir, "publisher.journal")),
		kafka.WithOnDelivery(func(r *kgo.Record) {
			fmt.Printf("delivered %s to %s at offset %d\n", r.Value, r.Topic, r.Offset)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx) // returns once every record is confirmed

	for _, m := range []string{"alpha", "beta", "gamma"} {
		if err := p.Write(ctx, &kgo.Record{Value: []byte(m)}); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// delivered alpha to events at offset 0
	// delivered beta to events at offset 1
	// delivered gamma to events at offset 2
}

// The explicit lifecycle, with a bound on how long Close may wait.
func ExampleProducer_Close() {
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, "events"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	dir, err := os.MkdirTemp("", "journal")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	p, err := kafka.NewProducer("kafka://"+cluster.ListenAddrs()[0], // records name their topic
		kafka.WithJournal(filepath.Join(dir, "publisher.journal")))
	if err != nil {
		log.Fatal(err)
	}
	for i := range 100 {
		r := &kgo.Record{Topic: "events", Key: []byte("sensor-1"), Value: fmt.Appendf(nil, "reading %d", i)}
		if err := p.Write(ctx, r); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil { // optional: wait for confirmations
		log.Fatal(err)
	}
	fmt.Println("delivered:", p.Stats().Delivered)

	closeCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Close(closeCtx); errors.Is(err, context.DeadlineExceeded) {
		fmt.Println("the rest stays journaled for the next run")
	} else if err != nil {
		log.Fatal(err)
	}
	if err := p.Write(ctx, &kgo.Record{Topic: "events"}); errors.Is(err, kafka.ErrClosed) {
		fmt.Println("closed")
	}
	// Output:
	// delivered: 100
	// closed
}

func ExampleDecodeRecord() {
	b := kafka.EncodeRecord(&kgo.Record{
		Topic:     "events",
		Key:       []byte("k"),
		Value:     []byte("hello"),
		Headers:   []kgo.RecordHeader{{Key: "_id", Value: []byte("0123456789abcdef")}},
		Timestamp: time.UnixMilli(1700000000000).UTC(),
	})
	fmt.Println(kafka.IsRecord(b), len(b))
	r, err := kafka.DecodeRecord(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s=%s %s %s\n", r.Topic, r.Key, r.Value, r.Headers[0].Value, r.Timestamp.UTC().Format(time.RFC3339))

	_, err = kafka.DecodeRecord(b[:len(b)-1])
	fmt.Println(errors.Is(err, kafka.ErrInvalidRecord), err)
	// Output:
	// true 55
	// events k=hello 0123456789abcdef 2023-11-14T22:13:20Z
	// true kafka: invalid journal record at byte 39: header value of 16 bytes overruns the 15 bytes left
}
