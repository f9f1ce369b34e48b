package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSteadyState is a journal's life under a producer: every op
// appends a 100 B record and acknowledges the oldest pending one, so the
// backlog stays at its size while acknowledged segments are reclaimed
// behind it. The log starts with a backlog of pending records and, for
// history>0, after that many records were appended and acknowledged (and
// their segments reclaimed). Segments are 8 MiB so that the run rotates
// and reclaims often. An op must cost the same whatever the backlog and
// the history: compare the sub-benchmarks with benchstat.
func BenchmarkSteadyState(b *testing.B) {
	for _, c := range []struct{ backlog, history int }{
		{1_000, 0},
		{1_000_000, 0},
		{1_000, 2_000_000},
		{1_000_000, 2_000_000},
	} {
		b.Run(fmt.Sprintf("backlog=%d/history=%d", c.backlog, c.history), func(b *testing.B) {
			l, err := Open(b.TempDir(), WithSegmentSize(8<<20))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := randRecord(rand.New(rand.NewPCG(4, 4)), 100)
			batch := make([][]byte, 1000)
			for i := range batch {
				batch[i] = rec
			}
			acks := make([]uint64, len(batch))
			for k := 0; k < c.history; k += len(batch) {
				first, err := l.AppendBatch(batch)
				if err != nil {
					b.Fatal(err)
				}
				for i := range acks {
					acks[i] = first + uint64(i)
				}
				if err := l.Ack(acks...); err != nil {
					b.Fatal(err)
				}
			}
			for k := 0; k < c.backlog; k += len(batch) {
				if _, err := l.AppendBatch(batch[:min(len(batch), c.backlog-k)]); err != nil {
					b.Fatal(err)
				}
			}
			st := l.Stats()
			if st.Pending != c.backlog || st.NextSeq != uint64(c.history+c.backlog+1) {
				b.Fatalf("set up %d pending, next seq %d; want %d, %d", st.Pending, st.NextSeq, c.backlog, c.history+c.backlog+1)
			}
			oldest := uint64(c.history + 1)
			thread, proc := threadCPU(), processCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := l.Append(rec); err != nil {
					b.Fatal(err)
				}
				if err := l.Ack(oldest); err != nil {
					b.Fatal(err)
				}
				oldest++
			}
			b.StopTimer()
			reportCPU(b, thread, proc, b.N)
			st = l.Stats()
			if st.Pending != c.backlog {
				b.Fatalf("%d pending after the run, want the backlog %d", st.Pending, c.backlog)
			}
			// What reclamation left: it must not grow with the history.
			b.ReportMetric(float64(st.DiskBytes)/(1<<20), "disk-MiB")
		})
	}
}
