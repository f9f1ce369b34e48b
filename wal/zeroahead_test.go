package wal

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// zeroRange is one range the preparer wrote zeros over (zeroHook).
type zeroRange struct {
	path           string
	from, to, tail int64
}

// recordZeros records the ranges the preparer zeroes in the logs under
// dir until the test ends.
func recordZeros(t *testing.T, dir string) func() []zeroRange {
	var mu sync.Mutex
	var got []zeroRange
	hook := func(f *segment.File, from, to, tail int64) {
		if !strings.HasPrefix(f.Path, dir+string(filepath.Separator)) {
			return
		}
		mu.Lock()
		got = append(got, zeroRange{f.Path, from, to, tail})
		mu.Unlock()
	}
	zeroHook.Store(&hook)
	t.Cleanup(func() { zeroHook.Store(nil) })
	return func() []zeroRange {
		mu.Lock()
		defer mu.Unlock()
		return append([]zeroRange(nil), got...)
	}
}

// zeroRecord is record i of the zero-ahead tests: 1000 bytes that name it.
func zeroRecord(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("record %6d;", i)), 1000/14+1)[:1000]
}

// TestZeroAheadWhereSyncsFrequent: where syncs are frequent (SyncAlways),
// the preparer writes zeros over the active segment's blocks ahead of the
// tail, so that the records' syncs find the blocks written (see
// zeroNextLocked): never at or below the page of the tail, never past the
// window ahead or the file, each segment's ranges in order; and every
// record, appended one by one, in batches, and between them acknowledged,
// reads back whole after a reopen.
func TestZeroAheadWhereSyncsFrequent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	zeroed := recordZeros(t, dir)
	const segSize = 1 << 20
	l := mustOpen(t, dir, WithSync(SyncAlways), WithSegmentSize(segSize))
	const n = 3000 // about 3 MB: three segments
	for i := 0; i < n; {
		if i%7 == 0 && i+5 <= n {
			batch := make([][]byte, 5)
			for j := range batch {
				batch[j] = zeroRecord(i + j)
			}
			if _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
			i += 5
			continue
		}
		if _, err := l.Append(zeroRecord(i)); err != nil {
			t.Fatal(err)
		}
		i++
	}
	// An acknowledgement writes a frame at the tail too.
	if err := l.Ack(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)

	got := zeroed()
	if len(got) == 0 {
		t.Fatal("the preparer wrote no zeros ahead of the tail under SyncAlways")
	}
	last := map[string]int64{}
	for _, z := range got {
		switch {
		case z.from < segment.PageAlign(z.tail) || z.from < segment.PageSize:
			t.Errorf("%s: zeros over [%d, %d) with the tail at %d: at or before the tail's page", z.path, z.from, z.to, z.tail)
		case z.to <= z.from || z.to > segSize || z.to > z.tail+populateAhead:
			t.Errorf("%s: zeros over [%d, %d) with the tail at %d: past the window or the file", z.path, z.from, z.to, z.tail)
		case z.from < last[z.path]:
			t.Errorf("%s: zeros over [%d, %d) after [.., %d)", z.path, z.from, z.to, last[z.path])
		}
		last[z.path] = z.to
	}
	t.Logf("%d ranges zeroed in %d segments", len(got), len(last))

	l = mustOpen(t, dir, WithSegmentSize(segSize))
	recs := pendingOf(t, l)
	if len(recs) != n-3 {
		t.Fatalf("%d records pending after reopening, want %d", len(recs), n-3)
	}
	for _, r := range recs {
		if want := zeroRecord(int(r.Seq) - 1); !bytes.Equal(r.Data, want) {
			t.Fatalf("record %d reads %q..., want %q...", r.Seq, r.Data[:28], want[:28])
		}
	}
}

// TestZeroAheadOnlyWhereCallerSyncsOften: with syncs rare (SyncNever and no
// Sync, within one 64 MiB segment: pages are faulted for writing
// instead), under SyncNever with no Sync at all (1 MiB segments: the
// checkpoint rounds after rotations sync the active segment, which
// counts as frequent syncs for pre-faulting, but they are not the
// caller's), or with pre-faulting off (WithPrefault(false), as the Kafka
// producer's journal has it), the preparer writes no zeros; under
// SyncNever with a Sync every 100 KB, it does.
func TestZeroAheadOnlyWhereCallerSyncsOften(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option

		syncEvery int
		zeroes    bool
	}{
		{"SyncNever", []Option{WithSync(SyncNever), WithSegmentSize(64 << 20)}, 0, false},
		{"SyncNever, 1 MiB segments", []Option{WithSync(SyncNever), WithSegmentSize(1 << 20)}, 0, false},
		{"SyncAlways, no prefault", []Option{WithSync(SyncAlways), WithPrefault(false), WithSegmentSize(1 << 20)}, 0, false},
		{"SyncNever, Sync every 100 KB", []Option{WithSync(SyncNever), WithSegmentSize(1 << 20)}, 100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			zeroed := recordZeros(t, dir)
			l := mustOpen(t, dir, tc.opts...)
			// The first checkpoint's round, with nothing appended yet,
			// says nothing of the gap between syncs; one after the
			// first appends would (see the comment above).
			checkpointWritten(t, l)
			for i := 0; i < 3000; i++ {
				if _, err := l.Append(zeroRecord(i)); err != nil {
					t.Fatal(err)
				}
				if tc.syncEvery > 0 && i%tc.syncEvery == 0 {
					if err := l.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			}
			mustClose(t, l)
			got := zeroed()
			switch {
			case tc.zeroes && len(got) == 0:
				t.Error("no range zeroed")
			case !tc.zeroes && len(got) != 0:
				t.Errorf("%d ranges zeroed, the first [%d, %d) with the tail at %d; want none", len(got), got[0].from, got[0].to, got[0].tail)
			}
		})
	}
}
