package main

import (
	"bufio"

	"golang.org/x/sys/unix"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Hooks set by producer_walpub.go when adapter/kafka builds.
var (
	backlogFill func(dir string, n int64) (*childResult, error)
	backlogOpen func(dir string, hold time.Duration) (*childResult, error)
)

// memSampler records the peak of the process's anonymous and file-backed
// resident memory (/proc/self/status) and of the Go heap, every 10 ms.
// Peak RSS from rusage counts the pages of mapped files that the process
// touched; RssAnon is the part that is the process's own memory.
type memSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak map[string]float64
}

func startSampler() *memSampler {
	s := &memSampler{stop: make(chan struct{}), peak: map[string]float64{}}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *memSampler) sample() {
	f, err := os.Open("/proc/self/status")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok || (k != "RssAnon" && k != "RssFile" && k != "VmRSS") {
				continue
			}
			fields := strings.Fields(v)
			if len(fields) == 0 {
				continue
			}
			kb, err := strconv.ParseFloat(fields[0], 64)
			if err == nil {
				s.max("peak_"+k, kb*1024)
			}
		}
		f.Close()
	}
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	metrics.Read(m)
	s.max("peak_heap_objects", float64(m[0].Value.Uint64()))
	s.max("peak_go_total", float64(m[1].Value.Uint64()))
}

func (s *memSampler) max(k string, v float64) {
	if v > s.peak[k] {
		s.peak[k] = v
	}
}

// Stop ends sampling and merges the peaks into extra.
func (s *memSampler) Stop(extra map[string]float64) map[string]float64 {
	close(s.stop)
	s.done.Wait()
	if extra == nil {
		extra = map[string]float64{}
	}
	for k, v := range s.peak {
		extra[k] = v
	}
	return extra
}

// usage is the process's CPU time and page faults so far (all threads).
type usage struct {
	cpu    float64
	minflt int64
}

func getUsage() usage {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return usage{cpu: tv(ru.Utime) + tv(ru.Stime), minflt: ru.Minflt}
}

// addUsage records the CPU seconds and minor faults since u in extra.
func addUsage(extra map[string]float64, u usage) map[string]float64 {
	now := getUsage()
	if extra == nil {
		extra = map[string]float64{}
	}
	extra["cpu_s"] = now.cpu - u.cpu
	extra["minflt"] = float64(now.minflt - u.minflt)
	return extra
}
