package main

import (
	tidwall "github.com/tidwall/wal"
)

func init() {
	register(&Impl{
		Name:   "tidwall/wal",
		Kind:   "peer",
		Module: "github.com/tidwall/wal",
		Note: "Binary format, 64 MiB segments, NoSync (the workload calls Sync, an fsync, per batch). " +
			"Every Write/WriteBatch is one write(2) of the encoded entries; no checksums. " +
			"Replay: Open, then Read(i) for every index with NoCopy.",
		Open:   openTidwall,
		Replay: replayTidwall,
	})
}

type tidwallLog struct {
	l     *tidwall.Log
	next  uint64
	batch tidwall.Batch
}

func tidwallOptions() *tidwall.Options {
	o := *tidwall.DefaultOptions
	o.NoSync = true
	o.SegmentSize = segmentSize
	o.NoCopy = true
	return &o
}

func openTidwall(dir string, _ openOpts) (Log, error) {
	l, err := tidwall.Open(dir, tidwallOptions())
	if err != nil {
		return nil, err
	}
	return &tidwallLog{l: l, next: 1}, nil
}

func (t *tidwallLog) Append(p []byte) error {
	if err := t.l.Write(t.next, p); err != nil {
		return err
	}
	t.next++
	return nil
}

func (t *tidwallLog) AppendBatch(ps [][]byte) error {
	t.batch.Clear()
	for i, p := range ps {
		t.batch.Write(t.next+uint64(i), p)
	}
	if err := t.l.WriteBatch(&t.batch); err != nil {
		return err
	}
	t.next += uint64(len(ps))
	return nil
}

func (t *tidwallLog) Sync() error  { return t.l.Sync() }
func (t *tidwallLog) Flush() error { return nil }
func (t *tidwallLog) Close() error { return t.l.Close() }

func replayTidwall(dir string, fn func([]byte) bool) (int64, error) {
	l, err := tidwall.Open(dir, tidwallOptions())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	first, err := l.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := l.LastIndex()
	if err != nil {
		return 0, err
	}
	var n int64
	for i := first; i <= last && first != 0; i++ {
		p, err := l.Read(i)
		if err != nil {
			return n, err
		}
		n++
		if !fn(p) {
			break
		}
	}
	return n, nil
}
