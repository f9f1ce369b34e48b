package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Guest memory on a VM. The VMs this harness runs on hand free memory back
// to their host (virtio-balloon free page reporting): every free block of
// 2^page_reporting_order pages is reported a moment after it is freed, and
// the next touch of each of its pages costs a fault in the host on top of
// the guest's own. Every benchmark child writes hundreds of MiB into the
// page cache, and the files are deleted between children, so whether a
// child got pages that were handed back or not depended on the timing of
// the reporting: measured, 5 consecutive runs of the same 100 B append
// child ranged from 10.1 to 19.7 M records/s for mmap+xxhash, with the
// kernel's page zeroing taking 37% of the CPU in a slow run of walpub
// against 4% in a fast one, the same number of page faults in both. With
// reporting stopped and the memory touched once, 5 runs ranged from 20.8
// to 21.3 M records/s.
//
// So, where it can (root, and the kernel has the knob), the parent stops
// the reporting for the run and has a child touch the free memory once,
// so that the host backs it; the report says so, and the setting is put
// back at the end. This takes the hypervisor's cost out of the figures:
// on bare metal or a VM that does not report free pages, it is not paid.

// reportingOrderPath is the guest kernel's free page reporting threshold.
const reportingOrderPath = "/sys/module/page_reporting/parameters/page_reporting_order"

// noReporting is an order above the largest the page allocator has
// (MAX_PAGE_ORDER, 10 on x86-64): no free block is large enough to be
// reported.
const noReporting = "11"

// touchMargin is the memory left untouched by the touching child.
const touchMargin = 2 << 30

// settleMemory stops free page reporting through the knob at path, if
// there is one and it can be written, and then runs touch(n) with n the
// memory available less touchMargin. It returns a line for the report and
// a function that puts the knob back (a no-op if it was not changed).
func settleMemory(path string, touch func(n int64) (time.Duration, error)) (note string, restore func()) {
	restore = func() {}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", restore // not a VM that reports free pages
	}
	if err != nil {
		return fmt.Sprintf("free page reporting left on (reading %s: %v)", path, err), restore
	}
	old := strings.TrimSpace(string(b))
	if old != noReporting {
		if err := os.WriteFile(path, []byte(noReporting), 0); err != nil {
			return fmt.Sprintf("free page reporting left on at order %s (%v): the figures include the host's faults on memory it took back", old, err), restore
		}
		restore = func() {
			if err := os.WriteFile(path, []byte(old), 0); err != nil {
				fmt.Fprintf(os.Stderr, "peers: putting %s back to %s: %v\n", path, old, err)
			}
		}
	}
	note = fmt.Sprintf("free page reporting to the host stopped for the run (page_reporting_order %s, put back after)", old)
	if old == noReporting {
		note = "free page reporting to the host was off (page_reporting_order " + old + ")"
	}
	avail, err := memAvailable()
	if err != nil {
		return note + fmt.Sprintf("; free memory not touched (%v)", err), restore
	}
	n := avail - touchMargin
	if n <= 0 {
		return note, restore
	}
	took, err := touch(n)
	if err != nil {
		return note + fmt.Sprintf("; touching the free memory failed: %v", err), restore
	}
	return note + fmt.Sprintf("; %.1f GiB of free memory touched once before the first measurement (%.0f s)",
		float64(n)/(1<<30), took.Seconds()), restore
}

// memAvailable returns MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	v, err := meminfo("MemAvailable")
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("MemAvailable %q: %w", v, err)
	}
	return kb << 10, nil
}

// touchMemory maps n bytes of anonymous memory a GiB at a time, stores to
// every page and unmaps it: the touching child's work.
func touchMemory(n int64) (*childResult, error) {
	start := time.Now()
	const chunk = 1 << 30
	for left := n; left > 0; left -= chunk {
		size := int(min(left, chunk))
		m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, err
		}
		for i := 0; i < size; i += os.Getpagesize() {
			m[i] = 1
		}
		if err := unix.Munmap(m); err != nil {
			return nil, err
		}
	}
	return &childResult{Bytes: n, Seconds: time.Since(start).Seconds()}, nil
}

// restoreOnSignal runs restore and exits if the run is interrupted
// (SIGINT, SIGTERM), so that the knob is put back then too; the function
// it returns stops watching.
func restoreOnSignal(restore func()) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			restore()
			fmt.Fprintf(os.Stderr, "peers: %v\n", sig)
			os.Exit(1)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
