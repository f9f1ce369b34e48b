package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
)

// cutMode is how a power cut leaves the disk: as a journaling file system
// does (unsynced directory operations kept in order, any prefix; unsynced
// pages lost), or harshly (any subset of the unsynced directory
// operations kept; half of the unsynced sectors written back, at the cut
// and at random moments before it; sizes changed since the last sync lost
// at random). With eachPrefix, each cut is taken with each prefix (each
// subset, harshly, of the first 4 at most) of the unsynced directory
// operations in turn rather than one at random.
type cutMode struct {
	name       string
	setup      func(c *cutFS)
	eachPrefix bool
}

var cutModes = []cutMode{
	{"journaled", func(*cutFS) {}, false},
	{"harsh", func(c *cutFS) {
		c.writeBack, c.subset, c.lostSizes, c.grain, c.bgWriteBack = 0.5, true, true, 512, 0.3
	}, false},
}

// cutModesEachPrefix are cutModes with each cut taken with each prefix or
// subset of the unsynced directory operations, and a killed process (the
// page cache and every directory operation kept).
var cutModesEachPrefix = []cutMode{
	{"journaled", cutModes[0].setup, true},
	{"harsh", cutModes[1].setup, true},
	{"killed", func(c *cutFS) { c.kill = true }, false},
}

// cutEachStep cuts the power at each file-system operation of an
// operation in turn: for k = 1, 2, ... it calls run with a cutFS for the
// log directory dir whose power goes at the k-th operation after run
// calls arm (every later one fails too). Operations of the log's
// background goroutines count as they come, so that the steps are those
// of one run, not always the same ones. After run returns, the power is
// cut if it is not out yet, and check gets the directory the disk's image
// was written to. It stops at the first k the operation did not reach,
// and fails if fewer than minCuts cuts happened.
func cutEachStep(t *testing.T, modes []cutMode, minCuts int, run func(t *testing.T, cfs *cutFS, dir string, arm func()), check func(t *testing.T, k int, after string)) {
	for mi, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cuts := 0
			// once cuts at step k keeping p unsynced directory
			// operations (p < 0: as the mode says); it reports whether
			// the cut happened at step k, and how many unsynced
			// operations there were.
			once := func(k, p int) (fired bool, unsynced int) {
				dir := filepath.Join(t.TempDir(), "log")
				cfs := newCutFS(dir, uint64(k*10+mi), 0)
				mode.setup(cfs)
				if p >= 0 {
					cfs.keep = func(n int) int { unsynced = n; return min(p, n) }
					cfs.keepSet = func(n int) uint64 { unsynced = n; return uint64(p) }
				}
				var armed atomic.Bool
				seen := 0
				var steps []string
				cfs.trigger = func(kind, path string) bool {
					if !armed.Load() {
						return false
					}
					steps = append(steps, kind+" "+filepath.Base(path))
					if seen++; seen == k {
						fired = true
					}
					return fired
				}
				run(t, cfs, dir, func() { armed.Store(true) })
				cfs.cut()
				cfs.mu.Lock()
				didFire := fired
				cfs.mu.Unlock()
				img := snapshot(cfs.image)
				cfs.close()
				if t.Failed() {
					return false, 0
				}
				if !didFire {
					cfs.mu.Lock()
					t.Logf("the operation's steps, in the run that was not cut: %s", strings.Join(steps, ", "))
					cfs.mu.Unlock()
					return false, 0
				}
				cuts++
				after := img.write(t, filepath.Join(t.TempDir(), "after"))
				name := fmt.Sprintf("k=%d", k)
				if p >= 0 {
					name += fmt.Sprintf("/kept=%d", p)
				}
				t.Run(name, func(t *testing.T) { check(t, k, after) })
				if t.Failed() {
					cfs.mu.Lock()
					t.Logf("files after the cut at step %d: %v; the steps up to the cut: %s", k, img.names(), strings.Join(steps, ", "))
					cfs.mu.Unlock()
				}
				return true, unsynced
			}
			for k := 1; !t.Failed(); k++ {
				if !mode.eachPrefix {
					if fired, _ := once(k, -1); !fired {
						break
					}
					continue
				}
				fired, n := once(k, 0)
				choices := n + 1 // prefixes
				if mode.name == "harsh" {
					choices = 1 << min(n, 4) // subsets
				}
				for p := 1; fired && p < choices && !t.Failed(); p++ {
					once(k, p)
				}
				if !fired {
					break
				}
			}
			if t.Failed() {
				return
			}
			if cuts < minCuts {
				t.Fatalf("only %d power cuts, want at least %d", cuts, minCuts)
			}
			t.Logf("%d power cuts", cuts)
		})
	}
}

