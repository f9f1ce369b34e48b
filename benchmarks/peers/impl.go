package main

import (
	"fmt"
	"sort"
)

// segmentSize is the segment (file) size every implementation that lets us
// choose one is given, so that rotation costs are comparable.
const segmentSize = 64 << 20

// Log is what a workload drives. Each implementation adapts its library's
// API to it as directly as the library allows; the notes on each adapter say
// what that costs (an extra copy, a syscall per record, ...).
type Log interface {
	// Append appends one record.
	Append(p []byte) error
	// AppendBatch appends records in one call where the library has such a
	// call, else one by one.
	AppendBatch(ps [][]byte) error
	// Sync makes everything appended so far durable (fdatasync or the
	// library's equivalent).
	Sync() error
	// Flush hands buffered bytes to the operating system without syncing,
	// so that a timed run ends with the data in the page cache (where an
	// mmap-based log already has it). A no-op where nothing is buffered.
	Flush() error
	Close() error
}

// openOpts are the per-run settings an implementation is opened with.
type openOpts struct {
	// SyncWrites: the workload syncs after every batch. Libraries whose
	// sync policy is fixed at open time (etcd, raft-wal, tidwall) are
	// configured from it; the others are sent an explicit Sync.
	SyncWrites bool
}

// Impl is one implementation under test.
type Impl struct {
	Name string
	// Kind is "walpub", "peer" or "baseline".
	Kind string
	// Module is the Go module whose version the report prints.
	Module string
	// Note describes how the adapter maps the workloads onto the library.
	Note string
	// Open creates a new log in the empty directory dir.
	Open func(dir string, o openOpts) (Log, error)
	// Replay opens the closed log in dir (written by Open earlier, in
	// another process) and calls fn for every record in order; it returns
	// the number of records read; it stops early when fn returns false. The
	// time of opening is part of the replay.
	Replay func(dir string, fn func([]byte) bool) (int64, error)
	// Only, if set, limits the implementation to these workloads.
	Only []string
	// ReplayAtOnce: Replay decodes the whole log before the first callback,
	// so a time limit cannot cut it short; it always reads everything.
	ReplayAtOnce bool
}

var impls = map[string]*Impl{}

func register(im *Impl) {
	if _, dup := impls[im.Name]; dup {
		panic("duplicate impl " + im.Name)
	}
	impls[im.Name] = im
}

// implOrder is the order in which implementations appear in tables and
// charts: ours first, then baselines, then peers.
func implOrder() []*Impl {
	rank := map[string]int{"walpub": 0, "baseline": 1, "peer": 2}
	var out []*Impl
	for _, im := range impls {
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.Name < b.Name
	})
	return out
}

func (im *Impl) supports(w *Workload) bool {
	if w.Replay && im.Replay == nil {
		return false
	}
	if len(im.Only) == 0 {
		return true
	}
	for _, n := range im.Only {
		if n == w.Name {
			return true
		}
	}
	return false
}

func lookupImpl(name string) (*Impl, error) {
	im, ok := impls[name]
	if !ok {
		return nil, fmt.Errorf("unknown implementation %q", name)
	}
	return im, nil
}

// appendEach is AppendBatch for libraries without a batch call.
func appendEach(l interface{ Append([]byte) error }, ps [][]byte) error {
	for _, p := range ps {
		if err := l.Append(p); err != nil {
			return err
		}
	}
	return nil
}
