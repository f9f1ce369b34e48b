package wal

import (
	"cmp"
	"errors"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// verifySegments scans every frame of the segments opened, several at a
// time: checksums are most of the work of opening a log.
//
// A log of a few large segments would leave cores idle while one scans
// the largest, so a segment may be cut into pieces (planCuts), each
// scanned on its own from a frame boundary and joined after (segScan.join).
// The joined scan stands for the whole segment's only if each piece ends
// exactly where the next begins and the seqs and batches go on across each
// cut as one scan from the start would see them; otherwise — and whenever
// a piece finds damage or faults — the segment is scanned again whole, so
// that what Open reports, and how it classifies damage, is what one scan
// from the start finds.
func (ld *loader) verifySegments() {
	through := ld.st.ckpt.Through
	workers := runtime.GOMAXPROCS(0)
	var jobs []*segScan
	hwm := ld.st.hwm
	for _, o := range ld.files {
		if o.err == nil && o.s != nil && ld.reuse(o, through) {
			continue
		}
		if o.err == nil && o.s != nil {
			end := o.s.file.HoleFrom(0)
			if o.s.id == hwm.Segment && hwm.Offset >= segment.HeaderSize {
				// The segment that was active at the last sync: its data
				// ends about there (the file system's data may go on into
				// zero pages a preparer faulted in).
				end = min(end, hwm.Offset)
			}
			jobs = append(jobs, &segScan{o: o, end: end})
		}
	}
	planCuts(jobs, workers)
	scanJobs(jobs, workers)
	for _, j := range jobs {
		j.apply(through)
		if ld.st.scans != nil && j.errs[0] == nil {
			ld.keep(j.o, j.pieces[0].acks)
		}
	}
}

// scanJobs scans the segments of jobs in their pieces on up to workers
// goroutines, and again whole those whose pieces do not join.
func scanJobs(jobs []*segScan, workers int) {
	var units []pieceRef
	for _, j := range jobs {
		units = j.units(units)
	}
	runPieces(units, workers)
	units = units[:0]
	for _, j := range jobs {
		if j.joined = j.join(); !j.joined {
			j.cuts = nil
			units = j.units(units)
		}
	}
	runPieces(units, workers)
}

const (
	// minPiece is the smallest piece planCuts cuts a segment into: a cut
	// costs a search for a frame boundary and a join.
	minPiece = 4 << 20
	// cutSearch is how far after a cut point planCuts looks for the frame
	// boundary to cut at; a segment with none there is not cut there.
	cutSearch = 1 << 20
)

// planCuts cuts the segments of jobs into pieces of about equal size, so
// that the workers have about twice as many pieces as there are workers,
// if the segments are large enough for that. Each cut is the first frame
// at or after its cut point (within cutSearch) that decodes with a valid
// checksum, found as Resync finds one after damage; where there is none,
// or the search faults, there is no cut. A frame found inside another's
// payload is no boundary: the piece before then does not end at it, and
// join refuses the pieces. Compacted segments, whose seqs may have gaps,
// are not cut.
func planCuts(jobs []*segScan, workers int) {
	if workers < 2 {
		return
	}
	var total int64
	for _, j := range jobs {
		total += max(j.end-segment.HeaderSize, 0)
	}
	piece := max(minPiece, total/int64(2*workers))
	for _, j := range jobs {
		size := j.end - segment.HeaderSize
		n := (size + piece - 1) / piece
		if n < 2 || j.o.s.compacted() {
			continue
		}
		var err error
		func() {
			defer catchFault(j.o.s.file.Path, &err)
			b := j.o.s.file.Bytes()[:j.end]
			for k := int64(1); k < n; k++ {
				p := segment.HeaderSize + k*size/n
				if len(j.cuts) > 0 && p <= j.cuts[len(j.cuts)-1] {
					continue
				}
				at, sure := segment.NewResync(b[:min(p+cutSearch, j.end)]).Next(p)
				if at >= p && sure {
					j.cuts = append(j.cuts, at)
				}
			}
		}()
		if err != nil {
			j.cuts = nil
		}
	}
}

// pieceRef is piece i of a segment's scan: a unit of work of runPieces.
type pieceRef struct {
	j *segScan
	i int
}

// runPieces scans the pieces of units on up to workers goroutines, the
// caller's one of them, the largest first, and returns when all are
// scanned.
//
// The units are queued before any goroutine starts, so that no worker
// waits for the caller to hand it the next one, and the caller scans
// rather than waits while the others do.
func runPieces(units []pieceRef, workers int) {
	slices.SortStableFunc(units, func(a, b pieceRef) int {
		af, at := a.j.span(a.i)
		bf, bt := b.j.span(b.i)
		return cmp.Compare(bt-bf, at-af)
	})
	work := make(chan pieceRef, len(units))
	for _, u := range units {
		work <- u
	}
	close(work)
	scan := func() {
		var buf []byte // a worker's window, for all its pieces
		for u := range work {
			u.j.scan(u.i, &buf)
		}
	}
	var wg sync.WaitGroup
	for range min(workers, len(units)) - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			debug.SetPanicOnFault(true) // per goroutine; this one ends here
			scan()
		}()
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	scan()
	wg.Wait()
}