// TestPowerCutWorkEachStep cuts the power at each step of a log's work,
// under SyncAlways and under SyncNever with an explicit Sync: an
// AppendBatch, an Ack of records in sealed segments, a Sync, the reclaim
// pass the Ack calls for (checkpoint, removal of acknowledged segments,
// merge of sparse ones), single appends that rotate to a new segment, and
// Close. After each cut the log must open without Repair; every record
// and acknowledgement the policy promised durable (under SyncAlways each
// one whose call returned, under SyncNever each one made before a Sync
// that returned) is there, its acknowledged records not pending; a batch
// is all there or not at all; what is there is a prefix in seq order,
// with the bytes written.
func TestPowerCutWorkEachStep(t *testing.T) {
	for _, pol := range []struct {
		name string
		p    SyncPolicy
	}{{"always", SyncAlways}, {"never", SyncNever}} {
		t.Run(pol.name, func(t *testing.T) { powerCutWorkEachStep(t, pol.p) })
	}
}

func powerCutWorkEachStep(t *testing.T, policy SyncPolicy) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	type result struct {
		durable  map[uint64]bool // seqs promised durable
		acked    map[uint64]bool // seqs whose Ack was promised durable
		ackCall  map[uint64]bool // seqs an Ack was called for
		batch    []uint64        // the batch's seqs (whether it returned or not)
		attempt  uint64          // the highest seq an append was called for
		returned []uint64        // seqs whose append returned since the last promise
		ackRet   []uint64        // seqs whose Ack returned since the last promise
	}
	var res result
	// promise records what a returned Sync (or, under SyncAlways, any
	// returned call) made durable.
	promise := func() {
		for _, q := range res.returned {
			res.durable[q] = true
		}
		for _, q := range res.ackRet {
			res.acked[q] = true
		}
		res.returned, res.ackRet = nil, nil
	}
	always := policy.kind == syncAlways
	modes := cutModesEachPrefix
	if testing.Short() {
		modes = cutModes // one choice of the unsynced directory operations a cut
	}
	cutEachStep(t, modes, 20, func(t *testing.T, cfs *cutFS, dir string, arm func()) {
		res = result{durable: map[uint64]bool{}, acked: map[uint64]bool{}, ackCall: map[uint64]bool{}}
		// Written under SyncNever and closed (synced), for speed: five
		// segments, the last nearly full.
		l, err := Open(dir, WithSegmentSize(smallSeg), withFS(cfs), WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		q := uint64(0)
		for l.Stats().Segments < 5 || l.active.tail < smallSeg-6000 {
			if q, err = l.Append(powerCutRecord(q + 1)); err != nil {
				t.Fatal(err)
			}
			res.durable[q] = true
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, WithSegmentSize(smallSeg), WithSync(policy), withFS(cfs), WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		// Every 7th record stays pending in the sealed segments (which
		// leaves them sparse, to be merged).
		l.mu.Lock()
		sealedEnd := l.segs[len(l.segs)-2].firstSeq
		l.mu.Unlock()
		var first []uint64
		for s := uint64(1); s < sealedEnd/2; s++ {
			if s%7 != 0 {
				first = append(first, s)
			}
		}
		if err := l.Ack(first...); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		for _, s := range first {
			res.acked[s], res.ackCall[s] = true, true
		}
		// A reclaim pass of our own, so that the background work has
		// settled: the steps cut at are those that follow.
		l.reclaimMu.Lock()
		_, err = l.reclaim()
		l.reclaimMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		arm()
		batch := [][]byte{powerCutRecord(q + 1), powerCutRecord(q + 2), powerCutRecord(q + 3)}
		res.batch = []uint64{q + 1, q + 2, q + 3}
		res.attempt = q + 3
		if _, err := l.AppendBatch(batch); err != nil {
			return
		}
		res.returned = append(res.returned, res.batch...)
		if always {
			promise()
		}
		var acks []uint64
		for s := sealedEnd / 2; s < sealedEnd; s++ {
			if s%7 != 0 {
				acks = append(acks, s)
				res.ackCall[s] = true
			}
		}
		if err := l.Ack(acks...); err != nil {
			return
		}
		res.ackRet = append(res.ackRet, acks...)
		if always {
			promise()
		}
		if err := l.Sync(); err != nil {
			return
		}
		promise()
		l.reclaimMu.Lock()
		_, err = l.reclaim()
		l.reclaimMu.Unlock()
		if err != nil {
			return
		}
		q += 3
		for range 3 {
			res.attempt = q + 1
			if q, err = l.Append(powerCutRecord(q + 1)); err != nil {
				return
			}
			res.returned = append(res.returned, q)
			if always {
				promise()
			}
		}
		if l.Close() == nil {
			promise()
		}
	}, func(t *testing.T, k int, after string) {
		l, err := Open(after, WithSegmentSize(smallSeg), WithLogger(quiet))
		if err != nil {
			t.Fatalf("Open after the power cut: %v", err)
		}
		defer mustClose(t, l)
		kept := l.Stats().NextSeq - 1
		if kept > res.attempt {
			t.Fatalf("the log holds seqs through %d, only %d were appended", kept, res.attempt)
		}
		pending := map[uint64]bool{}
		for _, rec := range pendingOf(t, l) {
			pending[rec.Seq] = true
			if !bytes.Equal(rec.Data, powerCutRecord(rec.Seq)) {
				t.Fatalf("record %d: bytes differ", rec.Seq)
			}
			if res.acked[rec.Seq] {
				t.Fatalf("record %d is pending, but its Ack was durable", rec.Seq)
			}
		}
		for q := uint64(1); q <= kept; q++ {
			if !pending[q] && !res.ackCall[q] {
				t.Fatalf("record %d, never acknowledged, is gone though records through %d are kept", q, kept)
			}
		}
		for q := range res.durable {
			if q > kept {
				t.Fatalf("record %d was promised durable, the log holds seqs through %d only", q, kept)
			}
		}
		n := 0
		for _, q := range res.batch {
			if q <= kept {
				n++
			}
		}
		if n != 0 && n != len(res.batch) {
			t.Fatalf("%d of the batch's %d records are there: a batch is all or nothing", n, len(res.batch))
		}
		if q, err := l.Append([]byte("after")); err != nil || q != kept+1 {
			t.Fatalf("Append after the cut = %d, %v; want %d", q, err, kept+1)
		}
	})
}

// TestPowerCutEncryptionEachStep cuts the power at each step of the first
// Open of a plain log with a key (the encryption file written through a
// temporary file, synced, renamed, the directory synced), a SyncAlways
// Append of an encrypted record and Close. After each cut the log must
// open with the key, every record appended before (plain) and the
// encrypted one if its Append returned there and readable; and it must
// refuse a wrong key whenever an encrypted record or the encryption file
// reached the disk.
func TestPowerCutEncryptionEachStep(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := bytes.Repeat([]byte{7}, 32)
	wrong := bytes.Repeat([]byte{8}, 32)
	var plain, sealed uint64 // the plain records' last seq; the sealed record's seq, if its Append returned
	cutEachStep(t, cutModesEachPrefix, 8, func(t *testing.T, cfs *cutFS, dir string, arm func()) {
		plain, sealed = 0, 0
		l, err := Open(dir, WithSegmentSize(smallSeg), WithSync(SyncAlways), withFS(cfs), WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if plain, err = l.Append(powerCutRecord(plain + 1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		arm()
		l, err = Open(dir, WithSegmentSize(smallSeg), WithSync(SyncAlways), WithEncryption(key), withFS(cfs), WithLogger(quiet))
		if err != nil {
			return
		}
		defer l.Close()
		q, err := l.Append(powerCutRecord(plain + 1))
		if err != nil {
			return
		}
		sealed = q
		l.Close()
	}, func(t *testing.T, k int, after string) {
		// On a copy: a first Open with a key writes the encryption file.
		probe := copyDir(t, after, filepath.Join(t.TempDir(), "probe"))
		if l, err := Open(probe, WithSegmentSize(smallSeg), WithEncryption(wrong), WithLogger(quiet)); err == nil {
			l.Close()
			v, verr := OpenView(after)
			if verr != nil {
				t.Fatal(verr)
			}
			in := v.Info()
			v.Close()
			if in.Encrypted || in.EncryptedRecords > 0 {
				t.Fatalf("a wrong key opened an encrypted log (%d encrypted records)", in.EncryptedRecords)
			}
		} else if !errors.Is(err, ErrKey) {
			t.Fatalf("Open with a wrong key: %v, want ErrKey or success", err)
		}
		l, err := Open(after, WithSegmentSize(smallSeg), WithEncryption(key), WithLogger(quiet))
		if err != nil {
			t.Fatalf("Open with the key after the power cut: %v", err)
		}
		defer mustClose(t, l)
		recs := pendingOf(t, l)
		want := plain
		if sealed != 0 {
			want = sealed
		}
		if uint64(len(recs)) < want {
			t.Fatalf("%d records after the power cut, want at least %d (plain through %d, sealed %d)", len(recs), want, plain, sealed)
		}
		for i, rec := range recs {
			if rec.Seq != uint64(i+1) || !bytes.Equal(rec.Data, powerCutRecord(rec.Seq)) {
				t.Fatalf("record %d: seq %d or bytes differ", i+1, rec.Seq)
			}
		}
	})
}

// TestPowerCutRecoveryEachStep cuts the power at each step of the Open
// that recovers from a power cut (clearing a torn tail, removing the
// segments written after a hole, syncing the directory, writing the
// checkpoint) and of the Close after it. Recovery must be idempotent: the
// next Open keeps exactly the records an undisturbed recovery keeps.
func TestPowerCutRecoveryEachStep(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A killed log whose metadata never reached the disk (nothing is
	// below a durable mark), with frames in the middle of its second
	// segment never written back: a hole with valid frames after it, and
	// two segments or more after that one.
	_, killed := damageImages(t)
	img := killed.snap.clone()
	delete(img, index.SuperblockName)
	delete(img, index.CheckpointName)
	names := img.segNames()
	if len(names) < 4 {
		t.Fatalf("the image has %d segments, want 4 or more", len(names))
	}
	b := img[names[1]]
	frs := framesOf(t, b)
	mid := len(frs) / 2
	clear(b[frs[mid].Offset:frs[mid+1].End()])
	probe := img.write(t, filepath.Join(t.TempDir(), "probe"))
	st, err := load(vfs.OS, probe, loadRead)
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range st.segs {
		sg.file.Close()
	}
	if st.tornFrom < 0 || len(st.dropped) < 2 {
		t.Fatalf("the image's hole: torn from %d, %d segments after it; want a hole and 2 or more", st.tornFrom, len(st.dropped))
	}
	ref := img.write(t, filepath.Join(t.TempDir(), "ref"))
	l, err := Open(ref, WithSegmentSize(smallSeg), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	want := l.Stats().NextSeq
	var wantPending []uint64
	for _, rec := range pendingOf(t, l) {
		wantPending = append(wantPending, rec.Seq)
	}
	mustClose(t, l)
	cutEachStep(t, cutModesEachPrefix, 5, func(t *testing.T, cfs *cutFS, dir string, arm func()) {
		img.write(t, dir)
		if err := cfs.adopt(); err != nil {
			t.Fatal(err)
		}
		arm()
		l, err := Open(dir, WithSegmentSize(smallSeg), withFS(cfs), WithLogger(quiet))
		if err != nil {
			return
		}
		l.Close()
	}, func(t *testing.T, k int, after string) {
		l, err := Open(after, WithSegmentSize(smallSeg), WithLogger(quiet))
		if err != nil {
			t.Fatalf("Open after a power cut during recovery: %v", err)
		}
		defer mustClose(t, l)
		var got []uint64
		for _, rec := range pendingOf(t, l) {
			got = append(got, rec.Seq)
			if !bytes.Equal(rec.Data, killed.m.data[rec.Seq]) {
				t.Fatalf("record %d: bytes differ", rec.Seq)
			}
		}
		if next := l.Stats().NextSeq; next != want || fmt.Sprint(got) != fmt.Sprint(wantPending) {
			t.Fatalf("after a power cut during recovery: next seq %d, pending %v; an undisturbed recovery: %d, %v", next, got, want, wantPending)
		}
	})
}
