package kafkaoffsets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEnd(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 1, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := End(ctx, cl, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 2 || ends[0] != 0 || ends[1] != 3 {
		t.Fatalf("End = %v, want map[0:0 1:3]", ends)
	}
	if _, err := End(ctx, cl, "missing"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("End of a missing topic: %v, want ErrUnknownTopic", err)
	}

	// Consume reads the three records, and none produced after it started.
	var got []string
	n, err := Consume(ctx, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "t", func(r *kgo.Record) {
		got = append(got, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
		if len(got) == 1 {
			cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 1, Value: []byte("late")})
		}
	})
	if err != nil || n != 3 || strings.Join(got, " ") != "1/0 1/1 1/2" {
		t.Fatalf("Consume: %d records %q, %v", n, got, err)
	}
	if _, err := Consume(ctx, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, "missing", func(*kgo.Record) {}); err == nil {
		t.Fatal("Consume of a missing topic: no error")
	}
}

// TestReadTransactions reads a partition that ends with transaction
// markers: read_committed gets the committed records only, read_uncommitted
// the aborted ones too, and both stop at the end (a marker, never returned).
func TestReadTransactions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	cl, err := kgo.NewClient(seeds, kgo.TransactionalID("x"), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v := fmt.Sprint(bool(commit))
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		level kgo.IsolationLevel
		want  string
	}{
		{kgo.ReadCommitted(), "[true true]"},
		{kgo.ReadUncommitted(), "[true true false false]"},
	} {
		var got []string
		if _, err := Consume(ctx, []kgo.Opt{seeds, kgo.FetchIsolationLevel(tc.level)}, "t",
			func(r *kgo.Record) { got = append(got, string(r.Value)) }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("read %v, want %s", got, tc.want)
		}
	}
}

// TestStable: the last stable offset stops before a transaction still open,
// and reaches the end once it is committed; End counts its records at once.
func TestStable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("stable-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	both := func() (map[int32]int64, map[int32]int64) {
		t.Helper()
		ends, err := End(ctx, cl, "t")
		if err != nil {
			t.Fatal(err)
		}
		stable, err := Stable(ctx, cl, "t")
		if err != nil {
			t.Fatal(err)
		}
		return ends, stable
	}

	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if ends, stable := both(); ends[0] != 2 || stable[0] != 0 {
		t.Fatalf("transaction open: End = %v, Stable = %v, want 2 and 0", ends, stable)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The commit marker takes an offset; Stable reaches the end once it is
	// written.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ends, stable := both()
		if ends[0] == 3 && stable[0] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed: End = %v, Stable = %v, want 3 and 3", ends, stable)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Stable(ctx, cl, "missing"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Stable of a missing topic: %v, want ErrUnknownTopic", err)
	}
}