// segScan is the scan of one segment file, in one piece or several.
type segScan struct {
	o      *opened
	end    int64   // about where the data ends: the last sync's mark, or the file system's data (HoleFrom)
	cuts   []int64 // the offsets where the pieces after the first begin
	split  *index.Split
	pieces []*frameScan
	errs   []error    // a piece's scan faulted
	res    scanResult // the last piece's
	joined bool       // the pieces joined (a segment in one piece always does)
}

// units appends a unit of work for each of j's pieces to units.
func (j *segScan) units(units []pieceRef) []pieceRef {
	j.pieces = make([]*frameScan, len(j.cuts)+1)
	j.errs = make([]error, len(j.cuts)+1)
	j.split = j.planSplit()
	for i := range j.pieces {
		units = append(units, pieceRef{j, i})
	}
	return units
}

// planSplit returns one allocation for the location maps of j's pieces
// (index.Split), if j is cut: each piece after the first begins with the
// record (or after the ack frame) whose header is at its cut, so the
// pieces but the last hold known numbers of records; the last is given
// room for as many as the others' density predicts, and an eighth more.
// A header that cannot be read, or seqs that could not be what the pieces
// hold (not ascending, or more records than frames fit), plan nothing:
// the pieces' maps are then separate and joined by copying, as a piece
// that outgrows its room is.
func (j *segScan) planSplit() *index.Split {
	if len(j.cuts) == 0 {
		return nil
	}
	f := j.o.s.file
	starts := make([]uint64, 1, len(j.cuts)+1)
	starts[0] = j.o.s.firstSeq
	var h [segment.FrameHeaderSize]byte
	for k, c := range j.cuts {
		if f.ReadAt(h[:], c) != nil {
			return nil
		}
		q := segment.HeaderSeq(h[:])
		if segment.HeaderFlags(h[:])&segment.FlagAck != 0 {
			q++
		}
		prev, from := starts[k], int64(segment.HeaderSize)
		if k > 0 {
			from = j.cuts[k-1]
		}
		if q <= prev || q-prev > uint64(c-from)/segment.FrameHeaderSize {
			return nil
		}
		starts = append(starts, q)
	}
	c := j.cuts[len(j.cuts)-1]
	left := max(j.end-c, 0)
	n := left * int64(starts[len(starts)-1]-starts[0]) / (c - segment.HeaderSize)
	n = min(n+n/8+16, left/segment.FrameHeaderSize+1)
	return index.NewSplit(starts, int(n))
}

// span returns the offsets piece i begins and ends at; the last ends at
// the end of the file system's data, though its scan goes on to the end of
// the file.
func (j *segScan) span(i int) (from, to int64) {
	from, to = segment.HeaderSize, j.end
	if i > 0 {
		from = j.cuts[i-1]
	}
	if i < len(j.cuts) {
		to = j.cuts[i]
	}
	return from, to
}

// windowHook, if set (by tests), is called with the span of each window
// a segment's scan reads, and of each frame larger than a window that it
// scans through the mapping (mapped).
var windowHook atomic.Pointer[func(from, to int64, mapped bool)]

