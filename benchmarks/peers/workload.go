package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"time"
)

// Workload is one way of driving a Log.
type Workload struct {
	Name  string
	Title string // for the report and chart
	Size  int    // payload bytes per record
	Batch int    // records per AppendBatch; 1 = Append one by one
	Sync  bool   // Sync after every batch
	// Replay: a setup process writes Bytes of records (AppendBatch of 100,
	// no sync) and closes the log; the timed process opens it and reads
	// every record back.
	Replay bool
	// Bytes is the payload volume of a run at -scale 1; MaxTime stops a
	// slower implementation earlier (at -maxtime 2s; sync workloads get 3/4).
	Bytes   int64
	MaxTime float64
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

var workloads = []*Workload{
	{Name: "append-100B", Title: "100 B appends, one by one, no sync", Size: 100, Batch: 1, Bytes: 512 * mib, MaxTime: 1},
	{Name: "batch100-100B", Title: "100 B appends, batches of 100, no sync", Size: 100, Batch: 100, Bytes: 512 * mib, MaxTime: 1},
	{Name: "batch100-100B-sync", Title: "100 B appends, batches of 100, sync per batch", Size: 100, Batch: 100, Sync: true, Bytes: 256 * mib, MaxTime: 0.75},
	{Name: "append-1KiB", Title: "1 KiB appends, one by one, no sync", Size: kib, Batch: 1, Bytes: gib, MaxTime: 1},
	{Name: "batch100-1KiB", Title: "1 KiB appends, batches of 100, no sync", Size: kib, Batch: 100, Bytes: gib, MaxTime: 1},
	{Name: "batch100-1KiB-sync", Title: "1 KiB appends, batches of 100, sync per batch", Size: kib, Batch: 100, Sync: true, Bytes: 256 * mib, MaxTime: 0.75},
	{Name: "append-1MiB", Title: "1 MiB appends, one by one, no sync", Size: mib, Batch: 1, Bytes: 2 * gib, MaxTime: 1},
	{Name: "replay-1KiB", Title: "replay of a closed log, 1 KiB records", Size: kib, Replay: true, Bytes: 512 * mib, MaxTime: 1},
	{Name: "replay-100B", Title: "replay of a closed log, 100 B records", Size: 100, Replay: true, Bytes: 64 * mib, MaxTime: 1},
}

func lookupWorkload(name string) (*Workload, error) {
	for _, w := range workloads {
		if w.Name == name {
			return w, nil
		}
	}
	return nil, fmt.Errorf("unknown workload %q", name)
}

// payloads hands out records cut from a pool of random bytes, so that no
// allocation or generation happens in the timed loop and consecutive
// records differ. For records below 64 KiB the pool is 256 KiB, small
// enough to stay in the CPU cache, as a record a program has just built
// would be; larger records come from a 4 MiB pool.
type payloads struct {
	pool []byte
	size int
	off  int
}

func newPayloads(size int) *payloads {
	n := 4*mib + 2*size
	if size < 64*kib {
		n = 256*kib + 2*size
	}
	pool := make([]byte, n)
	r := rand.New(rand.NewChaCha8([32]byte{'w', 'a', 'l', 'p', 'u', 'b'}))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			pool[i+j] = byte(v >> (8 * j))
		}
	}
	return &payloads{pool: pool, size: size}
}

func (p *payloads) next() []byte {
	b := p.pool[p.off : p.off+p.size]
	p.off += 4093 // a prime stride, so that records overlap differently
	if p.off+p.size > len(p.pool) {
		p.off -= len(p.pool) - p.size
		if p.off < 0 {
			p.off = 0
		}
	}
	return b
}

// batches prepares 64 distinct batches to cycle through.
func (p *payloads) batches(n int) [][][]byte {
	out := make([][][]byte, 64)
	for i := range out {
		b := make([][]byte, n)
		for j := range b {
			b[j] = p.next()
		}
		out[i] = b
	}
	return out
}

