package wal

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

const tmpExt = ".tmp"

// mapped is a segment file shared by the log and its readers. It counts
// its references: one is the log's, until it retires the file, and each
// reader holds one more while it reads (pin, under Log.mu, on a file the
// log has not retired or a reader still holds; unpin, without the lock,
// so that a reader done with a file does not wait for an appender that
// holds it). The last reference to go closes the file.
type mapped struct {
	*segment.File
	refs    atomic.Int32
	retired bool // under Log.mu
}

// newMapped returns f shared, with the log's reference.
func newMapped(f *segment.File) *mapped {
	m := &mapped{File: f}
	m.refs.Store(1)
	return m
}

// pin takes a reader's reference; the caller holds Log.mu.
func (m *mapped) pin() { m.refs.Add(1) }

// unpin drops a reference, a reader's (or the log's, for
// Log.retireLocked), and closes m if it was the last. It takes no lock.
func (m *mapped) unpin() {
	if m.refs.Add(-1) == 0 {
		m.Close()
	}
}

// seg is one logical segment: a range of seqs, its current file, where
// each record lives and which are acknowledged.
type seg struct {
	id       uint64
	firstSeq uint64
	file     *mapped
	locs     *index.Locations
	acks     *index.Acks
	// view is acks, for a reader without the lock (Pending): set with
	// it (setAcks), so that a reader sees acknowledgements made after a
	// rotation or a merge replaced the bitmap.
	view      ackView
	tail      int64  // end of the data: where the next frame goes
	populated int64  // the active segment is pre-faulted up to here
	released  int64  // the active segment's pages below this were last released (preparer)
	lastSeq   uint64 // highest record seq in the segment, 0 if none
	sealed    bool
	gen       uint64

	pending      int
	sparseSeen   int   // pending count when the compactor last saw it sparse (compactor only)
	pendingBytes int64 // raw payload bytes of pending records
	liveFrames   int64 // frame bytes of pending records

	// wpopulated: the active segment is pre-faulted for writing up to
	// here (see Log.writeAheadLocked).
	wpopulated int64
	// zeroed: the active segment's blocks from the page after its tail
	// up to here were written with zeros ahead of the records (see
	// Log.zeroNextLocked).
	zeroed int64

	// As loaded (scanSegment): the offsets of the first encrypted and the
	// first unencrypted record frame, 0 if none.
	sealedAt, plainAt int64
}

func (s *seg) compacted() bool { return s.file.Header.Compacted() }

// setAcks makes a the segment's bitmap, for readers with the lock and
// without it.
func (s *seg) setAcks(a *index.Acks) {
	s.acks = a
	s.view.acks.Store(a)
}

// ackView is a segment's bitmap as a reader without the lock sees it. A
// merge links the views of the segments it replaces to the merged
// segment's (merged): a reader still going through a replaced segment's
// file follows the links to the bitmap that acknowledgements go to now,
// however many merges replaced its segment since.
type ackView struct {
	acks   atomic.Pointer[index.Acks]
	merged atomic.Pointer[ackView]
}

// Load returns the bitmap acknowledgements of the view's seqs go to.
func (v *ackView) Load() *index.Acks {
	for {
		n := v.merged.Load()
		if n == nil {
			return v.acks.Load()
		}
		v = n
	}
}

// unacked returns where record q's frame is in s's file, if s holds q and
// it is not acknowledged.
func (s *seg) unacked(q uint64) (index.Loc, bool) {
	if s.acks.Has(q) {
		return index.Loc{}, false
	}
	return s.locs.Find(q)
}

// pos is a position in the log: a segment and an offset in it.
type pos struct {
	seg uint64
	off int64
}

func (p pos) less(q pos) bool { return p.seg < q.seg || p.seg == q.seg && p.off < q.off }

// loaded is the state read from a log directory.
type loaded struct {
	segs     []*seg
	nextSeq  uint64
	hwm      index.Superblock
	ckpt     index.Checkpoint
	haveCkpt bool
	// ckptLacks: ack frames in segments the checkpoint does not cover
	// acknowledge seqs of sealed segments that it calls unacknowledged.
	ckptLacks bool
	tornFrom  int64 // in the last segment: where a torn tail starts, or -1
	tornTo    int64
	tornBatch bool
	leftovers []string // segment files a finished merge made redundant
	// dropped are segment files after a power cut's hole (see cutAfter),
	// and droppedBytes the bytes of data they hold.
	dropped      []string
	droppedBytes int64
	sbBytes      int64
	ckptBytes    int64
	// enc is the encryption file, if haveEnc (see checkKey).
	enc      index.Encryption
	haveEnc  bool
	encPath  string
	encBytes int64
	// scans, in a read-only load: what was found of each segment file,
	// for the next view to reuse (View.Reopen, segCache).
	scans map[uint64]*segCache
}

// encrypted reports whether the log is encrypted: an encryption file, or
// an encrypted record frame (see checkKey).
func (st *loaded) encrypted() bool {
	if st.haveEnc {
		return true
	}
	for _, s := range st.segs {
		if s.sealedAt != 0 {
			return true
		}
	}
	return false
}