// scan scans piece i, reading it into *buf a window at a time; *buf grows
// to a window (readWindow), or to the piece if that is smaller.
//
// Reading copies the data once, into a buffer that stays in the cache
// while its frames are hashed; scanning the mapping instead costs a fault
// (or a populated page-table entry) and a release per page, more than the
// copy. A frame larger than a window is scanned through the mapping. Where the
// windowed scan cannot go on — damage, the end of the data, a failed
// read — the mapping's scan takes over from the frame it stopped at, so
// that how a scan ends, and what finish and join make of it, is exactly
// what one scan of the mapping finds: a scan carries nothing from frame
// to frame but fs.
func (j *segScan) scan(i int, bufp *[]byte) {
	f := j.o.s.file
	from, to := j.span(i)
	if n := int(min(readWindow, to-from)); cap(*bufp) < n {
		*bufp = make([]byte, n)
	}
	buf := (*bufp)[:cap(*bufp)]
	last := i == len(j.cuts)
	fs := newFrameScan(j.o.s, i == 0)
	fs.from, fs.to = from, to
	switch {
	case j.split != nil:
		// Room planned for every piece (planSplit).
		fs.locs, fs.planned = j.split.Part(i), true
	case i == 0:
		// The first piece's map takes the others' when they join: room
		// for the whole segment's records, reserved once.
		fs.to = j.end
	}
	j.pieces[i] = fs
	// The windows go up to the piece's end, the last's to about where its
	// data ends: past that, reading would cache pages of the unwritten
	// preallocation (see finish).
	at := from
	done := false // the windows' scan found damage: it ends there
	var sc segment.Scanner
	for at < to {
		win := buf[:min(int64(len(buf)), to-at)]
		if f.ReadAt(win, at) != nil {
			break
		}
		if hook := windowHook.Load(); hook != nil {
			(*hook)(at, at+int64(len(win)), false)
		}
		sc = fs.frames(segment.NewScannerAt(win, at, at))
		if sc.Offset() == at && errors.Is(sc.Err(), segment.ErrPartial) && len(win) >= segment.FrameHeaderSize {
			// A frame larger than buf: that frame alone through the
			// mapping, and on with windows after it.
			end := at + int64(segment.FrameSize(int(segment.HeaderStored(win))))
			if end > to {
				break
			}
			if hook := windowHook.Load(); hook != nil {
				(*hook)(at, end, true)
			}
			var err error
			f.Populate(at, end)
			func() {
				defer catchFault(f.Path, &err)
				sc = fs.frames(segment.NewScanner(f.Bytes()[:end], at))
			}()
			if err != nil {
				break
			}
		}
		prev := at
		at = sc.Offset() // the end of the window, or where the scan stopped
		if fs.damage != nil {
			done = true
			break
		}
		if at == prev || sc.Err() != nil && !errors.Is(sc.Err(), segment.ErrPartial) {
			break
		}
	}
	// The rest, if any, through the mapping: fault its data in with one
	// call rather than a fault every few pages while hashing it.
	if !done && at < to {
		f.Populate(at, to)
	}
	func() {
		defer catchFault(f.Path, &j.errs[i])
		if !done {
			b := f.Bytes()
			if !last {
				b = b[:to]
			}
			sc = fs.frames(segment.NewScanner(b, at))
		}
		if last {
			j.res = fs.finish(f.File, &sc)
		} else {
			fs.complete = fs.damage == nil && sc.Err() == nil
		}
	}()
	// Verified: nothing reads it again but Pending, Get and Ack, which
	// read what they need.
	if last {
		to = f.Size()
	}
	f.Release(from, to)
}

