package main

import (
	"path/filepath"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

func init() {
	register(&Impl{
		Name:   "etcd/wal",
		Kind:   "peer",
		Module: "go.etcd.io/etcd/server/v3",
		Note: "server/v3/storage/wal (64 MB preallocated segments, CRC32 chained per record, " +
			"protobuf-encoded raftpb.Entry). One Save per Append or per batch; Save flushes its " +
			"encoder and fdatasyncs, except with SetUnsafeNoFsync (used for the no-sync workloads). " +
			"Replay: OpenForRead + ReadAll (which returns every entry in memory).",
		Open:         openEtcd,
		Replay:       replayEtcd,
		ReplayAtOnce: true,
	})
}

type etcdLog struct {
	w    *wal.WAL
	next uint64
	ents []*raftpb.Entry
}

func openEtcd(dir string, o openOpts) (Log, error) {
	w, err := wal.Create(zap.NewNop(), filepath.Join(dir, "etcd"), nil)
	if err != nil {
		return nil, err
	}
	if !o.SyncWrites {
		w.SetUnsafeNoFsync()
	}
	return &etcdLog{w: w, next: 1}, nil
}

func (e *etcdLog) Append(p []byte) error { return e.AppendBatch([][]byte{p}) }

func (e *etcdLog) AppendBatch(ps [][]byte) error {
	e.ents = e.ents[:0]
	for i, p := range ps {
		e.ents = append(e.ents, &raftpb.Entry{
			Term:  proto.Uint64(1),
			Index: proto.Uint64(e.next + uint64(i)),
			Type:  raftpb.EntryType_EntryNormal.Enum(),
			Data:  p,
		})
	}
	if err := e.w.Save(&raftpb.HardState{}, e.ents); err != nil {
		return err
	}
	e.next += uint64(len(ps))
	return nil
}

// Sync is a no-op: Save already synced (or, under SetUnsafeNoFsync, never does).
func (e *etcdLog) Sync() error  { return nil }
func (e *etcdLog) Flush() error { return nil }
func (e *etcdLog) Close() error { return e.w.Close() }

func replayEtcd(dir string, fn func([]byte) bool) (int64, error) {
	w, err := wal.OpenForRead(zap.NewNop(), filepath.Join(dir, "etcd"), &walpb.Snapshot{})
	if err != nil {
		return 0, err
	}
	defer w.Close()
	_, _, ents, err := w.ReadAll()
	if err != nil {
		return 0, err
	}
	// ReadAll has already decoded everything; a time limit cannot cut it short.
	for i, e := range ents {
		if !fn(e.Data) {
			return int64(i + 1), nil
		}
	}
	return int64(len(ents)), nil
}
