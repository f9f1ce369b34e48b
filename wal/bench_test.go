package wal

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAppend appends records of each size, one at a time or in
// batches of 100, under each sync policy (SyncAlways only where a sync is
// shared by a batch or a large record). Segments have the default size;
// Open and the final Close are outside the timer.
func BenchmarkAppend(b *testing.B) {
	policies := []struct {
		name string
		p    SyncPolicy
	}{{"never", SyncNever}, {"always", SyncAlways}, {"every10ms", SyncEvery(10 * time.Millisecond)}}
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
		for _, batch := range []int{1, 100} {
			if size.n == 1<<20 && batch > 1 {
				continue
			}
			for _, pol := range policies {
				if pol.name == "always" && batch == 1 && size.n < 1<<20 {
					continue
				}
				b.Run(fmt.Sprintf("size=%s/batch=%d/sync=%s", size.name, batch, pol.name), func(b *testing.B) {
					benchAppend(b, size.n, batch, WithSync(pol.p))
				})
			}
		}
	}
}

// BenchmarkAppendSync appends batches of 100 records of 100 B and 1 KiB
// to a log under SyncNever and calls Sync after each batch, as the
// benchmarks/peers workloads batch100-*-sync do: the cost of an explicit
// Sync (compare with sync=always of BenchmarkAppend, where AppendBatch
// syncs).
func BenchmarkAppendSync(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"1KiB", 1 << 10}} {
		b.Run(fmt.Sprintf("size=%s/batch=100", size.name), func(b *testing.B) {
			benchAppendSync(b, size.n, 100, true, WithSync(SyncNever))
		})
	}
}

// benchAppend appends records of n bytes, one at a time or in batches, to
// a log opened with opts; Open and Close are outside the timer.
func benchAppend(b *testing.B, n, batch int, opts ...Option) {
	benchAppendSync(b, n, batch, false, opts...)
}

// benchAppendSync is benchAppend, calling Sync after each Append or
// AppendBatch if sync is set.
func benchAppendSync(b *testing.B, n, batch int, sync bool, opts ...Option) {
	l, err := Open(b.TempDir(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := rand.New(rand.NewPCG(1, 1))
	recs := make([][]byte, batch)
	for i := range recs {
		recs[i] = randRecord(r, n)
	}
	b.SetBytes(int64(n * batch))
	b.ReportAllocs()
	// The appending goroutine keeps its thread, so that the thread's CPU
	// time is the appends' own: on a shared machine it varies less than
	// the wall-clock time, and the background work's is counted apart.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	thread, proc, ops := threadCPU(), processCPU(), 0
	for b.Loop() {
		if batch == 1 {
			_, err = l.Append(recs[0])
		} else {
			_, err = l.AppendBatch(recs)
		}
		if err == nil && sync {
			err = l.Sync()
		}
		if err != nil {
			b.Fatal(err)
		}
		ops++
	}
	reportCPU(b, thread, proc, ops)
}

// reportCPU reports, per op, the CPU time of the calling thread
// ("cpu-ns/op", where runtime.LockOSThread kept the benchmark since
// thread was read) and of the whole process ("proc-cpu-ns/op") since
// thread and proc were read, ops ops ago.
func reportCPU(b *testing.B, thread int64, proc time.Duration, ops int) {
	if ops == 0 || thread == 0 {
		return
	}
	b.ReportMetric(float64(threadCPU()-thread)/float64(ops), "cpu-ns/op")
	b.ReportMetric(float64(processCPU()-proc)/float64(ops), "proc-cpu-ns/op")
}

// BenchmarkAppendEncryption appends records of 100 B and 1 KiB, one at
// a time and in batches of 100 (SyncNever), without and with
// WithEncryption: the cost of sealing each record (compare enc=off with
// enc=on by benchstat).
func BenchmarkAppendEncryption(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"1KiB", 1 << 10}} {
		for _, batch := range []int{1, 100} {
			for _, enc := range []string{"off", "on"} {
				b.Run(fmt.Sprintf("size=%s/batch=%d/enc=%s", size.name, batch, enc), func(b *testing.B) {
					var opts []Option
					if enc == "on" {
						opts = append(opts, WithEncryption(testKey))
					}
					benchAppend(b, size.n, batch, opts...)
				})
			}
		}
	}
}

