package wal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// writeMixedLog writes, in one segment, records appended one by one and
// in batches, with ack frames between them, and returns the segment
// file's path.
func writeMixedLog(t *testing.T, dir string, seed uint64, records int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	l := mustOpen(t, dir, WithSegmentSize(64<<20))
	rec := func() []byte { return randRecord(r, r.IntN(600)) }
	for n := 0; n < records; {
		switch x := r.IntN(10); {
		case x < 4:
			batch := make([][]byte, 1+r.IntN(8))
			for i := range batch {
				batch[i] = rec()
			}
			if _, err := l.AppendBatch(batch); err != nil {
				t.Fatal(err)
			}
			n += len(batch)
		case x < 5 && n > 0:
			next := l.Stats().NextSeq
			if err := l.Ack(1+r.Uint64N(next-1), 1+r.Uint64N(next-1)); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := l.Append(rec()); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	mustClose(t, l)
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segment files, want 1", len(segs))
	}
	return segs[0]
}

// openedOf opens the segments of dir as load does before it scans them.
func openedOf(t *testing.T, dir string) []*opened {
	t.Helper()
	ld := &loader{fsys: vfs.OS, dir: dir, mode: loadRead, st: &loaded{tornFrom: -1},
		sbPath: vfs.Join(dir, index.SuperblockName), ckPath: vfs.Join(dir, index.CheckpointName)}
	if err := ld.readMetadata(); err != nil {
		t.Fatal(err)
	}
	var err error
	if ld.ids, err = listSegments(vfs.OS, dir); err != nil {
		t.Fatal(err)
	}
	ld.setMark()
	ld.openSegments()
	for _, o := range ld.files {
		if o.err != nil {
			t.Fatal(o.err)
		}
		t.Cleanup(func() { o.s.file.Close() })
	}
	return ld.files
}

// scanSummary is everything a segment's scan gives the load.
type scanSummary struct {
	Locs                     []int64 // seq, offset, seq, offset...
	Acks                     []ackRange
	LastSeq                  uint64
	Pending                  int
	PendingBytes, LiveFrames int64
	SealedAt, PlainAt        int64
	Damage                   string
	DamageOff                int64
	End, TornTo              int64
	Batch                    bool
	FaultFree                bool
}

// scanCut scans o in the pieces cuts make (none: whole), and reports what
// it found and whether the pieces joined.
func scanCut(o *opened, cuts []int64) (scanSummary, bool) {
	j := &segScan{o: o, end: o.s.file.HoleFrom(0), cuts: slices.Clone(cuts)}
	scanJobs([]*segScan{j}, 2)
	return summarize(j.pieces[0], j.res, j.errs[0] == nil), j.joined
}

// mappingScan scans o as one scan of its mapping from the first frame,
// as Open scanned before it read segments a window at a time: the
// reference the windowed scan must match.
func mappingScan(o *opened) (s scanSummary) {
	f := o.s.file
	fs := newFrameScan(o.s, true)
	fs.from, fs.to = segment.HeaderSize, f.HoleFrom(0)
	var res scanResult
	var err error
	func() {
		defer catchFault(f.Path, &err)
		sc := fs.frames(segment.NewScanner(f.Bytes(), segment.HeaderSize))
		res = fs.finish(f.File, &sc)
	}()
	return summarize(fs, res, err == nil)
}

// summarize is what a scan (fs, ending in res) gives the load.
func summarize(fs *frameScan, res scanResult, faultFree bool) scanSummary {
	var s scanSummary
	for q, c := range fs.locs.All() {
		s.Locs = append(s.Locs, int64(q), c.Off, int64(c.Stored), int64(c.Raw))
	}
	s.Acks = append([]ackRange{}, fs.acks...)
	s.LastSeq, s.Pending, s.PendingBytes, s.LiveFrames = fs.lastSeq, fs.pending, fs.pendingBytes, fs.liveFrames
	s.SealedAt, s.PlainAt = fs.sealedAt, fs.plainAt
	if d := res.damage; d != nil {
		s.Damage, s.DamageOff = d.Error(), d.Offset
	}
	s.End, s.TornTo, s.Batch = res.end, res.tornTo, res.batch
	s.FaultFree = faultFree
	return s
}

// boundaries returns the offsets of the frames of the segment file at
// path, and which of them are inside a batch (after its first frame) or
// ack frames.
func boundaries(t *testing.T, path string) (all, inBatch, acks []int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	open := false
	for _, fr := range framesOf(t, b) {
		all = append(all, fr.Offset)
		if fr.IsAck() {
			acks = append(acks, fr.Offset)
		}
		if open && fr.InBatch() {
			inBatch = append(inBatch, fr.Offset)
		}
		open = fr.InBatch() && !fr.Commits()
	}
	return all, inBatch, acks
}

// TestSplitScanMatchesWhole: a segment scanned in pieces, cut at any frame
// boundary (inside a batch, at an ack frame, several cuts at once), gives
// what one scan of it gives, and the pieces join; cut anywhere else, the
// pieces do not join and the scan made again whole gives the same.
func TestSplitScanMatchesWhole(t *testing.T) {
	dir := t.TempDir()
	path := writeMixedLog(t, dir, 1, 300)
	all, inBatch, acks := boundaries(t, path)
	if len(inBatch) < 10 || len(acks) < 5 {
		t.Fatalf("the log has %d frames inside batches and %d ack frames: too few to cut at", len(inBatch), len(acks))
	}
	o := openedOf(t, dir)[0]
	whole, ok := scanCut(o, nil)
	if !ok || whole.Damage != "" || !whole.FaultFree || whole.Pending == 0 || len(whole.Acks) == 0 {
		t.Fatalf("whole scan: joined %v, %+v", ok, whole)
	}
	var inPlace, copied int
	hook := func(in bool) {
		if in {
			inPlace++
		} else {
			copied++
		}
	}
	joinHook.Store(&hook)
	defer joinHook.Store(nil)
	check := func(cuts []int64, wantJoin bool) {
		t.Helper()
		got, joined := scanCut(o, cuts)
		if joined != wantJoin {
			t.Fatalf("cuts %v: joined %v, want %v", cuts, joined, wantJoin)
		}
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("cuts %v: scan differs from the whole scan:\n got %+v\nwant %+v", cuts, got, whole)
		}
	}
	// Every frame boundary but the first, alone.
	for _, c := range all[1:] {
		check([]int64{c}, true)
	}
	// Several at once.
	r := rand.New(rand.NewPCG(2, 2))
	for range 50 {
		cuts := []int64{}
		for _, c := range all[1:] {
			if r.IntN(20) == 0 {
				cuts = append(cuts, c)
			}
		}
		check(cuts, true)
	}
	check(all[1:], true)
	check(inBatch, true)
	check(acks, true)
	// The maps of pieces cut at frame boundaries join in place, but where
	// the last piece outgrows the room planned for it.
	t.Logf("pieces joined: maps in place %d, copied %d", inPlace, copied)
	if inPlace < 9*(inPlace+copied)/10 {
		t.Fatalf("pieces' maps joined in place %d times, copied %d", inPlace, copied)
	}
	// Not frame boundaries: inside a frame's header or payload.
	for i := range 50 {
		c := all[1+r.IntN(len(all)-2)] + segment.Align*int64(1+i%3)
		check([]int64{c}, false)
		check([]int64{all[1], c}, false)
	}
}