// join makes the pieces' scans one, the first, and reports whether they
// join: no piece found damage or faulted, each ends where the next begins,
// and each goes on from the one before (frameScan.merge).
func (j *segScan) join() bool {
	if len(j.pieces) == 1 {
		return true
	}
	for i, fs := range j.pieces {
		if j.errs[i] != nil || fs.damage != nil || !fs.known || i < len(j.cuts) && !fs.complete {
			return false
		}
	}
	if j.res.damage != nil {
		return false
	}
	var joined *index.Locations
	if j.split != nil {
		// A batch open at a piece's end goes on past its cut (merge
		// checks), so its records count: in the piece's own map, as
		// merge would add them to the first's.
		maps := make([]*index.Locations, len(j.pieces))
		for i, fs := range j.pieces {
			if i < len(j.cuts) {
				fs.flushBatch()
			}
			maps[i] = fs.locs
		}
		joined = j.split.Join(maps)
	}
	if joined == nil {
		n := 0
		for _, fs := range j.pieces {
			n += fs.locs.Len() + len(fs.batchLocs)
		}
		j.pieces[0].locs.Reserve(n - j.pieces[0].locs.Len())
	}
	for _, fs := range j.pieces[1:] {
		if !j.pieces[0].merge(fs, joined == nil) {
			return false
		}
	}
	if joined != nil {
		j.pieces[0].locs = joined
	}
	if hook := joinHook.Load(); hook != nil {
		(*hook)(joined != nil)
	}
	return true
}

// joinHook, if set (by tests), is called when the pieces of a segment
// join, with whether their location maps joined in place (index.Split).
var joinHook atomic.Pointer[func(inPlace bool)]

// apply gives the segment and its opened file what the scan found (after
// join, in one piece).
func (j *segScan) apply(through uint64) {
	o := j.o
	if err := j.errs[0]; err != nil {
		o.err = err
		return
	}
	fs := j.pieces[0]
	fs.apply(o.s, j.res.end)
	o.scan = j.res
	if o.s.id > through {
		o.acks = fs.acks
	}
}

// scanResult is what a segment's scan found: where the data ends and, if
// damage follows, the damage and the extent of non-zero bytes from it.
type scanResult struct {
	damage *CorruptionError
	end    int64 // the end of the data: the offset a cut would keep up to
	tornTo int64 // just past the last non-zero byte at or after end
	batch  bool  // the damage ends an unfinished batch
}

// frameLoc is a record's seq and where its frame is.
type frameLoc struct {
	seq uint64
	index.Loc
}

// frameScan reads the frames of a segment, or of one piece of it,
// checking checksums, seq order and batches, and collects the records'
// locations and counts and the ack frames' ranges. It stops at the first
// damage (fs.damage); the caller classifies it.
type frameScan struct {
	path      string
	compacted bool
	// expect is the seq the next record frame must have. A piece after
	// the first begins without it (known false): its first frame implies
	// it, and start keeps what that was, for merge to check against the
	// piece before; headBatch is whether that frame belongs to a batch.
	expect    uint64
	known     bool
	start     uint64
	headBatch bool
	// complete: a piece's scan (not the last's) ended exactly at its end.
	complete bool
	// from and to: the piece's span, about (the last piece's to is where
	// the data ends about), from which add estimates how many records
	// the piece holds, to reserve room for them once (see reserveAfter).
	from, to int64

	locs *index.Locations
	// planned: locs is a part of a Split, with room for the piece's
	// records planned; nothing to reserve.
	planned      bool
	acks         []ackRange // the ranges of every ack frame, in order
	lastSeq      uint64
	pending      int
	pendingBytes int64
	liveFrames   int64
	sealedAt     int64      // offset of the first encrypted record frame, or 0
	plainAt      int64      // offset of the first unencrypted record frame, or 0
	batchStart   int64      // offset of the first frame of an open batch, or -1
	batchLocs    []frameLoc // the records of the open batch
	damage       *CorruptionError
}

// newFrameScan returns a scan of s from its first frame (first) or from
// a frame inside it.
func newFrameScan(s *seg, first bool) *frameScan {
	fs := &frameScan{path: s.file.Path, compacted: s.compacted(), batchStart: -1}
	if first {
		fs.expect, fs.start, fs.known = s.firstSeq, s.firstSeq, true
		fs.locs = index.NewLocations(s.firstSeq)
	}
	return fs
}

// add counts a record as pending: countPending later subtracts the
// acknowledged ones.
func (fs *frameScan) add(e frameLoc) {
	fs.locs.Add(e.seq, e.Loc)
	fs.lastSeq = e.seq
	fs.pending++
	fs.pendingBytes += int64(e.Raw)
	size := int64(segment.FrameSize(int(e.Stored)))
	fs.liveFrames += size
	if fs.pending == reserveAfter && !fs.planned {
		fs.reserve(e.Off + size)
	}
}

