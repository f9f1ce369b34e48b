package main

import (
	"errors"
	"io"

	rosedb "github.com/rosedblabs/wal"
)

func init() {
	register(&Impl{
		Name:   "rosedblabs/wal",
		Kind:   "peer",
		Module: "github.com/rosedblabs/wal",
		Note: "64 MiB segments, Sync=false (the workload calls Sync, an fsync, per batch). " +
			"Records are split into 32 KiB blocks with a CRC32 per chunk; one write(2) per Write, " +
			"batches through PendingWrites+WriteAll. Replay: NewReader().Next() until io.EOF.",
		Open:   openRosedb,
		Replay: replayRosedb,
	})
}

type rosedbLog struct{ w *rosedb.WAL }

func rosedbOptions(dir string) rosedb.Options {
	o := rosedb.DefaultOptions
	o.DirPath = dir
	o.SegmentSize = segmentSize
	o.Sync = false
	return o
}

func openRosedb(dir string, _ openOpts) (Log, error) {
	w, err := rosedb.Open(rosedbOptions(dir))
	if err != nil {
		return nil, err
	}
	return &rosedbLog{w: w}, nil
}

func (r *rosedbLog) Append(p []byte) error {
	_, err := r.w.Write(p)
	return err
}

func (r *rosedbLog) AppendBatch(ps [][]byte) error {
	for _, p := range ps {
		r.w.PendingWrites(p)
	}
	_, err := r.w.WriteAll()
	return err
}

func (r *rosedbLog) Sync() error  { return r.w.Sync() }
func (r *rosedbLog) Flush() error { return nil }
func (r *rosedbLog) Close() error { return r.w.Close() }

func replayRosedb(dir string, fn func([]byte) bool) (int64, error) {
	w, err := rosedb.Open(rosedbOptions(dir))
	if err != nil {
		return 0, err
	}
	defer w.Close()
	rd := w.NewReader()
	var n int64
	for {
		p, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if !fn(p) {
			return n, nil
		}
	}
}