// TestSplitScanDamage: damage in a segment scanned in pieces — in the
// second half, in the first, right at a cut, a torn batch at the end,
// non-zero bytes after the data — keeps the pieces from joining, and the
// segment scanned again whole reports the damage one scan reports.
func TestSplitScanDamage(t *testing.T) {
	src := t.TempDir()
	path := writeMixedLog(t, src, 3, 300)
	all, inBatch, _ := boundaries(t, path)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := all[len(all)-1]
	if dataEnd(t, orig)+100 >= int64(len(orig)) {
		t.Fatalf("the segment file (%d bytes) has no room after its data (%d)", len(orig), dataEnd(t, orig))
	}
	var lastBatch int64 // the first frame of the last batch
	for i := len(inBatch) - 1; i >= 0; i-- {
		if j := slices.Index(all, inBatch[i]); j > 0 && !slices.Contains(inBatch, all[j-1]) {
			lastBatch = all[j-1]
			break
		}
	}
	mid, quarter := all[len(all)/2], all[len(all)/4]
	damages := []struct {
		name string
		at   int64 // the byte flipped
	}{
		{"payload in the second half", all[len(all)*3/4] + segment.FrameHeaderSize},
		{"payload in the first half", all[len(all)/8] + segment.FrameHeaderSize},
		{"header at the cut", mid + 16},
		{"header after the cut", all[len(all)/2+1] + 16},
		{"seq of the frame at the cut", mid + 17},
		{"last frame", end + 8},
		{"after the data", dataEnd(t, orig) + 100},
		{"batch at the end", lastBatch + 9},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			b := slices.Clone(orig)
			b[d.at] ^= 0x40
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o600); err != nil {
				t.Fatal(err)
			}
			o := openedOf(t, dir)[0]
			whole, _ := scanCut(o, nil)
			if whole.Damage == "" {
				t.Fatalf("flipping byte %d damaged nothing: %+v", d.at, whole)
			}
			for _, cuts := range [][]int64{{mid}, {quarter, mid}, {quarter, mid, all[len(all)*3/4]}} {
				got, joined := scanCut(o, cuts)
				if joined {
					t.Fatalf("cuts %v: the pieces of a damaged segment joined", cuts)
				}
				if !reflect.DeepEqual(got, whole) {
					t.Fatalf("cuts %v: scan differs from the whole scan:\n got %+v\nwant %+v", cuts, got, whole)
				}
			}
		})
	}
}