// reserveAfter is how many records a scan adds before it reserves room
// for the rest: from their average size, it estimates how many more the
// piece holds. The location map then grows once, not by doubling (which
// made several megabytes of garbage for a log of small records, and a
// garbage collection or two in Open).
const reserveAfter = 1024

// reserve reserves room in the location map for the records after off,
// up to the end of the piece, estimated from those before; at most as
// many as the smallest frames would make.
func (fs *frameScan) reserve(off int64) {
	done, left := off-fs.from, fs.to-off
	if done <= 0 || left <= 0 {
		return
	}
	n := left * int64(fs.pending) / done
	n = min(n+n/8, left/segment.FrameHeaderSize)
	fs.locs.Reserve(int(n))
}

func (fs *frameScan) flushBatch() {
	for _, e := range fs.batchLocs {
		fs.add(e)
	}
	fs.batchLocs = fs.batchLocs[:0]
}

// frames reads the frames sc decodes, up to the end of its bytes, the end
// of the data or the first damage, and returns sc, stopped there. The
// scanner is its own, on its stack, so that Next's frames cost no write
// barrier (Scanner.Current).
func (fs *frameScan) frames(sc segment.Scanner) segment.Scanner {
scan:
	for sc.Next() {
		fr, off := sc.Current(), sc.Offset()
		if !fs.known {
			fs.known, fs.headBatch = true, !fr.IsAck() && fr.InBatch()
			fs.expect = fr.Seq
			if fr.IsAck() {
				fs.expect = fr.Seq + 1
			}
			fs.start = fs.expect
			if fs.locs == nil {
				fs.locs = index.NewLocations(fs.expect)
			} else {
				// The planned part (planSplit); if it was planned
				// for another seq, Split.Join refuses it.
				fs.locs.Rebase(fs.expect)
			}
		}
		if fr.IsAck() {
			if fs.batchStart >= 0 {
				fs.damage = corrupt(fs.path, off, fs.expect, FixCut, "ack frame inside a batch")
				break scan
			}
			n := len(fs.acks)
			if derr := index.DecodeAckPayload(fr.Payload, func(start, n uint64) {
				fs.acks = append(fs.acks, ackRange{start, n})
			}); derr != nil {
				fs.acks = fs.acks[:n]
				fs.damage = corrupt(fs.path, off, fs.expect, FixCut, "malformed ack frame")
				break scan
			}
			// An ack frame's seq is the last record written before it,
			// and it acknowledges only records up to that one.
			bad := fr.Seq != fs.expect-1
			for _, r := range fs.acks[n:] {
				bad = bad || r.start+r.n-1 > fr.Seq
			}
			if bad {
				fs.acks = fs.acks[:n]
				fs.damage = corrupt(fs.path, off, fs.expect, FixCut, "ack frame acknowledges seqs beyond %d", fr.Seq)
				break scan
			}
			continue
		}
		if fr.Encrypted() && fs.sealedAt == 0 {
			fs.sealedAt = off
		} else if !fr.Encrypted() && fs.plainAt == 0 {
			fs.plainAt = off
		}
		if fr.Seq != fs.expect && !(fs.compacted && fr.Seq > fs.expect) {
			fs.damage = corrupt(fs.path, off, fs.expect, FixCut, "frame has seq %d, expected %d", fr.Seq, fs.expect)
			break scan
		}
		if fr.Seq > segment.MaxSeq {
			fs.damage = corrupt(fs.path, off, fs.expect, FixCut, "frame has seq %d, beyond the largest, %d", fr.Seq, uint64(segment.MaxSeq))
			break scan
		}
		fs.expect = fr.Seq + 1
		e := frameLoc{fr.Seq, index.Loc{Off: off, Stored: uint32(len(fr.Payload)), Raw: fr.RawLen}}
		switch {
		case !fr.InBatch():
			if fs.batchStart >= 0 {
				fs.damage = corrupt(fs.path, off, fr.Seq, FixCut, "batch without its commit frame")
				break scan
			}
			fs.add(e)
		default:
			if fs.batchStart < 0 {
				fs.batchStart = off
			}
			fs.batchLocs = append(fs.batchLocs, e)
			if fr.Commits() {
				fs.flushBatch()
				fs.batchStart = -1
			}
		}
	}
	return sc
}

