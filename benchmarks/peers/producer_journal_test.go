package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestJournaledDeliversAll runs kgo+journal across a file boundary and
// consumes the topic: every record arrives once, in order within its
// partition, with the bytes written.
func TestJournaledDeliversAll(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, benchTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n := int64(mappedSize/(bufHeader+kib)) + 1000 // past the first file
	sent, _, err := runJournaled(ctx, c.ListenAddrs(), benchTopic, dir, newPayloads(kib), n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if sent != n {
		t.Fatalf("sent %d of %d", sent, n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "journal.*"))
	if len(files) != 2 {
		t.Fatalf("%d journal files, want 2 (the run must cross a file boundary)", len(files))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(benchTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// One partition: the warm-up record, then the journaled ones, in order.
	want := newPayloads(kib)
	var got int64
	for got < n+1 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for it := fs.RecordIter(); !it.Done(); got++ {
			if r := it.Next(); !bytes.Equal(r.Value, want.next()) {
				t.Fatalf("record %d of %d differs from what was written", got, n+1)
			}
		}
	}
	if extra := cl.PollRecords(ctxShort(t), 1); len(extra.Records()) > 0 {
		t.Fatalf("more than the %d records written", n+1)
	}
}

func ctxShort(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}