// TestOpenSplitsLargeSegment: Open cuts a large segment into pieces when
// it has workers to spare, and the log it opens is the one a scan of each
// segment whole gives; with a frame damaged in the second half, Open
// reports what the whole scan reports.
func TestOpenSplitsLargeSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 24 MiB segment")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 5))
	m := newModel()
	l := mustOpen(t, dir, WithSegmentSize(64<<20))
	for m.pendingBytes() < 24<<20 {
		batch := make([][]byte, 1+r.IntN(8))
		for i := range batch {
			batch[i] = randRecord(r, r.IntN(2000))
		}
		first, err := l.AppendBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range batch {
			m.data[first+uint64(i)] = d
		}
	}
	mustClose(t, l)

	files := openedOf(t, dir)
	jobs := []*segScan{{o: files[0], end: files[0].s.file.HoleFrom(0)}}
	planCuts(jobs, 2)
	all, _, _ := boundaries(t, files[0].path)
	if len(jobs[0].cuts) < 2 {
		t.Fatalf("planCuts cut a %d-byte segment at %v: want 2 cuts or more", jobs[0].end, jobs[0].cuts)
	}
	for _, c := range jobs[0].cuts {
		if _, found := slices.BinarySearch(all, c); !found {
			t.Fatalf("planCuts cut at %d, not a frame boundary", c)
		}
	}
	whole, _ := scanCut(files[0], nil)
	inPlace := false
	hook := func(in bool) { inPlace = in }
	joinHook.Store(&hook)
	split, joined := scanCut(files[0], jobs[0].cuts)
	joinHook.Store(nil)
	if !joined || !reflect.DeepEqual(split, whole) {
		t.Fatalf("cuts %v: joined %v; equal to the whole scan: %v", jobs[0].cuts, joined, reflect.DeepEqual(split, whole))
	}
	if !inPlace {
		t.Fatal("the pieces' location maps were copied when they joined, not joined in place")
	}
	l = mustOpen(t, dir)
	m.check(t, l)
	mustClose(t, l)

	// A payload byte flipped in the last piece, below the durable mark:
	// corruption, named where the whole scan names it.
	path := files[0].path
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := all[len(all)*7/8] + segment.FrameHeaderSize
	b[at] ^= 1
	bad := t.TempDir()
	copyDir(t, dir, bad)
	if err := os.WriteFile(filepath.Join(bad, filepath.Base(path)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	want, _ := scanCut(openedOf(t, bad)[0], nil)
	if want.Damage == "" {
		t.Fatal("the flipped byte damaged nothing")
	}
	_, err = Open(bad)
	ce := asCorruption(t, err, bad)
	if ce.Offset != want.DamageOff || ce.Error() != want.Damage {
		t.Fatalf("Open: %v at %d; the whole scan: %s at %d", err, ce.Offset, want.Damage, want.DamageOff)
	}
}

// TestSplitScanSeams: damage that only the seam between two pieces shows —
// each piece sound on its own — keeps them from joining: a frame missing
// right before the cut (the seqs jump there), and a batch whose commit
// frame was rewritten as a plain record frame, cut at that frame (the
// batch before the cut never commits).
func TestSplitScanSeams(t *testing.T) {
	src := t.TempDir()
	path := writeMixedLog(t, src, 7, 300)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frames := framesOf(t, b)
	// Frames of the second half: a plain record frame after a plain one,
	// and a batch's commit frame.
	var plain, commit segment.Frame
	for i, fr := range frames[len(frames)/2:] {
		prev := frames[len(frames)/2+i-1]
		if plain.Seq == 0 && !fr.IsAck() && !fr.InBatch() && !prev.IsAck() && !prev.InBatch() {
			plain = fr
		}
		if commit.Seq == 0 && fr.Commits() && prev.InBatch() {
			commit = fr
		}
	}
	if plain.Seq == 0 || commit.Seq == 0 {
		t.Fatal("no plain frame after a plain one, or no batch, in the second half")
	}
	cases := []struct {
		name string
		edit func(b []byte) (cut int64)
	}{
		{"frame missing before the cut", func(b []byte) int64 {
			// Drop the plain frame's predecessor: the frames after it
			// move up by its size, the plain one to where it was.
			i := slices.IndexFunc(frames, func(f segment.Frame) bool { return f.Offset == plain.Offset })
			prev := frames[i-1]
			copy(b[prev.Offset:], b[prev.End():])
			return prev.Offset
		}},
		{"batch uncommitted at the cut", func(b []byte) int64 {
			p := slices.Clone(commit.Payload)
			segment.PutFrame(b[commit.Offset:], commit.Seq, commit.Flags&^(segment.FlagBatch|segment.FlagCommit), int(commit.RawLen), p)
			return commit.Offset
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bb := slices.Clone(b)
			cut := c.edit(bb)
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), bb, 0o600); err != nil {
				t.Fatal(err)
			}
			o := openedOf(t, dir)[0]
			whole, _ := scanCut(o, nil)
			if whole.Damage == "" || whole.DamageOff > cut {
				t.Fatalf("the edit damaged nothing before the cut at %d: %+v", cut, whole)
			}
			got, joined := scanCut(o, []int64{cut})
			if joined {
				t.Fatal("the pieces joined across the seam")
			}
			if !reflect.DeepEqual(got, whole) {
				t.Fatalf("scan differs from the whole scan:\n got %+v\nwant %+v", got, whole)
			}
		})
	}
}