// benchLog returns a log of n records of size bytes each, open.
func benchLog(b *testing.B, dir string, n, size int) *Log {
	b.Helper()
	l, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	rec := randRecord(r, size)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = rec
	}
	for k := 0; k < n; k += len(batch) {
		if _, err := l.AppendBatch(batch[:min(len(batch), n-k)]); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkGet reads random records of 1 KiB from a log of 100 000.
func BenchmarkGet(b *testing.B) {
	const n = 100_000
	l := benchLog(b, b.TempDir(), n, 1<<10)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 3))
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Get(1 + r.Uint64N(n)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetInOrder reads the records of 1 KiB of a log of 100 000 in
// seq order, over and over, as the producer reads back what it could not
// hand over from memory: the records were written long before (their
// pages are not in the process), and each is read once.
func BenchmarkGetInOrder(b *testing.B) {
	const n = 100_000
	l := benchLog(b, b.TempDir(), n, 1<<10)
	defer l.Close()
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	thread, proc, ops := threadCPU(), processCPU(), 0
	for b.Loop() {
		if _, err := l.Get(1 + uint64(ops%n)); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	reportCPU(b, thread, proc, ops)
}

// BenchmarkPending replays the pending records of a closed log of 64 MiB
// of 100 B or 1 KiB records: Open (which verifies every live record), a
// full Pending iteration, Close ("open"); and the iteration alone on an
// open log ("iterate").
func BenchmarkPending(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100B", 100}, {"1KiB", 1 << 10}} {
		b.Run("size="+size.name, func(b *testing.B) { benchPending(b, size.n) })
	}
}

func benchPending(b *testing.B, size int) {
	n := (64 << 20) / size
	dir := b.TempDir()
	l := benchLog(b, dir, n, size)
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	iterate := func(b *testing.B, l *Log) {
		k := 0
		for _, err := range l.Pending() {
			if err != nil {
				b.Fatal(err)
			}
			k++
		}
		if k != n {
			b.Fatalf("%d records pending, want %d", k, n)
		}
	}
	// ns/rec is the time per record, cpu-ns/rec the process's CPU time
	// (user and system, every thread): on a shared machine the second
	// varies less, and it shows what Open's verifying in parallel costs.
	var cpu0 time.Duration
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rec")
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/float64(n), "cpu-ns/rec")
	}
	b.Run("mode=open", func(b *testing.B) {
		b.SetBytes(int64(n * size))
		b.ReportAllocs()
		cpu0 = processCPU()
		for b.Loop() {
			l, err := Open(dir)
			if err != nil {
				b.Fatal(err)
			}
			iterate(b, l)
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("mode=iterate", func(b *testing.B) {
		l, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.SetBytes(int64(n * size))
		b.ReportAllocs()
		cpu0 = processCPU()
		for b.Loop() {
			iterate(b, l)
		}
		report(b)
	})
}

// BenchmarkAck acknowledges records of 100 bytes in order, one seq or 100
// seqs a call.
func BenchmarkAck(b *testing.B) {
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("seqs=%d", per), func(b *testing.B) {
			const chunk = 200_000
			l := benchLog(b, b.TempDir(), chunk, 100)
			defer l.Close()
			next := uint64(1)
			seqs := make([]uint64, per)
			b.ReportAllocs()
			// CPU time as in benchAppendSync, the refills' left out.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			thread, proc, ops := threadCPU(), processCPU(), 0
			for b.Loop() {
				if next+uint64(per) > l.Stats().NextSeq {
					b.StopTimer()
					t0, p0 := threadCPU(), processCPU()
					batch := make([][]byte, 1000)
					for i := range batch {
						batch[i] = make([]byte, 100)
					}
					for range chunk / len(batch) {
						if _, err := l.AppendBatch(batch); err != nil {
							b.Fatal(err)
						}
					}
					thread += threadCPU() - t0
					proc += processCPU() - p0
					b.StartTimer()
				}
				for i := range seqs {
					seqs[i] = next + uint64(i)
				}
				next += uint64(per)
				if err := l.Ack(seqs...); err != nil {
					b.Fatal(err)
				}
				ops++
			}
			reportCPU(b, thread, proc, ops)
		})
	}
}

// BenchmarkOpen opens and closes a healthy log of 64 MiB of pending 1 KiB
// records in 8 MiB segments: the time is verifying every frame and
// building the indexes (Close writes nothing new).
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(dir, WithSegmentSize(8<<20))
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	rec := randRecord(r, 1<<10)
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = rec
	}
	for range (64 << 20) / (100 << 10) {
		if _, err := l.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for b.Loop() {
		l, err := Open(dir, WithSegmentSize(8<<20))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