type loadMode uint8

const (
	loadWrite   loadMode = iota // Open: the last segment is mapped writable
	loadRead                    // a read-only view: nothing is changed
	loadRebuild                 // Repair: like loadWrite, and a lost checkpoint is accepted
)

// ackRange is the seqs [start, start+n) one ack frame acknowledged.
type ackRange struct{ start, n uint64 }

func corrupt(path string, off int64, seq uint64, fix Fix, format string, args ...any) *CorruptionError {
	return &CorruptionError{Path: path, Offset: off, Seq: seq, Reason: fmt.Sprintf(format, args...), fix: fix}
}

// causedBy records err, a decoder's error the Reason states, as e's cause.
func (e *CorruptionError) causedBy(err error) *CorruptionError {
	e.Err = err
	return e
}

// decodeCause returns the offset and the reason of a decoder's error (a
// *segment.Error or an *index.FormatError), without the "offset N: " its
// Error method adds; any other error is its own reason, at offset 0.
func decodeCause(err error) (off int64, reason string) {
	var se *segment.Error
	if errors.As(err, &se) {
		return se.Offset, se.Reason
	}
	var fe *index.FormatError
	if errors.As(err, &fe) {
		return fe.Offset, fe.Reason
	}
	return 0, err.Error()
}

// corruptMeta reports damage that Repair mends by moving the metadata
// file aside (the superblock or the checkpoint); the log is then judged
// by its segments alone.
func corruptMeta(path string, off int64, seq uint64, aside string, format string, args ...any) *CorruptionError {
	e := corrupt(path, off, seq, FixMoveAside, format, args...)
	e.aside = aside
	return e
}

// mergeRanges returns the seqs of rs as sorted, disjoint, non-adjacent
// ranges.
func mergeRanges(rs []ackRange) []ackRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(x, y ackRange) int { return cmp.Compare(x.start, y.start) })
	var out []ackRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.start <= out[n-1].start+out[n-1].n {
			last := &out[n-1]
			last.n = max(last.start+last.n, r.start+r.n) - last.start
			continue
		}
		out = append(out, r)
	}
	return out
}

// rangeAt returns the range of rs, sorted and disjoint (mergeRanges),
// that holds seq.
func rangeAt(rs []ackRange, seq uint64) (ackRange, bool) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].start+rs[i].n > seq })
	if i == len(rs) || rs[i].start > seq {
		return ackRange{}, false
	}
	return rs[i], true
}

// lostCheckpoint reports a missing checkpoint that held acknowledgements
// no segment on disk holds any longer: compaction dropped the ack frames
// of a segment after the first one left (evidence says which), and they
// may have acknowledged records of an earlier segment still on disk.
// Opening without it would make those records pending again silently;
// Repair writes a new checkpoint from what the segments still say.
func lostCheckpoint(ckPath string, evidence string, args ...any) *CorruptionError {
	return corrupt(ckPath, 0, 0, FixCheckpoint,
		"checkpoint missing, yet %s: acknowledgements only the checkpoint held are lost "+
			"(Repair writes a new checkpoint; records it cannot tell were acknowledged are pending again)",
		fmt.Sprintf(evidence, args...))
}

// catchFault turns a memory fault while reading a mapping (the file was
// truncated under us by another process) into an error.
func catchFault(path string, err *error) {
	if r := recover(); r != nil {
		if _, ok := r.(interface{ Addr() uintptr }); ok {
			*err = fmt.Errorf("wal: fault reading %s (file truncated while mapped?): %v", path, r)
			return
		}
		panic(r)
	}
}

// listSegments returns the ids of the segment files in dir, ascending.
func listSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if id, ok := segment.ParseName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func readFile(fsys vfs.FS, path string) ([]byte, error) {
	return readFileUpTo(fsys, path, -1)
}

// readFileUpTo is readFile for a file of a fixed-size format: it reads
// no more than its first limit bytes (all, if limit < 0), so that a file
// far larger than its format, which is damage or padding, costs no
// memory for the rest.
func readFileUpTo(fsys vfs.FS, path string, limit int64) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if limit >= 0 {
		size = min(size, limit)
	}
	if size > 1<<34 {
		return nil, fmt.Errorf("%s: implausible size %d", path, size)
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if n == len(b) {
		err = nil
	}
	return b[:n], err
}

// readHeader reads and decodes the header of the segment file at path,
// if it can.
func readHeader(fsys vfs.FS, path string) (segment.Header, bool) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return segment.Header{}, false
	}
	defer f.Close()
	var b [segment.HeaderSize]byte
	if n, _ := f.ReadAt(b[:], 0); n != len(b) {
		return segment.Header{}, false
	}
	h, err := segment.DecodeHeader(b[:])
	return h, err == nil
}

// lastNonZeroIn returns the offset just past the last non-zero byte of
// the file at path (0 if there is none).
func lastNonZeroIn(fsys vfs.FS, path string) (int64, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return lastNonZeroAt(f, 0, fi.Size())
}

