package wal

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// TestPowerCutNewDirectory: Open creates the log directory; under
// SyncAlways an Append returns, then the power goes, on a file system
// that keeps no unsynced directory operation (cutFS.unordered): the
// directory's own name is an entry of the directory that holds it, durable
// only once that one is synced. The record must survive: before, Open
// never synced the parent, and the log directory, with every record
// synced into it, was gone.
func TestPowerCutNewDirectory(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "log")
	cfs := newCutFS(dir, 1, 0)
	cfs.unordered = true
	defer cfs.close()
	l, err := Open(dir, WithSegmentSize(smallSeg), WithSync(SyncAlways), withFS(cfs), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if !cfs.dirMade {
		t.Fatal("Open did not create the log directory: the scenario did not happen")
	}
	q, err := l.Append(powerCutRecord(1))
	if err != nil {
		t.Fatal(err)
	}
	cfs.cut()
	l.Close()
	l2, _ := powerCutOpen(t, cfs)
	defer mustClose(t, l2)
	recs := pendingOf(t, l2)
	if len(recs) != 1 || recs[0].Seq != q || !bytes.Equal(recs[0].Data, powerCutRecord(q)) {
		t.Fatalf("after the power cut %d records pending, want record %d, which SyncAlways made durable (files on disk: %v)",
			len(recs), q, snapshot(cfs.image).names())
	}
}
