package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// runFdatasync measures the latency of a small append (4 KiB) followed by
// fdatasync, the floor under any "sync per batch" figure.
func runFdatasync(dir string, count int, maxTime time.Duration) (*childResult, error) {
	f, err := os.OpenFile(filepath.Join(dir, "sync"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := newPayloads(4 * kib).next()
	fd := int(f.Fd())
	lat := make([]float64, 0, count)
	start := time.Now()
	deadline := start.Add(maxTime)
	for len(lat) < count && time.Now().Before(deadline) {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(fd); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t).Seconds())
	}
	elapsed := time.Since(start).Seconds()
	slices.Sort(lat)
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))] }
	return &childResult{
		Records: int64(len(lat)), Bytes: int64(len(lat)) * int64(len(buf)), Seconds: elapsed,
		Extra: map[string]float64{"p10": q(0.10), "p50": q(0.50), "p90": q(0.90), "p99": q(0.99)},
	}, nil
}

// runXxhash measures xxhash64 throughput on records of 100 B, 1 KiB and
// 1 MiB (hot in cache, as a record just written or read is).
func runXxhash(maxTime time.Duration) (*childResult, error) {
	res := &childResult{Extra: map[string]float64{}}
	var sink uint64
	for _, size := range []int{100, kib, mib} {
		pl := newPayloads(size)
		recs := make([][]byte, 64)
		for i := range recs {
			recs[i] = pl.next()
		}
		var n int64
		start := time.Now()
		deadline := start.Add(maxTime / 3)
		for time.Now().Before(deadline) {
			for range 64 {
				for _, r := range recs {
					sink += xxhash.Sum64(r)
				}
				n += int64(len(recs))
				if size >= mib {
					break
				}
			}
		}
		s := time.Since(start).Seconds()
		res.Extra[fmt.Sprintf("MBps_%d", size)] = float64(n) * float64(size) / s / 1e6
		res.Extra[fmt.Sprintf("recps_%d", size)] = float64(n) / s
	}
	res.Extra["sink"] = float64(sink & 1)
	return res, nil
}