// lastNonZeroAt returns the offset just past the last non-zero byte of r
// between from and size (from if there is none), reading it from its end
// a chunk at a time: a file cut off whole may be a segment of up to
// 4 GiB, mostly zeros.
func lastNonZeroAt(r io.ReaderAt, from, size int64) (int64, error) {
	buf := make([]byte, min(max(size-from, 0), 1<<20))
	for end := size; end > from; {
		start := max(end-int64(len(buf)), from)
		b := buf[:end-start]
		if n, err := r.ReadAt(b, start); n != len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if e := segment.LastNonZero(b, 0); e > 0 {
			return start + e, nil
		}
		end = start
	}
	return from, nil
}

// load reads and verifies the log in dir. It returns a *CorruptionError
// for any damage but a torn tail, which it reports in tornFrom/tornTo
// without cutting it. Every segment is left mapped; on error all are
// closed. Its steps: read the metadata, open the segments, verify them
// in parallel, check their order, build the acknowledgement bitmaps,
// check that the checkpoint's pending records are all there, count what
// is pending.
func load(fsys vfs.FS, dir string, mode loadMode) (_ *loaded, err error) {
	return loadFrom(fsys, dir, mode, nil)
}

// loadFrom is load reusing prev, what an earlier read-only load found of
// the segment files (segCache), for those unchanged since.
func loadFrom(fsys vfs.FS, dir string, mode loadMode, prev map[uint64]*segCache) (_ *loaded, err error) {
	ld := &loader{fsys: fsys, dir: dir, mode: mode, st: &loaded{tornFrom: -1},
		sbPath: vfs.Join(dir, index.SuperblockName), ckPath: vfs.Join(dir, index.CheckpointName), prev: prev}
	st := ld.st
	if mode == loadRead {
		st.scans = map[uint64]*segCache{}
	}
	defer func() {
		if err != nil {
			for _, s := range st.segs {
				s.file.Close()
			}
		}
	}()
	defer catchFault(dir, &err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)

	if err := ld.checkFileTypes(); err != nil {
		return nil, err
	}
	if err := ld.readMetadata(); err != nil {
		return nil, err
	}
	if ld.ids, err = listSegments(fsys, dir); err != nil {
		return nil, err
	}
	empty, err := ld.checkSegmentsNamed()
	if err != nil {
		return nil, err
	}
	if empty {
		return st, nil
	}
	ld.setMark()
	ld.openSegments()
	ld.verifySegments()
	if empty, err = ld.checkOrder(); err != nil {
		return nil, err
	}
	if empty {
		return st, nil
	}
	if err := ld.checkEnd(); err != nil {
		return nil, err
	}
	if err := ld.checkCheckpointBounds(); err != nil {
		return nil, err
	}
	ackedSince, err := ld.buildAcks()
	if err != nil {
		return nil, err
	}
	if err := ld.checkCheckpointCoverage(ackedSince); err != nil {
		return nil, err
	}
	if err := ld.countPending(ackedSince); err != nil {
		return nil, err
	}
	return st, nil
}

// loader is the state of one load, step by step.
type loader struct {
	fsys           vfs.FS
	dir            string
	mode           loadMode
	st             *loaded
	sbPath, ckPath string
	ids            []uint64   // the segment files' ids, ascending
	mark           pos        // the durable mark (see setMark)
	files          []*opened  // the segments opened, in order (leftovers not)
	replay         []ackRange // ack frames of segments the checkpoint does not cover

	// prev: what an earlier read-only load found, to reuse (loadFrom).
	prev map[uint64]*segCache
}

// opened is one segment file as openSegments and verifySegments found it.
type opened struct {
	s      *seg
	err    error // opening it failed
	scan   scanResult
	acks   []ackRange
	isLast bool
	// headerLost: the file's header is damaged beyond the durable
	// mark: its name reached the disk before its data.
	headerLost bool
	path       string
}

// checkFileTypes checks that every name in dir the log keeps a file
// under (a segment's, the superblock's, the checkpoint's, the encryption
// file's) is a regular file. A directory or a device there is damage,
// and so is a symbolic link, even to a good file: the log's renames and
// directory syncs would not cover its target (a checkpoint rewritten
// replaces the link; a segment's name made durable says nothing of the
// target's), and a segment listed would be left out without a word.
// Nothing is opened: a FIFO would block the read.
func (ld *loader) checkFileTypes() error {
	var first *CorruptionError
	err := fileTypeDamage(ld.fsys, ld.dir, func(e *CorruptionError) bool {
		first = e
		return false
	})
	if err != nil {
		return err
	}
	if first != nil {
		return first
	}
	return nil
}