// finish ends the scan of a segment's last piece, whose frames sc read
// (frames): it finds where the data ends and checks that only zeros
// follow, unless damage came first.
func (fs *frameScan) finish(f *segment.File, sc *segment.Scanner) scanResult {
	damage := fs.damage
	off := sc.Offset()
	if err := sc.Err(); damage == nil && !sc.AtEnd() {
		_, reason := decodeCause(err)
		damage = corrupt(f.Path, off, fs.expect, FixCut, "%s", reason).causedBy(err)
	}
	end := off
	if damage == nil && fs.batchStart >= 0 {
		// An unfinished batch at the end: the batch was never committed.
		damage = corrupt(f.Path, fs.batchStart, fs.batchLocs[0].seq, FixCut, "batch without its commit frame")
		end = fs.batchStart
	} else if damage != nil && fs.batchStart >= 0 {
		end = fs.batchStart
		if damage.Path == f.Path {
			damage.inBatch(fs.batchStart)
		}
	}
	// Whatever follows the end of the data must be zeros, unless it is a
	// torn tail of the last segment. Only what the file system holds data
	// for is read: the rest is unwritten preallocation (most of an active
	// segment), which reads as zeros, and reading it through the mapping
	// would fill the page cache with zero pages that every later Open
	// would read again. The extents are all found before any is read:
	// reading one makes the kernel read ahead past its end, and the zero
	// pages it caches there would count as data when the next extent is
	// asked for — a chase through the whole preallocation.
	b := f.Bytes()
	var extents [][2]int64
	for at, size := off, f.Size(); at < size; {
		d := max(f.DataFrom(at), at)
		if d >= size {
			break
		}
		h := f.HoleFrom(d)
		if h <= d {
			h = size
		}
		extents = append(extents, [2]int64{d, h})
		at = h
	}
	tornTo := off
	for _, x := range extents {
		if e := segment.LastNonZero(b[:x[1]], x[0]); e > x[0] {
			tornTo = e
		}
	}
	if damage == nil && tornTo == off {
		return scanResult{end: end}
	}
	if damage == nil {
		damage = corrupt(f.Path, off, fs.expect, FixCut, "non-zero bytes after the end of the data")
	}
	return scanResult{damage: damage, end: end, tornTo: max(tornTo, off), batch: fs.batchStart >= 0}
}

// merge appends n, the scan of the piece after fs's, to fs (its location
// map too if locs: not when the maps were joined in place), and reports
// whether n goes on from fs as one scan would: its first frame implies
// the seq fs expects next, and a batch open at fs's end goes on in n's
// first frame. Both pieces are whole and undamaged (join checks), so a
// batch open at the cut is committed later on, and its records count.
func (fs *frameScan) merge(n *frameScan, locs bool) bool {
	if !n.known || n.start != fs.expect || fs.batchStart >= 0 && !n.headBatch {
		return false
	}
	fs.flushBatch()
	if locs {
		fs.locs.Append(n.locs)
	}
	fs.acks = append(fs.acks, n.acks...)
	if n.lastSeq != 0 {
		fs.lastSeq = n.lastSeq
	}
	fs.pending += n.pending
	fs.pendingBytes += n.pendingBytes
	fs.liveFrames += n.liveFrames
	if fs.sealedAt == 0 {
		fs.sealedAt = n.sealedAt
	}
	if fs.plainAt == 0 {
		fs.plainAt = n.plainAt
	}
	fs.expect = n.expect
	fs.batchStart, fs.batchLocs = n.batchStart, n.batchLocs
	return true
}

// apply gives s what the scan found; its data ends at end.
func (fs *frameScan) apply(s *seg, end int64) {
	s.locs = fs.locs
	s.lastSeq = fs.lastSeq
	s.pending = fs.pending
	s.pendingBytes = fs.pendingBytes
	s.liveFrames = fs.liveFrames
	s.sealedAt, s.plainAt = fs.sealedAt, fs.plainAt
	s.tail = end
}
