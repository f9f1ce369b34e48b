package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPublish publishes lines to an in-process broker and reads back what
// landed: one record per non-empty line, newline and carriage return
// dropped, in order.
func TestPublish(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broker := c.ListenAddrs()[0]
	in := "one\r\ntwo\n\nthree"
	n, err := publish(broker, "lines", strings.NewReader(in))
	if err != nil || n != 3 {
		t.Fatalf("publish = %d, %v; want 3 records", n, err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("lines"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < 3 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if want := []string{"one", "two", "three"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("landed %q, want %q", got, want)
	}
}

// TestPublishFails reports a failure when no record can be confirmed: the
// broker refuses the topic.
func TestPublishFails(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := publish(c.ListenAddrs()[0], "missing", strings.NewReader("x\n"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("publish to a topic the broker does not create succeeded")
		}
	case <-ctx.Done():
		t.Fatal("publish did not give up")
	}
}