// fileTypeDamage calls damage for each name in dir the log keeps a file
// under that is not a regular file (see checkFileTypes), until it returns
// false.
func fileTypeDamage(fsys vfs.FS, dir string, damage func(*CorruptionError) bool) error {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	for _, e := range ents {
		name, typ := e.Name(), e.Type()
		_, isSeg := segment.ParseName(name)
		isMeta := name == index.SuperblockName || name == index.CheckpointName || name == index.EncryptionName
		if !isSeg && !isMeta || typ.IsRegular() {
			continue
		}
		what := "a directory"
		switch {
		case typ&fs.ModeSymlink != 0:
			what = "a symbolic link"
		case !typ.IsDir():
			what = fmt.Sprintf("a special file (%v)", typ)
		}
		path := vfs.Join(dir, name)
		const why = "%s, not a regular file (the log's renames and directory syncs cover only regular files in its directory)"
		ce := corrupt(path, 0, 0, FixByHand, why, what)
		if !damage(ce) {
			return nil
		}
	}
	return nil
}

// readMetadata reads the superblock (the durable high-water mark), the
// checkpoint (the acknowledgement state of sealed segments) and the
// encryption file (the key check of an encrypted log).
func (ld *loader) readMetadata() error {
	st := ld.st
	// The slots are all there is: bytes after them are not read.
	if b, rerr := readFileUpTo(ld.fsys, ld.sbPath, index.SuperblockSize); rerr == nil {
		st.sbBytes = int64(len(b))
		sb, derr := index.DecodeSuperblock(b)
		switch {
		case errors.Is(derr, index.ErrNoSuperblock):
			// Both slots empty: no mark was ever written.
		case derr != nil:
			off, reason := decodeCause(derr)
			return corruptMeta(ld.sbPath, off, 0, ld.sbPath, "%s", reason).causedBy(derr)
		default:
			st.hwm = sb
		}
	} else if !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("wal: %w", rerr)
	}

	found, err := ld.readMetaFile(ld.ckPath, -1, &st.ckptBytes, func(b []byte) (err error) {
		if st.ckpt, err = index.DecodeCheckpoint(b); err != nil {
			return err
		}
		// The sealed end is the first seq of the segment that was active
		// when it was written, at or below the log's next seq then.
		if c := st.ckpt; c.SealedEnd > c.NextSeq {
			return &index.FormatError{Offset: 32, Reason: fmt.Sprintf("checkpoint sealed end %d is past its next seq %d", c.SealedEnd, c.NextSeq)}
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.haveCkpt = found

	st.encPath = vfs.Join(ld.dir, index.EncryptionName)
	// One byte more than the file's size, for a longer one to be found
	// so without reading it.
	st.haveEnc, err = ld.readMetaFile(st.encPath, index.EncryptionSize+1, &st.encBytes, func(b []byte) (err error) {
		st.enc, err = index.DecodeEncryption(b)
		return err
	})
	return err
}

// readMetaFile reads the metadata file path (up to limit bytes, as
// readFileUpTo), if it exists (found), into decode, and its size into
// *size. Damage is a *CorruptionError that Repair mends by moving the
// file aside.
func (ld *loader) readMetaFile(path string, limit int64, size *int64, decode func([]byte) error) (found bool, err error) {
	b, rerr := readFileUpTo(ld.fsys, path, limit)
	if errors.Is(rerr, fs.ErrNotExist) {
		return false, nil
	}
	if rerr != nil {
		return false, fmt.Errorf("wal: %w", rerr)
	}
	*size = int64(len(b))
	if derr := decode(b); derr != nil {
		off, reason := decodeCause(derr)
		return false, corruptMeta(path, off, 0, path, "%s", reason).causedBy(derr)
	}
	return true, nil
}

// checkSegmentsNamed checks that the segments the metadata names exist.
// It reports whether the log is empty (no segment file at all).
func (ld *loader) checkSegmentsNamed() (empty bool, err error) {
	st, dir, ids := ld.st, ld.dir, ld.ids
	if len(ids) == 0 {
		if st.hwm.Seq > 0 || st.hwm.Segment > 0 {
			return false, corruptMeta(vfs.Join(dir, segment.Name(max(st.hwm.Segment, 1))), 0, st.hwm.Seq, ld.sbPath,
				"missing segment: the superblock names records but no segment file exists")
		}
		if st.ckpt.NextSeq > 1 {
			return false, corruptMeta(vfs.Join(dir, segment.Name(st.ckpt.Through+1)), 0, 0, ld.ckPath,
				"missing segment: the checkpoint names records but no segment file exists")
		}
		if st.ckpt.Through > 0 {
			return false, corruptMeta(vfs.Join(dir, segment.Name(st.ckpt.Through+1)), 0, 0, ld.ckPath,
				"missing segment: segment %d is gone but the checkpoint implies it", st.ckpt.Through+1)
		}
		st.nextSeq = 1
		return true, nil
	}
	last := ids[len(ids)-1]
	if st.hwm.Segment > last {
		return false, corruptMeta(vfs.Join(dir, segment.Name(st.hwm.Segment)), 0, 0, ld.sbPath,
			"missing segment: segment %d is gone but the superblock names it", st.hwm.Segment)
	}
	if st.haveCkpt && st.ckpt.Through >= last {
		return false, corruptMeta(vfs.Join(dir, segment.Name(st.ckpt.Through+1)), 0, 0, ld.ckPath,
			"missing segment: segment %d is gone but the checkpoint implies it", st.ckpt.Through+1)
	}
	return false, nil
}

// setMark sets the durable mark: everything before it was on stable
// storage when the metadata on disk was written. The superblock records
// it after each sync; a checkpoint is written only after the data it
// covers is synced, so the header of the segment that was active then is
// below it too. Beyond the mark, damage is what a power cut leaves (pages
// never written back, or written back out of order) and is cut off; at or
// below it, damage is corruption.
func (ld *loader) setMark() {
	st := ld.st
	ld.mark = pos{st.hwm.Segment, st.hwm.Offset}
	if st.haveCkpt {
		if p := (pos{st.ckpt.Through + 1, segment.HeaderSize}); ld.mark.less(p) {
			ld.mark = p
		}
	}
}

// beyond reports whether offset off of segment id is at or past the
// durable mark.
func (ld *loader) beyond(id uint64, off int64) bool { return !(pos{id, off}).less(ld.mark) }

// openSegments opens every segment and reads its header, in order: a
// merged file's header says which later files are leftovers. It stops at
// the first file it cannot open (recorded in that file's err).
func (ld *loader) openSegments() {
	st := ld.st
	var mergedThrough uint64 // segment ids up to this live inside a merged file
	for i, id := range ld.ids {
		path := vfs.Join(ld.dir, segment.Name(id))
		if id <= mergedThrough {
			// Left behind by a merge interrupted before it removed the
			// old files: its unacknowledged records are in the merged one.
			st.leftovers = append(st.leftovers, path)
			continue
		}
		isLast := i == len(ld.ids)-1
		o := &opened{isLast: isLast, path: path}
		ld.files = append(ld.files, o)
		f, oerr := segment.Open(ld.fsys, path, isLast && ld.mode != loadRead)
		if oerr != nil && ld.mode == loadRead && errors.Is(oerr, fs.ErrNotExist) {
			// Listed, then gone: the log's writer reclaimed it (every
			// record acknowledged) or merged it into the one before.
			o.err = fmt.Errorf("wal: %s was removed while the log was read: %w", path, errChanged)
			return
		}
		if oerr != nil {
			var se *segment.Error
			if errors.As(oerr, &se) && f == nil && ld.beyond(id, 0) {
				o.headerLost = true
				return
			}
			if errors.As(oerr, &se) {
				fix := FixCut
				if f != nil {
					// The header is sound but the file's size is not the
					// size it names.
					f.Close()
					fix = FixResize
				}
				o.err = corrupt(path, se.Offset, 0, fix, "%s", se.Reason).causedBy(oerr)
			} else {
				o.err = fmt.Errorf("wal: %w", oerr)
			}
			return
		}
		o.s = &seg{id: id, firstSeq: f.Header.FirstSeq, file: newMapped(f), locs: index.NewLocations(f.Header.FirstSeq), gen: f.Header.Generation}
		st.segs = append(st.segs, o.s)
		if f.Header.ID != id {
			o.err = corrupt(path, 0, 0, FixCut, "header names segment %d", f.Header.ID)
			return
		}
		mergedThrough = max(mergedThrough, f.Header.MergedThrough)
	}
}

// cutAfter makes the segments up to files[i] the whole log: a power cut
// took everything after (files[i] itself from offset from, if from >= 0).
// Later segment files are dropped.
func (ld *loader) cutAfter(i int, from, to int64, batch bool) error {
	st := ld.st
	keep := 0
	if i >= 0 {
		keep = slices.Index(st.segs, ld.files[i].s) + 1
	}
	for _, s := range st.segs[keep:] {
		if s.compacted() {
			// Written whole and synced before it was renamed into
			// place: a power cut cannot have taken what precedes it.
			return corrupt(s.file.Path, 0, s.firstSeq, FixCut, "compacted segment after a hole beyond the durable high-water mark")
		}
	}
	// The files after a lost header were never opened (openSegments
	// stops there): their headers are read here, or a compacted one
	// among them would be dropped with its records as a power cut's.
	lastOpened := uint64(0)
	if len(st.segs) > 0 {
		lastOpened = st.segs[len(st.segs)-1].id
	}
	for _, id := range ld.ids {
		p := vfs.Join(ld.dir, segment.Name(id))
		if id <= lastOpened || slices.Contains(st.leftovers, p) {
			continue
		}
		if h, ok := readHeader(ld.fsys, p); ok && h.Compacted() {
			return corrupt(p, 0, h.FirstSeq, FixCut, "compacted segment after a hole beyond the durable high-water mark")
		}
	}
	for _, s := range st.segs[keep:] {
		s.file.Close()
	}
	st.segs = st.segs[:keep]
	cutID := uint64(0)
	if keep > 0 {
		cutID = st.segs[keep-1].id
	}
	for _, id := range ld.ids {
		p := vfs.Join(ld.dir, segment.Name(id))
		if id <= cutID || slices.Contains(st.leftovers, p) {
			continue
		}
		st.dropped = append(st.dropped, p)
		if n, err := lastNonZeroIn(ld.fsys, p); err == nil {
			st.droppedBytes += n
		}
	}
	if keep == 0 {
		return nil
	}
	s := st.segs[keep-1]
	if from >= 0 {
		st.tornFrom, st.tornTo, st.tornBatch = from, to, batch
	}
	if ld.mode == loadRead || ld.files[len(ld.files)-1].s == s {
		return nil
	}
	// It becomes the active segment: map it writable.
	f, err := segment.Open(ld.fsys, s.file.Path, true)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	s.file.Close()
	s.file = newMapped(f)
	return nil
}

// checkOrder judges the segments in order, so that the damage reported
// is always the first: their seqs follow on, no segment is missing, and
// damage beyond the durable mark is cut off (cutAfter). It reports
// whether a power cut left no segment at all.
func (ld *loader) checkOrder() (empty bool, err error) {
	st, dir, mode := ld.st, ld.dir, ld.mode
	var prev *seg
	var mergedThrough uint64
	for i, o := range ld.files {
		if o.headerLost {
			if err := ld.cutAfter(i-1, -1, -1, false); err != nil {
				return false, err
			}
			break
		}
		if o.err != nil {
			return false, o.err
		}
		s := o.s
		path := s.file.Path
		if prev != nil {
			prevEnd := prev.firstSeq - 1
			if prev.lastSeq != 0 {
				prevEnd = prev.lastSeq
			}
			gap := s.firstSeq != prevEnd+1 && !prev.compacted() && prev.id+1 == s.id
			if gap && s.firstSeq > prevEnd && ld.beyond(s.id, 0) {
				// The segment before lost its last records to a power
				// cut; this one's records come after the hole.
				if err := ld.cutAfter(i-1, -1, -1, false); err != nil {
					return false, err
				}
				break
			}
			switch {
			case s.firstSeq <= prevEnd:
				return false, corrupt(path, 0, prevEnd+1, FixCut, "segment starts at seq %d, at or below seq %d of the segment before", s.firstSeq, prevEnd)
			case gap:
				return false, corrupt(path, 0, prevEnd+1, FixCut, "gap in sequence numbers: segment starts at %d, expected %d", s.firstSeq, prevEnd+1)
			}
			// A segment between two others is gone. That is fine if it
			// was merged into another or reclaimed (the checkpoint covers
			// it).
			// Both cover a prefix of ids, so the first id neither covers is
			// the one to report (found without walking the gap: ids come
			// from file names and may be far apart).
			covered := mergedThrough
			if st.haveCkpt {
				covered = max(covered, st.ckpt.Through)
			}
			if gone := max(prev.id+1, covered+1); prev.id+1 < s.id && covered < s.id-1 {
				switch {
				case st.haveCkpt:
					return false, corrupt(vfs.Join(dir, segment.Name(gone)), 0, 0, FixCut, "missing segment %d", gone)
				case mode != loadRebuild:
					return false, lostCheckpoint(ld.ckPath, "segment %d is gone (reclaimed, or deleted)", gone)
				}
			}
			if s.compacted() && !st.haveCkpt && mode != loadRebuild {
				return false, lostCheckpoint(ld.ckPath, "segment %d was compacted", s.id)
			}
		}
		mergedThrough = max(mergedThrough, s.file.Header.MergedThrough)
		ld.replay = append(ld.replay, o.acks...)
		// A compacted segment is sealed even when it is the last file: Open
		// starts a new active segment after it.
		s.sealed = !o.isLast || s.compacted()
		prev = s
		if sc := o.scan; sc.damage != nil {
			if s.compacted() {
				// Written whole and synced before it was renamed into
				// place: it cannot have lost pages to a power cut.
				return false, sc.damage
			}
			if !ld.beyond(s.id, sc.end) {
				return false, sc.damage
			}
			if err := ld.cutAfter(i, sc.end, sc.tornTo, sc.batch); err != nil {
				return false, err
			}
			s.sealed = false
			break
		}
	}
	if len(st.segs) > 0 {
		// The last segment kept is the active one, unless compacted.
		last := st.segs[len(st.segs)-1]
		last.sealed = last.compacted()
	}
	if len(st.segs) == 0 && len(st.dropped) > 0 {
		// A power cut took every segment (the first one's header never
		// reached the disk).
		if st.hwm.Seq > 0 || st.ckpt.NextSeq > 1 {
			return false, corrupt(st.dropped[0], 0, 1, FixCut, "segment header lost below the durable high-water mark")
		}
		st.nextSeq = 1
		return true, nil
	}
	if len(st.segs) == 0 {
		return false, corrupt(vfs.Join(dir, segment.Name(ld.ids[0])), 0, 0, FixCut, "every segment file is a leftover of a merge")
	}
	return false, nil
}

// checkEnd sets the next seq and checks that the data reaches the durable
// mark and the checkpoint's next seq.
func (ld *loader) checkEnd() error {
	st := ld.st
	lastSeg := st.segs[len(st.segs)-1]
	st.nextSeq = lastSeg.firstSeq
	for _, s := range st.segs {
		if s.lastSeq != 0 {
			st.nextSeq = s.lastSeq + 1
		}
	}
	st.nextSeq = max(st.nextSeq, lastSeg.firstSeq)
	lastPath := lastSeg.file.Path
	if st.hwm.Seq >= st.nextSeq {
		return corruptMeta(lastPath, lastSeg.tail, st.nextSeq, ld.sbPath,
			"records %d..%d are missing below the durable high-water mark", st.nextSeq, st.hwm.Seq)
	}
	// The mark names the last segment, or a sealed one (a sync round that
	// covered only sealed segments): whole frames missing below it are
	// damage (ack frames, if no record is).
	if i := slices.IndexFunc(st.segs, func(s *seg) bool { return s.id == st.hwm.Segment }); i >= 0 {
		if s := st.segs[i]; st.hwm.Offset > s.tail && !s.compacted() {
			return corruptMeta(s.file.Path, s.tail, st.nextSeq, ld.sbPath,
				"the data ends at offset %d, below the durable high-water mark at %d", s.tail, st.hwm.Offset)
		}
	}
	if st.ckpt.NextSeq > st.nextSeq {
		return corruptMeta(lastPath, lastSeg.tail, st.nextSeq, ld.ckPath,
			"records %d..%d are missing: the checkpoint saw them", st.nextSeq, st.ckpt.NextSeq-1)
	}
	return nil
}

// checkCheckpointBounds checks the checkpoint's through and sealed end
// against the segments: it was written when segment through+1 was the
// active one, starting at the sealed end, and no segment after through is
// reclaimed or merged before a later checkpoint covers it, so that segment
// is on disk (its header is below the durable mark) and starts there. A
// checkpoint that says otherwise, checksum and all, is damage: trusted, a
// sealed end too far would acknowledge records no one acknowledged (every
// seq below it that no entry covers counts as acknowledged).
func (ld *loader) checkCheckpointBounds() error {
	st := ld.st
	if !st.haveCkpt {
		return nil
	}
	next := st.ckpt.Through + 1
	i := slices.IndexFunc(st.segs, func(s *seg) bool { return s.id >= next })
	if i < 0 || st.segs[i].id != next {
		return corruptMeta(vfs.Join(ld.dir, segment.Name(next)), 0, st.ckpt.SealedEnd, ld.ckPath,
			"missing segment: segment %d is gone but the checkpoint implies it", next)
	}
	if s := st.segs[i]; s.firstSeq != st.ckpt.SealedEnd {
		return corruptMeta(ld.ckPath, 32, 0, ld.ckPath,
			"checkpoint sealed end %d (through segment %d), yet segment %d starts at seq %d",
			st.ckpt.SealedEnd, st.ckpt.Through, next, s.firstSeq)
	}
	return nil
}

// buildAcks builds the acknowledgement bitmaps, keyed by seq: what the
// checkpoint recorded, then the ack frames of segments it does not cover.
// It returns those frames' ranges, merged.
func (ld *loader) buildAcks() ([]ackRange, error) {
	st := ld.st
	for i, s := range st.segs {
		// A sealed segment's range ends at its last record: seqs after it
		// and before the next segment belong to reclaimed segments (or,
		// in a compacted one, to records dropped as acknowledged). The
		// active segment's covers all it can hold.
		n := s.lastSeq + 1 - s.firstSeq
		if s.lastSeq == 0 {
			n = 0
		}
		if i+1 == len(st.segs) && !s.compacted() {
			n = max(n, uint64(s.file.Size()-segment.HeaderSize)/segment.FrameHeaderSize)
		}
		if n > index.MaxSpan {
			return nil, corrupt(s.file.Path, 0, s.lastSeq, FixCut, "segment spans %d seqs, more than %d", n, index.MaxSpan)
		}
		if s.compacted() {
			// Only its records may be unacknowledged (countPending checks
			// that the seqs between them are acknowledged): a bitmap of
			// them alone when that is smaller, so that a file of a few
			// KiB spanning MaxSpan seqs takes a few KiB, not 32 MiB.
			s.setAcks(index.NewAcksOf(s.firstSeq, n, s.locs.AppendSeqs(nil)))
		} else {
			s.setAcks(index.NewAcks(s.firstSeq, n))
		}
		if st.haveCkpt {
			st.ckpt.Fill(s.acks)
		}
	}
	// Merged first, so that overlapping ranges (many ack frames may
	// repeat one long range) cost no more than one.
	ackedSince := mergeRanges(ld.replay)
	st.ckptLacks = ld.ckptLacks(ackedSince)
	for _, r := range ackedSince {
		// Only the bitmaps that exist: a range may be long, and seqs
		// outside every segment's range are acknowledged already.
		end := r.start + r.n
		i := sort.Search(len(st.segs), func(i int) bool { return st.segs[i].firstSeq > r.start })
		for i = max(i-1, 0); i < len(st.segs) && st.segs[i].firstSeq < end; i++ {
			a := st.segs[i].acks
			if from, to := max(r.start, a.Base()), min(end, a.Base()+a.Len()); from < to {
				a.SetRange(from, to)
			}
		}
	}
	return ackedSince, nil
}

// ckptLacks reports whether a range acknowledged since the checkpoint
// (ackedSince) holds a seq below the checkpoint's sealed end that it does
// not record as acknowledged.
func (ld *loader) ckptLacks(ackedSince []ackRange) bool {
	c := &ld.st.ckpt
	if !ld.st.haveCkpt {
		return len(ackedSince) > 0
	}
	for _, r := range ackedSince {
		to := min(r.start+r.n, c.SealedEnd)
		for q := r.start; q < to; {
			e := c.AckedUntil(q, to)
			if e == q {
				return true
			}
			q = e
		}
	}
	return false
}

// checkCheckpointCoverage checks that every seq the checkpoint calls
// unacknowledged is still in a segment, unless an ack frame acknowledged
// it since (ackedSince). The work is bounded by the records on disk, the
// ack ranges and the checkpoint's bitmap words, not by the spans entries
// claim: the unacknowledged seqs are found a word at a time, and a run of
// seqs an ack range covers is skipped at once.
func (ld *loader) checkCheckpointCoverage(ackedSince []ackRange) error {
	st := ld.st
	for _, e := range st.ckpt.Segments {
		a := e.Acks
		end := a.Base() + a.Len()
		for q, ok := a.NextUnacked(a.Base(), end); ok; q, ok = a.NextUnacked(q+1, end) {
			if s := findSeg(st.segs, q); s != nil {
				if last, ok := s.locs.RunFrom(q); ok {
					q = min(last, end-1) // every seq up to last is there
					continue
				}
			}
			r, ok := rangeAt(ackedSince, q)
			if !ok {
				return corruptMeta(vfs.Join(ld.dir, segment.Name(e.ID)), 0, q, ld.ckPath, "missing segment %d holds unacknowledged record %d", e.ID, q)
			}
			q = min(r.start+r.n, end) - 1
		}
	}
	return nil
}

// countPending counts the pending records of every segment, and checks
// that every seq of a compacted segment's range that is not in it was
// acknowledged, by the checkpoint or an ack frame since (ackedSince). It
// walks the records and the runs of acknowledged seqs between them, not
// every seq of the range. scanSegment counted every record as pending:
// the lengths of the acknowledged ones, from the index, are taken off.
func (ld *loader) countPending(ackedSince []ackRange) error {
	for _, s := range ld.st.segs {
		var acked int
		if last, ok := s.locs.Last(); !ok || last+1-s.firstSeq == uint64(s.locs.Len()) {
			// Every seq of the segment from its first to its last is
			// there: no seq between them to judge.
			acked = s.acks.AckedIn(s.firstSeq, s.firstSeq+uint64(s.locs.Len()))
		} else {
			next := s.firstSeq // the first seq not judged yet
			for q := range s.locs.All() {
				// Rebuilding the checkpoint, the seqs missing between
				// the records are taken as acknowledged: compaction
				// dropped only acknowledged records, and what it dropped
				// is not on disk to come back. Without a checkpoint to
				// blame, the checkpoint is lost (Repair rebuilds one).
				if u, ok := ld.firstUnacked(next, q, ackedSince); ok && ld.mode != loadRebuild {
					if !ld.st.haveCkpt {
						return lostCheckpoint(ld.ckPath, "compacted segment %d lacks record %d", s.id, u)
					}
					return corruptMeta(s.file.Path, 0, u, ld.ckPath, "unacknowledged record %d is missing from compacted segment", u)
				}
				next = q + 1
				if s.acks.Has(q) {
					acked++
				}
			}
		}
		if acked == 0 {
			continue
		}
		// The lengths are in the index: nothing is read.
		for q, loc := range s.locs.All() {
			if s.acks.Has(q) {
				s.pendingBytes -= int64(loc.Raw)
				s.liveFrames -= int64(segment.FrameSize(int(loc.Stored)))
			}
		}
		s.pending -= acked
	}
	return nil
}

// firstUnacked returns the first seq of [from, to) that neither the
// checkpoint nor an ack frame since (ackedSince) acknowledges, if any. It
// jumps over runs of acknowledged seqs.
func (ld *loader) firstUnacked(from, to uint64, ackedSince []ackRange) (uint64, bool) {
	for q := from; q < to; {
		if r, ok := rangeAt(ackedSince, q); ok {
			q = r.start + r.n
			continue
		}
		e := q
		if ld.st.haveCkpt {
			e = ld.st.ckpt.AckedUntil(q, to)
		}
		if e == q {
			return q, true
		}
		q = e
	}
	return 0, false
}

// findSeg returns the segment whose range holds seq, or nil.
func findSeg(segs []*seg, seq uint64) *seg {
	i := segsThrough(segs, seq)
	if i == 0 {
		return nil
	}
	return segs[i-1]
}

// segsThrough returns how many of segs begin at or below seq: the one
// whose range holds seq, if any, is the last of them.
func segsThrough(segs []*seg, seq uint64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].firstSeq > seq })
}
