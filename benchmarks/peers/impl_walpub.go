//go:build !nowalpub

package main

import (
	"github.com/walpub/walpub/wal"
)

func init() {
	register(&Impl{
		Name:   "walpub",
		Kind:   "walpub",
		Module: "github.com/walpub/walpub",
		Note: "wal.Open with 64 MiB segments and SyncNever; Append / AppendBatch; " +
			"sync per batch is an explicit Log.Sync after each AppendBatch. " +
			"Replay: wal.Open, then range over Pending (every record unacknowledged).",
		Open:   func(dir string, _ openOpts) (Log, error) { return openWalpub(dir, false) },
		Replay: replayWalpub,
	})
	register(&Impl{
		Name:   "walpub/SyncAlways",
		Kind:   "walpub",
		Module: "github.com/walpub/walpub",
		Note:   "wal.Open with SyncAlways: AppendBatch returns after the data is durable (no explicit Sync).",
		Open:   func(dir string, _ openOpts) (Log, error) { return openWalpub(dir, true) },
		Only:   []string{"batch100-100B-sync", "batch100-1KiB-sync"},
	})
}

type walpubLog struct {
	l          *wal.Log
	syncAlways bool
}

func openWalpub(dir string, syncAlways bool) (Log, error) {
	p := wal.SyncNever
	if syncAlways {
		p = wal.SyncAlways
	}
	l, err := wal.Open(dir, wal.WithSync(p), wal.WithSegmentSize(segmentSize))
	if err != nil {
		return nil, err
	}
	return &walpubLog{l: l, syncAlways: syncAlways}, nil
}

func (w *walpubLog) Append(p []byte) error {
	_, err := w.l.Append(p)
	return err
}

func (w *walpubLog) AppendBatch(ps [][]byte) error {
	_, err := w.l.AppendBatch(ps)
	return err
}

func (w *walpubLog) Sync() error {
	if w.syncAlways {
		return nil
	}
	return w.l.Sync()
}

func (w *walpubLog) Flush() error { return nil }
func (w *walpubLog) Close() error { return w.l.Close() }

func replayWalpub(dir string, fn func([]byte) bool) (int64, error) {
	l, err := wal.Open(dir, wal.WithSegmentSize(segmentSize))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	var n int64
	for r, err := range l.Pending() {
		if err != nil {
			return n, err
		}
		n++
		if !fn(r.Data) {
			break
		}
	}
	return n, nil
}