// runWrite is the timed part of a write workload, in the child process.
func runWrite(im *Impl, w *Workload, dir string, volume int64, maxTime time.Duration, prof string) (*childResult, error) {
	l, err := im.Open(dir, openOpts{SyncWrites: w.Sync})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	pl := newPayloads(w.Size)
	var batches [][][]byte
	if w.Batch > 1 {
		batches = pl.batches(w.Batch)
	}
	stop, err := startProfile(prof)
	if err != nil {
		return nil, err
	}
	var recs, bytes int64
	u := getUsage()
	start := time.Now()
	deadline := start.Add(maxTime)
	size := int64(w.Size)
	switch {
	case w.Batch == 1:
		every := int64(256)
		if w.Size >= 64*kib {
			every = 1
		}
		for bytes < volume {
			if err := l.Append(pl.next()); err != nil {
				return nil, fmt.Errorf("append %d: %w", recs, err)
			}
			recs++
			bytes += size
			if w.Sync {
				if err := l.Sync(); err != nil {
					return nil, fmt.Errorf("sync: %w", err)
				}
			}
			if recs%every == 0 && time.Now().After(deadline) {
				break
			}
		}
	default:
		for k := 0; bytes < volume; k++ {
			if err := l.AppendBatch(batches[k%len(batches)]); err != nil {
				return nil, fmt.Errorf("append batch at %d: %w", recs, err)
			}
			if w.Sync {
				if err := l.Sync(); err != nil {
					return nil, fmt.Errorf("sync: %w", err)
				}
			}
			recs += int64(w.Batch)
			bytes += int64(w.Batch) * size
			if time.Now().After(deadline) {
				break
			}
		}
	}
	if err := l.Flush(); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	elapsed := time.Since(start)
	extra := addUsage(nil, u)
	stop()
	t := time.Now()
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return &childResult{
		Records: recs, Bytes: bytes, Seconds: elapsed.Seconds(),
		Extra: withKey(extra, "close_s", time.Since(t).Seconds()),
	}, nil
}

// runSetup writes the log a replay run reads: volume bytes of records in
// batches of 100, without sync.
func runSetup(im *Impl, w *Workload, dir string, volume int64) (*childResult, error) {
	l, err := im.Open(dir, openOpts{})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	pl := newPayloads(w.Size)
	batches := pl.batches(100)
	var recs, bytes int64
	start := time.Now()
	for k := 0; bytes < volume; k++ {
		if err := l.AppendBatch(batches[k%len(batches)]); err != nil {
			return nil, fmt.Errorf("append batch at %d: %w", recs, err)
		}
		recs += 100
		bytes += 100 * int64(w.Size)
	}
	if err := l.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return &childResult{Records: recs, Bytes: bytes, Seconds: time.Since(start).Seconds()}, nil
}

// runReplay times opening the closed log and reading every record.
// A replay that is still running at maxTime (0: no limit) stops there;
// its throughput is that of the records read so far.
func runReplay(im *Impl, w *Workload, dir string, expect int64, maxTime time.Duration, prof string) (*childResult, error) {
	stop, err := startProfile(prof)
	if err != nil {
		return nil, err
	}
	var bytes, seen int64
	var sink byte
	stopped := false
	u := getUsage()
	start := time.Now()
	deadline := start.Add(maxTime)
	if im.ReplayAtOnce {
		maxTime = 0
	}
	n, err := im.Replay(dir, func(p []byte) bool {
		bytes += int64(len(p))
		if len(p) > 0 {
			sink ^= p[len(p)-1]
		}
		seen++
		if maxTime > 0 && seen%1024 == 0 && time.Now().After(deadline) {
			stopped = true
			return false
		}
		return true
	})
	elapsed := time.Since(start)
	extra := addUsage(nil, u)
	stop()
	if err != nil {
		return nil, fmt.Errorf("replay after %d records: %w", n, err)
	}
	if n != seen || bytes != n*int64(w.Size) || (!stopped && n != expect) || n > expect {
		return nil, fmt.Errorf("replay read %d records (%d callbacks), %d bytes; want %d records of %d bytes", n, seen, bytes, expect, w.Size)
	}
	complete := 1.0
	if stopped {
		complete = 0
	}
	return &childResult{Records: n, Bytes: bytes, Seconds: elapsed.Seconds(),
		Extra: withKey(withKey(extra, "sink", float64(sink)), "complete", complete)}, nil
}

func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func withKey(m map[string]float64, k string, v float64) map[string]float64 {
	m[k] = v
	return m
}
