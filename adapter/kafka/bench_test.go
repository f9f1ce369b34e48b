package kafka

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/wal"
)

// benchBrokers returns the brokers to benchmark against: KAFKA_BROKERS
// (comma-separated) when set, else an in-process kfake cluster that discards
// what it is sent (so that its memory does not grow with b.N).
func benchBrokers(b *testing.B, topic string) []string {
	b.Helper()
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		brokers := strings.Split(env, ",")
		createTopic(b, brokers, topic, 3)
		return brokers
	}
	return kfaketest.New(b, kfake.SeedTopics(3, topic), kfake.BlackholeProduce()).ListenAddrs()
}

// createTopic creates topic on a real broker if it does not exist.
func createTopic(b testing.TB, brokers []string, topic string, partitions int32) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, -1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 30000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			b.Fatalf("creating %s: %v", topic, err)
		}
	}
}

// BenchmarkProducer compares the robust producer with a bare franz-go
// producer (acks=all, idempotent) on 1 KiB records against the same broker.
// Each op is one record, counted once the broker confirmed it: the time
// includes the final flush (write-ns/op, for the robust producer, stops at
// the last Write). The ratio of the two MB/s figures is the cost
// of the journal; impl=robust-exactly-once is the robust producer with
// WithExactlyOnce (confirmed meaning committed), whose ratio to
// impl=robust is the cost of the transactions.
//
// The writer writes as fast as it can, faster than the sender delivers:
// past the first burst the handoff is full and the sender reads nearly
// every record back from the journal (journal-reads/op). The -flush1000
// variants wait for every 1000 records to be confirmed (Flush) before
// writing more, a writer the broker keeps up with: the sender takes every
// record from the handoff, and bare kgo flushes alike.
func BenchmarkProducer(b *testing.B) {
	// Distinct incompressible values, as real payloads tend to be: both
	// producers compress batches (snappy by default).
	const size = 1024
	pool := make([]byte, 4<<20)
	rand.Read(pool)
	value := func(i int) []byte {
		off := (i * 1031) % (len(pool) - size)
		return pool[off : off+size : off+size]
	}
	const flushEvery = 1000 // the -flush1000 variants
	robust := func(b *testing.B, topic string, flush int, opts ...Option) {
		brokers := benchBrokers(b, topic)
		var reads atomic.Int64
		p, err := NewProducer("kafka://"+strings.Join(brokers, ",")+"/"+topic,
			append([]Option{WithJournal(filepath.Join(b.TempDir(), "journal")),
				withJournalRead(func(uint64) { reads.Add(1) })}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		r := &kgo.Record{Key: []byte("key")}
		b.SetBytes(size)
		b.ReportAllocs()
		// A plain loop, not b.Loop: b.Loop stops the timer when it ends,
		// and the final Flush, the wait for the broker, must count.
		// write-ns/op is the time until the last Write returned.
		cpu := processCPU()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			r.Value = value(i) // Write keeps nothing of r
			if err := p.Write(ctx, r); err != nil {
				b.Fatal(err)
			}
			if flush > 0 && (i+1)%flush == 0 {
				if err := p.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "write-ns/op")
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportCPU(b, cpu, b.N)
		b.ReportMetric(float64(reads.Load())/float64(b.N), "journal-reads/op")
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if st := p.Stats(); st.DeadLettered != 0 {
			b.Fatalf("dead letters: %+v", st)
		}
	}
	// The journal's sync policy: the default (SyncEvery(journalSyncEvery))
	// against the others, so that the cost of the default shows.
	for _, pol := range []struct {
		name string
		opts []wal.Option
	}{{"default", nil}, {"never", []wal.Option{wal.WithSync(wal.SyncNever)}},
		{"every1s", []wal.Option{wal.WithSync(wal.SyncEvery(time.Second))}},
		{"every10ms", []wal.Option{wal.WithSync(wal.SyncEvery(10 * time.Millisecond))}}} {
		b.Run("impl=robust/journal="+pol.name, func(b *testing.B) { robust(b, "bench-robust", 0, WithWAL(pol.opts...)) })
	}
	b.Run("impl=robust-flush1000/journal=default", func(b *testing.B) { robust(b, "bench-robust", flushEvery) })
	b.Run("impl=robust-exactly-once/journal=default", func(b *testing.B) {
		robust(b, "bench-robust-eos", 0, WithExactlyOnce(""))
	})
	kgoBench := func(b *testing.B, flush int) {
		topic := "bench-kgo"
		brokers := benchBrokers(b, topic)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.DefaultProduceTopic(topic))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		var failed atomic.Int64
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		}
		b.SetBytes(size)
		b.ReportAllocs()
		cpu := processCPU()
		b.ResetTimer()
		for i := range b.N {
			cl.Produce(ctx, &kgo.Record{Key: []byte("key"), Value: value(i)}, promise)
			if flush > 0 && (i+1)%flush == 0 {
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportCPU(b, cpu, b.N)
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d records failed", n)
		}
	}
	b.Run("impl=kgo", func(b *testing.B) { kgoBench(b, 0) })
	b.Run("impl=kgo-flush1000", func(b *testing.B) { kgoBench(b, flushEvery) })
}

// reportCPU reports the process CPU time per record since start, the whole
// process included (with kfake, the broker too): on a busy machine it is a
// steadier measure of cost than the wall time.
func reportCPU(b *testing.B, start time.Duration, n int) {
	if used := processCPU() - start; used > 0 && n > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}