// TestSplitScanFrameInPayload: a record whose payload is a valid frame —
// the seq of the record itself, ending where the record ends — cut at that
// inner frame: the piece after it goes on as if the inner frame were the
// record, but the piece before does not end at the cut, so the pieces do
// not join, and the scan made again whole finds the record.
func TestSplitScanFrameInPayload(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(1<<20))
	for i := range 50 {
		if _, err := l.Append([]byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	seq := l.Stats().NextSeq
	inner := make([]byte, segment.FrameSize(100))
	segment.PutFrame(inner, seq, 0, 100, bytes.Repeat([]byte("x"), 100))
	if _, err := l.Append(inner); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := l.Append([]byte(fmt.Sprintf("after %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	o := openedOf(t, dir)[0]
	var off int64
	b := o.s.file.Bytes()
	for _, fr := range framesOf(t, b) {
		if fr.Seq == seq {
			off = fr.Offset
		}
	}
	cut := off + segment.FrameHeaderSize
	if fr, err := segment.DecodeFrame(b, cut); err != nil || fr.Seq != seq || fr.End() != off+int64(segment.FrameSize(len(inner))) {
		t.Fatalf("no frame of seq %d ending with the record at %d: %+v, %v", seq, cut, fr, err)
	}
	whole, _ := scanCut(o, nil)
	got, joined := scanCut(o, []int64{cut})
	if joined {
		t.Fatal("the pieces joined at a frame inside a payload")
	}
	if !reflect.DeepEqual(got, whole) || whole.Damage != "" {
		t.Fatalf("scan differs from the whole scan:\n got %+v\nwant %+v", got, whole)
	}
}
