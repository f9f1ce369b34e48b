package wal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompactionCrashAtEachStep stops a merge of several sealed segments
// at each of its steps — creating the .compact.tmp file, allocating it,
// syncing it, renaming it over the first segment, syncing the directory,
// removing the segments merged into it, syncing the directory again —
// before and after the step, and takes the disk as a killed process
// leaves it (page cache and directory intact), as a power cut leaves it
// (only what was synced; cutFS) and as a power cut leaves a file system
// that reorders unsynced directory operations (cutFS.unordered: removals
// since the last directory sync kept, creations and renames lost), so
// that a merge must sync the directory after its rename before it removes
// the merged segments. Each time the log must open with one
// complete version of every record: each pending record exactly once,
// with its bytes, no acknowledged one back (the acks were synced:
// SyncAlways), no .compact.tmp and no merged-away segment left behind
// (issue 18 item 15: "a crash at any step leaves one complete version").
func TestCompactionCrashAtEachStep(t *testing.T) {
	isTmp := func(p string) bool { return strings.Contains(p, ".compact"+tmpExt) }
	steps := []struct {
		name  string
		match func(kind, path string) bool
	}{
		{"create-tmp", func(k, p string) bool { return k == "open" && isTmp(p) }},
		{"allocate-tmp", func(k, p string) bool { return k == "allocate" && isTmp(p) }},
		{"sync-tmp", func(k, p string) bool { return k == "sync" && isTmp(p) }},
		{"rename-over-first", func(k, p string) bool { return k == "rename" && isTmp(p) }},
		{"remove-merged", func(k, p string) bool { return k == "remove" && isSeg(p) }},
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, step := range steps {
		for _, after := range []bool{false, true} {
			for _, mode := range []string{"kill", "power-cut", "power-cut-unordered"} {
				name := fmt.Sprintf("%s/after=%v/%s", step.name, after, mode)
				t.Run(name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "log")
					cfs := newCutFS(dir, 5, 0)
					cfs.kill = mode == "kill"
					cfs.unordered = mode == "power-cut-unordered"
					defer cfs.close()
					fired, armed := false, false
					cfs.trigger = func(kind, path string) bool {
						if armed {
							fired = true
							return true
						}
						if step.match(kind, path) {
							if after {
								armed = true
								return false
							}
							fired = true
							return true
						}
						return false
					}
					l, err := Open(dir, WithSegmentSize(smallSeg), WithSync(SyncAlways), withFS(cfs), WithLogger(quiet))
					if err != nil {
						t.Fatal(err)
					}
					// Six segments' worth; every record of the first five
					// but every 10th acknowledged, in one Ack at the end so
					// that the compactor merges them as one run.
					var acks []uint64
					pending := map[uint64]bool{}
					var q uint64
					for q == 0 || l.Stats().Segments < 7 {
						if q, err = l.Append(powerCutRecord(q + 1)); err != nil {
							t.Fatal(err)
						}
						pending[q] = true
					}
					sealedEnd := l.segs[len(l.segs)-1].firstSeq
					for s := uint64(1); s < sealedEnd; s++ {
						if s%10 != 0 {
							acks = append(acks, s)
							delete(pending, s)
						}
					}
					if err := l.Ack(acks...); err != nil {
						t.Fatal(err)
					}
					for deadline := time.Now().Add(20 * time.Second); !cfs.isCut() && time.Now().Before(deadline); {
						time.Sleep(5 * time.Millisecond)
					}
					cfs.cut()
					l.Close() // fails once the power is out
					if !fired {
						t.Fatalf("the merge never reached step %s", step.name)
					}
					img := snapshot(cfs.image)
					after := filepath.Join(t.TempDir(), "after")
					img.write(t, after)
					l2, err := Open(after, WithSegmentSize(smallSeg), WithLogger(quiet))
					if err != nil {
						t.Fatalf("Open: %v (files %v)", err, img.names())
					}
					seen := map[uint64]bool{}
					for _, rec := range pendingOf(t, l2) {
						if seen[rec.Seq] {
							t.Fatalf("record %d is pending twice", rec.Seq)
						}
						seen[rec.Seq] = true
						if !pending[rec.Seq] {
							t.Fatalf("record %d is pending, but was acknowledged (durably)", rec.Seq)
						}
						if !bytes.Equal(rec.Data, powerCutRecord(rec.Seq)) {
							t.Fatalf("record %d: bytes differ", rec.Seq)
						}
					}
					for s := range pending {
						if !seen[s] {
							t.Fatalf("pending record %d is gone", s)
						}
					}
					mustClose(t, l2)
					ents, err := os.ReadDir(after)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range ents {
						if strings.HasSuffix(e.Name(), tmpExt) {
							t.Errorf("%s left behind after Open", e.Name())
						}
					}
					v, err := OpenView(after)
					if err != nil {
						t.Fatal(err)
					}
					in := v.Info()
					v.Close()
					if n := len(segFiles(t, after)); n != len(in.Segments) {
						t.Errorf("%d segment files on disk, the log uses %d: a merged-away segment is left", n, len(in.Segments))
					}
				})
			}
		}
	}
}
