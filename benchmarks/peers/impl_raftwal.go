package main

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

func init() {
	register(&Impl{
		Name:   "hashicorp/raft-wal",
		Kind:   "peer",
		Module: "github.com/hashicorp/raft-wal",
		Note: "64 MiB segments. raft-wal has no no-sync mode: StoreLogs always ends with an fsync, " +
			"so for the no-sync workloads its file system is wrapped to make Sync a no-op " +
			"(everything else, including the bolt meta store, is stock). One StoreLogs call " +
			"(one pwrite) per Append or per batch. Replay: Open, then GetLog(i) for every index.",
		Open:   openRaftwal,
		Replay: replayRaftwal,
	})
}

// noSyncFS is the stock VFS whose files ignore Sync.
type noSyncFS struct{ *fs.FS }

type noSyncFile struct{ types.WritableFile }

func (noSyncFile) Sync() error { return nil }

func (f noSyncFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	w, err := f.FS.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return noSyncFile{w}, nil
}

func (f noSyncFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	w, err := f.FS.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return noSyncFile{w}, nil
}

type raftwalLog struct {
	w    *raftwal.WAL
	next uint64
	logs []raft.Log
	ptrs []*raft.Log
}

func raftwalOpen(dir string, sync bool) (*raftwal.WAL, error) {
	size := raftwal.WithSegmentSize(segmentSize)
	logger := raftwal.WithLogger(hclog.NewNullLogger())
	if sync {
		return raftwal.Open(dir, size, logger)
	}
	return raftwal.Open(dir, size, logger, raftwal.WithSegmentFiler(segment.NewFiler(dir, noSyncFS{fs.New()})))
}

func openRaftwal(dir string, o openOpts) (Log, error) {
	w, err := raftwalOpen(dir, o.SyncWrites)
	if err != nil {
		return nil, err
	}
	return &raftwalLog{w: w, next: 1}, nil
}

func (r *raftwalLog) Append(p []byte) error {
	return r.AppendBatch([][]byte{p})
}

func (r *raftwalLog) AppendBatch(ps [][]byte) error {
	if cap(r.logs) < len(ps) {
		r.logs = make([]raft.Log, len(ps))
		r.ptrs = make([]*raft.Log, len(ps))
	}
	r.logs, r.ptrs = r.logs[:len(ps)], r.ptrs[:len(ps)]
	for i, p := range ps {
		r.logs[i] = raft.Log{Index: r.next + uint64(i), Term: 1, Type: raft.LogCommand, Data: p}
		r.ptrs[i] = &r.logs[i]
	}
	if err := r.w.StoreLogs(r.ptrs); err != nil {
		return err
	}
	r.next += uint64(len(ps))
	return nil
}

// Sync is a no-op: StoreLogs already synced when the log was opened with
// SyncWrites (and never syncs otherwise).
func (r *raftwalLog) Sync() error  { return nil }
func (r *raftwalLog) Flush() error { return nil }
func (r *raftwalLog) Close() error { return r.w.Close() }

func replayRaftwal(dir string, fn func([]byte) bool) (int64, error) {
	w, err := raftwalOpen(dir, true)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	first, err := w.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := w.LastIndex()
	if err != nil {
		return 0, err
	}
	var n int64
	var l raft.Log
	for i := first; i <= last && first != 0; i++ {
		if err := w.GetLog(i, &l); err != nil {
			return n, err
		}
		n++
		if !fn(l.Data) {
			break
		}
	}
	return n, nil
}
