package main

import (
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
)

func init() {
	register(&Impl{
		Name:   "prometheus/wlog",
		Kind:   "peer",
		Module: "github.com/prometheus/prometheus",
		Note: "tsdb/wlog with 64 MiB segments, no compression, no metrics registry. " +
			"Records go into 32 KiB pages with a CRC32 per fragment; each Log call ends by " +
			"writing the current page (one write(2)); batches are one Log(recs...) call; " +
			"Sync is an fsync. Replay: NewSegmentsReader + NewReader.",
		Open:   openProm,
		Replay: replayProm,
	})
}

type promLog struct{ w *wlog.WL }

func openProm(dir string, _ openOpts) (Log, error) {
	w, err := wlog.NewSize(nil, nil, dir, segmentSize, compression.None)
	if err != nil {
		return nil, err
	}
	return &promLog{w: w}, nil
}

func (p *promLog) Append(b []byte) error         { return p.w.Log(b) }
func (p *promLog) AppendBatch(ps [][]byte) error { return p.w.Log(ps...) }
func (p *promLog) Sync() error                   { return p.w.Sync() }
func (p *promLog) Flush() error                  { return nil }
func (p *promLog) Close() error                  { return p.w.Close() }

func replayProm(dir string, fn func([]byte) bool) (int64, error) {
	sr, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		return 0, err
	}
	defer sr.Close()
	r := wlog.NewReader(sr)
	var n int64
	for r.Next() {
		n++
		if !fn(r.Record()) {
			break
		}
	}
	return n, r.Err()
}
