package wal

import (
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/walpub/walpub/internal/fsutil"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// Log is a write-ahead log in one directory. It is safe for concurrent
// use: many appenders, readers and ackers at once.
type Log struct {
	dir  string
	cfg  config
	fs   vfs.FS
	log  *slog.Logger
	lock vfs.File
	// ownLock: Close releases lock (not when Repair lent it its own).
	ownLock bool

	mu     sync.Mutex
	closed bool
	// closing: Close has begun; appends, acks and syncs are refused, so
	// that Close's final sync covers everything written.
	closing      bool
	err          error // sticky: the first write or sync failure
	segs         []*seg
	active       *seg
	nextSeq      uint64
	pending      int
	pendingBytes int64
	diskBytes    int64 // segment files and the prepared one
	sbBytes      int64 // superblock file size
	ckptBytes    int64 // checkpoint file size
	encBytes     int64 // encryption file size
	tornBytes    int64
	unsynced     []*mapped // sealed segment files written since the last sync
	dirDirty     bool      // a rotation renamed a segment into place since the last sync round
	// renames counts the rotations' renames of a prepared file to a
	// segment's name, and renamesDurable those a sync of the directory
	// covers: a rotation renames only once the one before it is durable
	// (see newSegmentLocked).
	renames, renamesDurable uint64
	prepared                *mapped
	prepSeq                 atomic.Uint64
	prepPopulated           int64 // bytes of the prepared file pre-faulted
	readSince               int64 // bytes read through the mappings since the preparer last released pages
	// prepIndex: the prepared file's index and acknowledgement bitmap,
	// allocated (and their memory faulted in) by the preparer, so that a
	// rotation does neither under the lock; nil until then.
	prepIndex *segIndex
	// sealedUnreleased: a segment was sealed since the preparer last
	// released pages.
	sealedUnreleased bool
	mapWrites        bool   // the last append went through the mapping: pre-fault for the next
	ackEpoch         uint64 // bumped by every Ack
	ckptEpoch        uint64 // ackEpoch the last checkpoint saw
	ckptThrough      uint64 // the checkpoint on disk covers the segments up to this id
	// reclaimDebt: a rotation found a segment to reclaim (see
	// reclaimNow).
	reclaimDebt bool
	// reclaimMu serializes reclaim passes: the compactor's, an
	// appender's (reclaimNow) and Close's.
	reclaimMu sync.Mutex

	// Pre-faulting for writing (see writeAheadLocked): appended counts
	// the frame bytes of records appended; syncedAppended is its value
	// when the last sync round began, lastSyncGap the bytes appended
	// between the two rounds before.
	appended, syncedAppended, lastSyncGap int64
	// userSynced: Sync was called since Open (see zeroNextLocked).
	userSynced bool

	// Group commit.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool
	synced   pos
	sbGen    uint64
	sb       vfs.File
	// sbUnsynced: a superblock slot was written without a sync since the
	// last Sync.
	sbUnsynced atomic.Bool

	zenc *zstd.Encoder
	// sealer encrypts new records and opens encrypted ones (nil: the log
	// is not encrypted; see checkKey).
	sealer *segment.Sealer

	prepKick    chan struct{}
	dirKick     chan struct{} // a rotation renamed a file: dirSyncer makes the name durable
	compactKick chan struct{}
	quit        chan struct{}
	// closeDone is closed when the Close that does the work returns:
	// every other Close waits for it.
	closeDone chan struct{}
	wg        sync.WaitGroup
}

// Record is an unacknowledged record, yielded by Pending or returned by
// GetRange.
type Record struct {
	Seq uint64
	// Data: Pending's is valid only until the iteration step returns (copy
	// to keep); GetRange's is the caller's, and GetRangeInto's is in the
	// caller's buffer, or the caller's.
	Data []byte
}

// Stats describes a log.
type Stats struct {
	NextSeq      uint64 // the seq the next Append will get
	Pending      int    // unacknowledged records
	PendingBytes int64  // their payload bytes (uncompressed)
	Segments     int    // segment files on disk
	DiskBytes    int64  // bytes the log occupies on disk, all files included
	TornBytes    int64  // bytes Open cut off: a torn tail, or what a power cut left unfinished
}

// Open opens the log in dir, creating the directory (mode 0700, its name
// synced into the directory holding it) and an empty log if needed. It verifies every unacknowledged record and the
// metadata: damage is a *CorruptionError naming the file and offset,
// except beyond the durable high-water mark, where damage is what a crash
// or power cut leaves (a torn tail, pages never written back, a segment
// whose header never reached the disk): the log is cut at the first such
// hole, which is logged and counted in Stats.TornBytes (see the package
// doc). A directory held by another Log fails with ErrLocked.
func Open(dir string, opts ...Option) (*Log, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if !cfg.encrypt {
		cfg.key = nil
	}
	if err := fsutil.MkdirAllSynced(dir, 0o700, cfg.fs.MkdirAll, cfg.fs.SyncDir); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lock, err := lockDir(cfg.fs, dir, cfg.fileMode)
	if err != nil {
		return nil, err
	}
	l, err := openLocked(dir, cfg, lock, loadWrite)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.ownLock = true
	return l, nil
}

// openLocked opens the log in dir, whose lock the caller holds, and
// starts its goroutines. Close releases the lock only if ownLock is set.
func openLocked(dir string, cfg config, lock vfs.File, mode loadMode) (*Log, error) {
	l := &Log{dir: dir, cfg: cfg, fs: cfg.fs, log: cfg.logger, lock: lock,
		prepKick: make(chan struct{}, 1), compactKick: make(chan struct{}, 1), dirKick: make(chan struct{}, 1), quit: make(chan struct{}),
		closeDone: make(chan struct{})}
	l.syncCond = sync.NewCond(&l.syncMu)
	if err := l.open(mode); err != nil {
		l.closeFiles()
		if l.zenc != nil {
			l.zenc.Close()
		}
		if l.sb != nil {
			// Opened last: only taking its space can have failed after.
			l.sb.Close()
		}
		return nil, err
	}
	l.wg.Add(3)
	go l.preparer()
	go l.compactor()
	go l.dirSyncer()
	if cfg.sync.kind == syncEvery {
		l.wg.Add(1)
		go l.syncer(cfg.sync.every)
	}
	// The preparer starts with the first append: a process that only
	// replays its backlog need not allocate and fault in a segment.
	l.kick(l.compactKick)
	return l, nil
}

func (l *Log) open(mode loadMode) error {
	// load only reads (temporary files, which removeTemps deletes, are
	// none of its business): the key is checked before anything changes.
	st, err := load(l.fs, l.dir, mode)
	if err != nil {
		return err
	}
	// Owned by l from here: whatever fails below, closeFiles unmaps them.
	l.segs, l.nextSeq = st.segs, st.nextSeq
	l.encBytes = st.encBytes
	if mode != loadRebuild { // Repair's rebuild appends no record
		sl, writeFile, err := checkKey(st, l.cfg.key)
		if err != nil {
			return err
		}
		l.removeTemps()
		if writeFile {
			if err := l.writeEncryptionFile(sl); err != nil {
				return err
			}
			for _, s := range l.segs {
				if s.plainAt != 0 {
					l.log.Info("wal: the log holds unencrypted records; they stay so, and every new record is encrypted",
						"file", s.file.Path, "offset", s.plainAt)
					break
				}
			}
		}
		l.sealer = sl
	} else {
		l.removeTemps()
	}
	for _, path := range st.leftovers {
		if err := l.fs.Remove(path); err != nil {
			return fmt.Errorf("wal: remove a segment merged into another: %w", err)
		}
		l.log.Info("wal: removed a segment an interrupted merge left behind", "file", path)
	}
	// Recovery may have replayed acks the checkpoint on disk lacks: the
	// first checkpoint of this Log is always written before any segment
	// is reclaimed (see ckptCurrent for when it need not be).
	l.ackEpoch = 1
	if l.cfg.sync.kind == syncNever {
		l.lastSyncGap = 16 * populateChunk // see writeAheadLocked
	}
	l.sbBytes, l.ckptBytes = st.sbBytes, st.ckptBytes
	if st.haveCkpt {
		l.ckptThrough = st.ckpt.Through
	}
	l.sbGen = st.hwm.Generation
	l.synced = pos{st.hwm.Segment, st.hwm.Offset}
	for _, s := range l.segs {
		l.diskBytes += s.file.Size()
		l.pending += s.pending
		l.pendingBytes += s.pendingBytes
	}
	if l.cfg.compression == CompressionZstd {
		if l.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest)); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	if n := len(l.segs); n > 0 && !l.segs[n-1].compacted() {
		l.active = l.segs[n-1]
		if st.tornFrom >= 0 {
			b := l.active.file.Bytes()
			clear(b[st.tornFrom:st.tornTo])
			l.tornBytes = st.tornTo - st.tornFrom
			l.log.Warn("wal: cut a torn tail", "file", l.active.file.Path, "offset", st.tornFrom,
				"bytes", l.tornBytes, "unfinished_batch", st.tornBatch)
			if err := l.active.file.Sync(); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
		}
	}
	// Segments after a power cut's hole go after the hole is cleared, so
	// that a crash in between leaves the same hole for the next Open; the
	// last first, each removal made durable before the next, so that a
	// crash at any point leaves the segments that remain in a run after
	// the hole, which the next Open drops again, not a missing segment
	// between two others (a file system may keep any of the removals
	// not yet synced, not only the first ones).
	for _, path := range slices.Backward(st.dropped) {
		if err := l.fs.Remove(path); err != nil {
			return fmt.Errorf("wal: remove a segment after a power cut's hole: %w", err)
		}
		l.log.Warn("wal: removed a segment written after what a power cut took", "file", path)
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	l.tornBytes += st.droppedBytes
	if l.active == nil {
		// No segment yet, or the last one is compacted: start a new one.
		s, err := l.newSegmentLocked(l.cfg.segmentSize)
		if err != nil {
			return err
		}
		l.installActiveLocked(s)
	} else if ckptCurrent(st, l.active) && mode == loadWrite {
		l.ackEpoch = l.ckptEpoch // nothing to write until something changes
	}
	if l.sb, err = l.fs.OpenFile(vfs.Join(l.dir, index.SuperblockName), os.O_RDWR|os.O_CREATE, l.cfg.fileMode); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	// The superblock's slots are rewritten in place: their space is taken
	// now, so that a sync on a disk that has filled up since still records
	// its mark, and compaction, which syncs before it deletes, can free
	// space. Without room even now, the first write will ask again.
	if err := l.sb.Reserve(2 * index.SuperblockSlot); err != nil && !noSpace(err) {
		return fmt.Errorf("wal: %w", err)
	}
	return nil
}

// ckptCurrent reports whether the checkpoint on disk says all that one
// written now would, so that reopening a log and closing it again writes
// and syncs nothing: it covers the segments before active, no ack frame
// after it acknowledges a record of theirs it calls unacknowledged (ack
// frames of the active segment's own records are not its business), and
// recovery cut nothing. A checkpoint's next seq may lag the log's, as it
// does after appends without a rotation.
func ckptCurrent(st *loaded, active *seg) bool {
	return st.haveCkpt && !st.ckptLacks && st.tornFrom < 0 && len(st.dropped) == 0 &&
		st.ckpt.Through+1 == active.id && st.ckpt.SealedEnd == active.firstSeq
}

// removeTemps deletes files a crash left half-made: a prepared segment, a
// compaction or checkpoint in progress. None holds acknowledged-as-written
// data.
func (l *Log) removeTemps() {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && len(n) > len(tmpExt) && n[len(n)-len(tmpExt):] == tmpExt {
			l.fs.Remove(vfs.Join(l.dir, n))
		}
	}
}

func (l *Log) kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// checkLocked returns the error every call returns after a failure or
// Close.
func (l *Log) checkLocked() error {
	if l.closed || l.closing {
		return ErrClosed
	}
	return l.err
}

// failLocked makes err sticky.
func (l *Log) failLocked(err error) error {
	if l.err == nil {
		l.err = err
		l.log.Error("wal: log failed; every later call returns this error", "err", err)
	}
	return l.err
}

func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(err)
}

// encode compresses data if the log is configured to and it helps.
func (l *Log) encode(data []byte, buf []byte) (payload []byte, flags uint32) {
	if l.zenc == nil || len(data) < 64 {
		return data, 0
	}
	c := l.zenc.EncodeAll(data, buf[:0])
	if len(c) >= len(data) {
		return data, 0
	}
	return c, segment.FlagZstd
}

// compress returns the records of batch as stored (zstd-compressed where
// that helps) and their flags, and the pooled buffers that hold them, to
// go back to bufPool once they are written.
func (l *Log) compress(batch [][]byte) (payloads [][]byte, flags []uint32, bufs []*[]byte) {
	payloads = make([][]byte, len(batch))
	flags = make([]uint32, len(batch))
	for i, d := range batch {
		payloads[i] = d
		if len(d) < 64 {
			continue
		}
		bp := bufPool.Get().(*[]byte)
		bufs = append(bufs, bp)
		payloads[i], flags[i] = l.encode(d, *bp)
		if flags[i]&segment.FlagZstd != 0 {
			// Keep the (maybe grown) buffer, never the caller's data.
			*bp = payloads[i][:0]
		}
	}
	return payloads, flags, bufs
}

// frameFlags are the flags every frame a log writes carries: its
// checksum is the payload's, folded with the header (see
// segment.FlagSumPayload), so that the payload is hashed where the caller
// has it rather than read back from the mapping it was just copied into.
const frameFlags = segment.FlagSumPayload

// writeThrough is the size from which an append is written through the
// file (pwritev) rather than copied into the mapping: the mapping's fault
// path costs more than the write.
const writeThrough = 32 << 10

// syncedWriteThrough is writeThrough where syncs are frequent (the
// preparer faults no page ahead for writing, writeAheadLocked): a sync
// writes the mapped pages back and write-protects them, so the next store
// into each page written since takes a fault (the file system's
// page_mkwrite, about 2.7 µs here) on top of the first one every fresh
// page takes; one pwritev of a page or more costs less than the faults of
// the pages it fills (a batch of 100 records of 100 B with a sync after
// each: 4-5 faults a batch through the mapping).
const syncedWriteThrough = segment.PageSize

// gatherMin is the stored payload size from which a written-through frame
// is written from the caller's memory, between its header and its
// padding, rather than copied behind the header first. Below it, the
// copy costs less than the kernel's handling of one more buffer per
// frame: framed and copied, batches of 1 KiB records are written at
// about 4.1 GB per CPU-second, gathered at 2.9; 1 MiB records at 4.1
// copied and 6.5 gathered (the break-even is near 4 KiB).
const gatherMin = 8 << 10

// folioAlign is the boundary to which a written-through append is
// extended with zeros where syncs are rare (padLocked). The kernel builds
// a write's page-cache folios no larger than the alignment of the page
// where each begins: a batch written from wherever the last one ended
// fills the pages up to the next boundary with folios of a page or a few,
// and the allocation, dirtying and buffer-head work of a folio is paid
// per folio. Extended to the next 64 KiB, every write ends on a boundary
// and its successor's new folios begin on one: 16 pages or more (batches
// of 100 records of 1 KiB: 3,566 folios per 64 MiB unpadded, 410 padded).
// Measured on Linux 6.18, ext4, 2 GiB of batches of 105,600 bytes into
// preallocated 64 MiB files: 5.0 GB per CPU-second of the writing
// thread unpadded, 6.0 padded to 64 KiB (5.3 to 4 KiB, 5.7 to 16 KiB,
// 5.9 to 32 KiB), though the zeros copied add a third to the bytes
// written; 1 MiB records gain little (6.6 -> 6.7).
const folioAlign = 64 << 10

// zeroPad is what padLocked writes after a written-through append; never
// written to.
var zeroPad [folioAlign]byte

// padLocked returns the zeros to write after a written-through append
// that ends at end of the active segment s: up to the next folioAlign
// boundary (or the segment's end). The zeros are what the preallocation
// reads as anyway, and a scan stops at them; the next append overwrites
// them. A sync that comes before that writes them back, though, at most
// folioAlign bytes a sync: so none where a sixteenth of the bytes
// appended between syncs (syncGapLocked) is less than folioAlign, and
// the zeros a sync writes back stay within about 6% of the data, as with
// the pages faulted ahead for writing (writeAheadLocked). Where syncs
// follow every few batches (SyncAlways, an explicit Sync per batch),
// nothing is written past the frames.
func (l *Log) padLocked(s *seg, end int64) []byte {
	if l.syncGapLocked()/16 < folioAlign {
		return nil
	}
	b := min((end+folioAlign-1)&^(folioAlign-1), s.file.Size())
	return zeroPad[:max(0, b-end)]
}

// maxPooledStage bounds the staging buffer a frames keeps for the next
// append: enough for batches of a few MiB and an encrypted 1 MiB record
// (sealed in the buffer), not for the rare huge one.
const maxPooledStage = 4 << 20

// frames is a written-through append being framed: the frame headers,
// their padding and the payloads below gatherMin (every payload, if the
// log encrypts: sealing writes the frame) in stage; iov is what to write,
// the parts of stage and the gathered payloads in order.
type frames struct {
	stage []byte
	iov   [][]byte
	// open: iov's last buffer ends where stage does, and grows with it.
	open bool
}

var framesPool = sync.Pool{New: func() any { return new(frames) }}

// gathered reports whether a written-through frame of stored payload
// bytes is written from the caller's memory.
func gathered(stored int, sealed bool) bool { return !sealed && stored >= gatherMin }

// staged is how many bytes of a written-through frame of stored payload
// bytes go into the staging buffer.
func staged(stored int, sealed bool) int64 {
	if sealed {
		stored += segment.Overhead
	}
	if gathered(stored, sealed) {
		return int64(segment.FrameSize(stored) - stored)
	}
	return int64(segment.FrameSize(stored))
}

// reset readies fr for an append that stages n bytes.
func (fr *frames) reset(n int64) {
	if int64(cap(fr.stage)) < n {
		fr.stage = make([]byte, 0, n)
	}
	fr.stage, fr.iov, fr.open = fr.stage[:0], fr.iov[:0], false
}

// grow returns the next n bytes of the staging buffer, which reset sized
// for every frame (so that the buffers in iov stay where they are), and
// adds them to what is written.
func (fr *frames) grow(n int) []byte {
	at := len(fr.stage)
	fr.stage = fr.stage[:at+n]
	if k := len(fr.iov) - 1; fr.open {
		fr.iov[k] = fr.iov[k][:len(fr.iov[k])+n]
	} else {
		fr.iov = append(fr.iov, fr.stage[at:at+n])
		fr.open = true
	}
	return fr.stage[at : at+n]
}

// put frames a record (stored as p) and returns the frame's size.
func (fr *frames) put(sl *segment.Sealer, seq uint64, flags uint32, rawLen int, p []byte) int {
	switch {
	case sl != nil:
		n := segment.FrameSize(len(p) + segment.Overhead)
		return sl.PutFrame(fr.grow(n), seq, flags, rawLen, p)
	case !gathered(len(p), false):
		return segment.PutFrame(fr.grow(segment.FrameSize(len(p))), seq, flags, rawLen, p)
	}
	segment.PutFrameHeader(fr.grow(segment.FrameHeaderSize), seq, flags, rawLen, p)
	fr.iov = append(fr.iov, p)
	fr.open = false
	clear(fr.grow(segment.FramePadding(len(p))))
	return segment.FrameSize(len(p))
}

// release returns fr to the pool, holding no caller's payload.
func (fr *frames) release() {
	clear(fr.iov)
	if cap(fr.stage) > maxPooledStage {
		fr.stage = nil
	}
	framesPool.Put(fr)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Append appends a record and returns its seq. With SyncAlways it returns
// once the record is on stable storage; if that sync fails, it returns the
// seq with the error: the record is in the log (a killed process keeps it,
// Pending yields it), not known to be durable. The log keeps no reference
// to data.
func (l *Log) Append(data []byte) (uint64, error) {
	if l.zenc == nil && l.sealer == nil && segment.FrameSize(len(data)) < syncedWriteThrough {
		return l.appendSmall(data)
	}
	return l.append([][]byte{data})
}

// appendSmall is append for one record stored as it is (the log neither
// compresses nor encrypts) whose frame is smaller than syncedWriteThrough,
// which append would store into the mapping under every sync policy: it
// does the same without append's loops over a batch, its staging and
// compression cases (BenchmarkAppend size=100B/batch=1: about 10 ns, an
// eighth, of the appending thread's CPU per record).
func (l *Log) appendSmall(data []byte) (uint64, error) {
	size := int64(segment.FrameSize(len(data)))
	l.mu.Lock()
	if err := l.reserveLocked(int64(len(data)), size); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	s, seq := l.active, l.nextSeq
	segment.PutFrame(s.file.Bytes()[s.tail:s.tail+size], seq, frameFlags, len(data), data)
	s.locs.Add(seq, index.Loc{Off: s.tail, Stored: uint32(len(data)), Raw: uint32(len(data))})
	// An error here is the SyncAlways sync's: the record is appended.
	return seq, l.appendedLocked(s, 1, size, int64(len(data)), true)
}

// AppendBatch appends the records of batch as one unit: after a crash the
// batch is recovered whole or not at all. It returns the first seq; the
// records get first..first+len(batch)-1. An empty batch appends nothing
// and returns the next seq. A failed SyncAlways sync is returned with
// first, as Append returns it.
func (l *Log) AppendBatch(batch [][]byte) (first uint64, err error) {
	if len(batch) == 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		if err := l.checkLocked(); err != nil {
			return 0, err
		}
		return l.nextSeq, nil
	}
	return l.append(batch)
}

func (l *Log) append(batch [][]byte) (uint64, error) {
	var raw int64
	over := 0 // what sealing adds to each payload
	if l.sealer != nil {
		over = segment.Overhead
	}
	for _, d := range batch {
		if len(d) > segment.MaxPayload-over {
			return 0, ErrTooLarge
		}
		raw += int64(len(d))
	}
	// The stored payloads, and the flags compression sets: the records
	// themselves and none unless the log compresses.
	payloads, zflags := batch, []uint32(nil)
	if l.zenc != nil {
		var bufs []*[]byte
		payloads, zflags, bufs = l.compress(batch)
		defer func() {
			for _, bp := range bufs {
				bufPool.Put(bp)
			}
		}()
	}
	var total, stage int64
	for _, p := range payloads {
		total += int64(segment.FrameSize(len(p) + over))
		stage += staged(len(p), over != 0)
	}
	if total > segment.MaxSize-segment.HeaderSize {
		return 0, ErrTooLarge
	}
	var batchFlags uint32
	if len(batch) > 1 {
		batchFlags = segment.FlagBatch
	}

	l.mu.Lock()
	if err := l.reserveLocked(raw, total); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	s := l.active
	var b []byte // the mapping, where the frames go unless fr is set
	var fr *frames
	if total >= writeThrough || total >= syncedWriteThrough && l.writeAheadLocked() == 0 {
		fr = framesPool.Get().(*frames)
		fr.reset(stage)
	} else {
		b = s.file.Bytes()[s.tail : s.tail+total]
	}
	first := l.nextSeq
	w := int64(0)
	for i, p := range payloads {
		seq := first + uint64(i)
		flags := batchFlags | frameFlags
		if zflags != nil {
			flags |= zflags[i]
		}
		if batchFlags != 0 && i == len(payloads)-1 {
			flags |= segment.FlagCommit
		}
		var n int
		switch {
		case fr != nil:
			n = fr.put(l.sealer, seq, flags, len(batch[i]), p)
		case l.sealer != nil:
			n = l.sealer.PutFrame(b[w:], seq, flags, len(batch[i]), p)
		default:
			n = segment.PutFrame(b[w:], seq, flags, len(batch[i]), p)
		}
		s.locs.Add(seq, index.Loc{Off: s.tail + w, Stored: uint32(len(p) + over), Raw: uint32(len(batch[i]))})
		w += int64(n)
	}
	if fr != nil {
		if pad := l.padLocked(s, s.tail+w); len(pad) > 0 {
			fr.iov = append(fr.iov, pad)
		}
		err := s.file.WriteV(fr.iov, s.tail)
		fr.release()
		if err != nil {
			// The frames may be half on disk: the log cannot go on.
			err = l.failLocked(fmt.Errorf("wal: append: %w", err))
			l.mu.Unlock()
			return 0, err
		}
	}
	// An error here is the SyncAlways sync's: the records are appended.
	return first, l.appendedLocked(s, len(batch), w, raw, fr == nil)
}

// reserveLocked readies an append of records of raw bytes in frames of
// total bytes: the log takes appends, has room for raw more bytes
// pending (WithMaxBytes), and the active segment for the frames.
func (l *Log) reserveLocked(raw, total int64) error {
	if err := l.checkLocked(); err != nil {
		return err
	}
	if l.cfg.maxBytes > 0 && l.pendingBytes+raw > l.cfg.maxBytes {
		return ErrFull
	}
	return l.ensureRoomLocked(total)
}

// appendedLocked accounts for n records of raw bytes just written at the
// tail of the active segment s in frames of w bytes (through the mapping
// if mapWrites), releases the lock, kicks the background work that is due
// and, under SyncAlways, returns once the records are durable.
func (l *Log) appendedLocked(s *seg, n int, w, raw int64, mapWrites bool) error {
	first := l.nextSeq
	s.tail += w
	l.appended += w
	s.lastSeq = first + uint64(n) - 1
	s.pending += n
	s.pendingBytes += raw
	s.liveFrames += w
	l.nextSeq += uint64(n)
	l.pending += n
	l.pendingBytes += raw
	at := pos{s.id, s.tail}
	l.mapWrites = mapWrites
	// The preparer works in chunks of a MiB or more: whether it has work
	// is worth asking once every 64 KiB appended.
	kick := l.prepared == nil || (s.tail-w)>>16 != s.tail>>16 &&
		(l.populateDueLocked(s) || l.zeroDueLocked(s) || l.releaseBehindDueLocked(s))
	debt := l.takeReclaimDebtLocked()
	l.mu.Unlock()
	if kick {
		l.kick(l.prepKick)
	}
	if debt {
		l.reclaimNow()
	}
	if l.cfg.sync.kind == syncAlways {
		return l.syncTo(at)
	}
	return nil
}

// ensureRoomLocked makes sure the active segment has n free bytes,
// rotating to a new segment if not.
func (l *Log) ensureRoomLocked(n int64) error {
	if l.active.tail+n <= l.active.file.Size() {
		return nil
	}
	return l.rotateLocked(max(l.cfg.segmentSize, segment.PageAlign(segment.HeaderSize+n)))
}

// rotateLocked seals the active segment and makes a new one of size bytes
// the active one.
func (l *Log) rotateLocked(size int64) error {
	s, err := l.newSegmentLocked(size)
	if err != nil {
		return err
	}
	old := l.active
	old.sealed = true
	old.locs.Trim()
	// A Pending iterator may be reading the old bitmap without the lock:
	// truncate a copy rather than the bitmap under it, copying only the
	// words the segment's records need.
	old.setAcks(old.acks.TruncatedClone(l.nextSeq - old.firstSeq))
	l.noteUnsyncedLocked(old.file)
	l.installActiveLocked(s)
	l.sealedUnreleased = true
	l.kick(l.prepKick)
	// The compactor syncs the sealed segment and writes a checkpoint if
	// one is due (see writeCheckpoint).
	l.kick(l.compactKick)
	l.reclaimDebt = l.reclaimDueLocked()
	return nil
}

// takeReclaimDebtLocked reports, once, that a rotation found space the
// compactor had not reclaimed yet: the caller runs reclaimNow once it has
// released the lock.
func (l *Log) takeReclaimDebtLocked() bool {
	d := l.reclaimDebt
	l.reclaimDebt = false
	return d
}

// noteUnsyncedLocked remembers a file written since the last sync, for the
// next sync to flush; files retired since (reclaimed or replaced by
// compaction) are forgotten, so the list does not grow under SyncNever.
func (l *Log) noteUnsyncedLocked(f *mapped) {
	keep := l.unsynced[:0]
	for _, u := range l.unsynced {
		if !u.retired {
			keep = append(keep, u)
		}
	}
	l.unsynced = append(keep, f)
}

func (l *Log) installActiveLocked(s *seg) {
	l.segs = append(l.segs, s)
	l.active = s
}

// newSegmentLocked turns the prepared file (or a new one, if none is
// ready or it is not size bytes) into the next segment, of size bytes.
func (l *Log) newSegmentLocked(size int64) (*seg, error) {
	var id uint64 = 1
	if n := len(l.segs); n > 0 {
		// After the ids a merged last segment covers: a file named by one
		// of them is a leftover of the merge to the next Open.
		last := l.segs[n-1]
		id = max(last.id, last.file.Header.MergedThrough) + 1
	}
	var f *mapped
	var ix *segIndex
	populated := int64(segment.HeaderSize)
	// A prepared file of another size stays prepared (the preparer may
	// be pre-faulting it): an oversized record gets a file of its own,
	// and so does Close's one-page segment (see shrinkIdle). One the
	// preparer is faulting in stays pinned by it (prepareStep) while it
	// becomes a segment, which may be filled, sealed and reclaimed
	// meanwhile.
	if p := l.prepared; p != nil && p.Size() == size {
		l.prepared = nil
		f, populated, ix = p, l.prepPopulated, l.prepIndex
		l.prepIndex = nil
	}
	if f == nil {
		nf, err := l.createFile(l.preparedPath(), size)
		if err != nil {
			return nil, fmt.Errorf("wal: new segment: %w", err)
		}
		f = newMapped(nf)
	}
	path := vfs.Join(l.dir, segment.Name(id))
	// keepForNextTry keeps the file, not yet renamed, for the next try,
	// if it is one a rotation takes: not an oversized record's, nor
	// Close's one-page one.
	keepForNextTry := func() {
		if l.prepared == nil && size == l.cfg.segmentSize {
			l.prepared, l.prepPopulated, l.prepIndex = f, populated, ix
		} else {
			l.discardPrepared(f)
		}
	}
	if l.renamesDurable < l.renames {
		// The last segment's name is not durable yet (neither
		// dirSyncer, which syncs the directory after each rotation, nor a
		// sync round has yet): a file system may keep any subset of the
		// directory operations not synced at a power cut, and keeping
		// this name without that one would leave a hole with records
		// after it, not a prefix.
		if err := l.fs.SyncDir(l.dir); err != nil {
			keepForNextTry()
			return nil, fmt.Errorf("wal: new segment: sync the directory: %w", err)
		}
		l.renamesDurable = l.renames
	}
	if err := f.WriteHeader(segment.Header{ID: id, FirstSeq: l.nextSeq}); err != nil {
		// What the file holds is unknown: it is not used again.
		l.discardPrepared(f)
		return nil, fmt.Errorf("wal: new segment: %w", err)
	}
	if err := l.fs.Rename(f.Path, path); err != nil {
		keepForNextTry()
		return nil, fmt.Errorf("wal: new segment: %w", err)
	}
	f.Path = path
	l.dirDirty = true
	l.renames++
	l.kick(l.dirKick)
	if ix == nil {
		ix = newSegIndex(size)
	}
	ix.locs.Rebase(l.nextSeq)
	ix.acks.Rebase(l.nextSeq)
	if size == l.cfg.segmentSize {
		ix.reserve(l.expectRecordsLocked(size))
	}
	s := &seg{id: id, firstSeq: l.nextSeq, file: f, tail: segment.HeaderSize, populated: populated, wpopulated: segment.HeaderSize,
		locs: ix.locs}
	s.setAcks(ix.acks)
	return s, nil
}

// segIndex is a new segment's index and acknowledgement bitmap, made
// before the seq the segment starts at is known (Rebase sets it).
type segIndex struct {
	locs *index.Locations
	acks *index.Acks
}

// newSegIndex returns an empty index and bitmap for a segment file of
// size bytes: the bitmap covers as many records as the file could hold.
func newSegIndex(size int64) *segIndex {
	capacity := uint64(size-segment.HeaderSize) / segment.FrameHeaderSize
	return &segIndex{locs: index.NewLocations(0), acks: index.NewAcks(0, capacity)}
}

// reserve makes room in the index for n records (expectRecordsLocked), at
// most as many as the segment can hold.
func (ix *segIndex) reserve(n uint64) {
	ix.locs.Reserve(int(min(n, ix.acks.Len())))
}

// expectRecordsLocked returns how many records a new segment of size
// bytes is likely to take: as many per byte as the active segment took,
// and a sixteenth more, so that the new segment's index is allocated once
// (index.Locations.Reserve) rather than grown and copied as records come,
// and fits well enough to be kept as it is when the segment is sealed
// (index.Locations.Trim). 0 if the active segment holds nothing yet; the
// caller bounds it by what the segment can hold.
func (l *Log) expectRecordsLocked(size int64) uint64 {
	a := l.active
	if a == nil || a.tail <= segment.HeaderSize {
		return 0
	}
	n := uint64(a.locs.Len()) * uint64(size-segment.HeaderSize) / uint64(a.tail-segment.HeaderSize)
	return n + n/16
}

// lastSealedLocked returns the segment before the active one (every
// segment before the active one is sealed), or nil if there is none.
func (l *Log) lastSealedLocked() *seg {
	if n := len(l.segs); n >= 2 {
		return l.segs[n-2]
	}
	return nil
}

// halfFullLocked reports whether the active segment a, of the configured
// size, is at least half full.
func (l *Log) halfFullLocked(a *seg) bool {
	return a.file.Size() == l.cfg.segmentSize && 2*(a.tail-segment.HeaderSize) >= a.file.Size()-segment.HeaderSize
}

// createFile allocates and maps a new segment file and counts it.
func (l *Log) createFile(path string, size int64) (*segment.File, error) {
	f, err := segment.Create(l.fs, path, size, l.cfg.fileMode)
	if err != nil {
		return nil, err
	}
	l.diskBytes += size
	return f, nil
}

// discardPrepared removes a prepared file and closes it, or leaves closing
// it to the preparer if it is faulting the file's pages in (prepareStep).
func (l *Log) discardPrepared(f *mapped) {
	// Uncounted once removed (read before Close, after which Size is
	// 0); a file left behind is counted until the next Open removes it.
	if l.fs.Remove(f.Path) == nil {
		l.diskBytes -= f.Size()
	}
	l.retireLocked(f)
}

// prepareHook, if set (by tests), runs on the preparer before it faults
// in pages of the prepared file f, outside the lock.
var prepareHook atomic.Pointer[func(f *segment.File)]

// preparedPath names a new file to prepare a segment in; the names are
// unique, so the preparer and a rotation that cannot wait never collide.
func (l *Log) preparedPath() string {
	return vfs.Join(l.dir, fmt.Sprintf("%s%d%s%s", preparedPrefix, l.prepSeq.Add(1), segment.Ext, tmpExt))
}

// preparedPrefix starts the name of a prepared segment file.
const preparedPrefix = "next-"

// isPreparedName reports whether name is one preparedPath makes.
func isPreparedName(name string) bool {
	digits, ok := strings.CutPrefix(name, preparedPrefix)
	if !ok {
		return false
	}
	digits, ok = strings.CutSuffix(digits, segment.Ext+tmpExt)
	if !ok || digits == "" {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 64)
	return err == nil
}

// Pre-faulting (unless WithPrefault(false)): the preparer keeps the pages
// ahead of the active segment's tail faulted in, populateChunk at a time at most, and once
// that window reaches past the segment's end, the first pages of the
// prepared next segment (as far as the window reaches into it), so that
// appends rarely take a full page fault. The window grows with the
// writer (aheadLocked): an eighth of the bytes appended since Open, at
// least populateMin and at most populateAhead, so that a process that
// writes a few MiB holds a few hundred KiB of pages ahead, not a full
// window in each of two segments. Pages are faulted for reading
// (see segment.File.Populate): the first store to each still takes a
// write-protect fault, the file system's page_mkwrite, which costs about
// as much as the rest of a small record's append. Where syncs are rare,
// the active segment's pages are faulted for writing instead, and stores
// take no fault; see writeAheadLocked. Where they are frequent, pages
// come into the page cache one at a time rather than in large folios
// (segment.File.SmallPages), so that a sync writes back only the pages
// written since the last one.
//
// Releasing: the preparer also drops mapped pages from the process's
// resident set (the data stays in the page cache and on disk), so that
// the pages held do not grow with what is written or read: those of the
// active segment more than a release step behind the tail, and every
// page of the sealed segments. It does so each time the tail has moved a
// release step past the last release, a segment was sealed, or reads
// through the mappings (Get's: Ack reads nothing, Pending reads the
// files) have brought in releaseEvery bytes since. The release step (releaseStepLocked) is a
// quarter of the window ahead: at most releaseEvery.
const (
	populateChunk = 2 << 20
	populateAhead = 8 << 20
	populateMin   = 512 << 10
	// populateRamp: the window ahead is the bytes appended since Open
	// divided by this, between populateMin and populateAhead.
	populateRamp = 8
	releaseEvery = populateAhead / 4
)

// preparer keeps the next segment allocated, mapped and pre-faulted, and
// the active one pre-faulted ahead of its tail, so that neither a rotation
// nor an append waits for the disk or the page allocator.
func (l *Log) preparer() {
	defer l.wg.Done()
	for {
		select {
		case <-l.quit:
			return
		case <-l.prepKick:
		}
		for l.prepareStep() {
			select {
			case <-l.quit:
				return
			default:
			}
		}
	}
}

// dirSyncer syncs the log directory after each rotation, so that the new
// segment's name is durable well before the next rotation needs it to be
// (newSegmentLocked), without waiting for a sync round (which may be
// writing a sealed segment back) and without holding up the preparer: a
// directory sync can take as long as the file system's journal commit,
// tens of milliseconds while segments are written back. A failure is
// left to the rotation, which syncs the directory itself.
func (l *Log) dirSyncer() {
	defer l.wg.Done()
	for {
		select {
		case <-l.quit:
			return
		case <-l.dirKick:
		}
		l.mu.Lock()
		renames, done := l.renames, l.renamesDurable >= l.renames || l.closed
		l.mu.Unlock()
		if done || l.fs.SyncDir(l.dir) != nil {
			continue
		}
		l.mu.Lock()
		l.renamesDurable = max(l.renamesDurable, renames)
		l.mu.Unlock()
	}
}

// prepareStep does one chunk of preparation and reports whether more
// remains.
func (l *Log) prepareStep() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	a := l.active
	if l.releaseDueLocked() {
		l.releaseMapped() // unlocks
		return true
	}
	if from, to := l.zeroNextLocked(a); from < to {
		l.zeroAheadLocked(a, from, to) // unlocks
		return true
	}
	if from, to, write := l.populateNextLocked(a); from < to {
		f := a.file
		f.pin()
		l.mu.Unlock()
		f.SmallPages(!write)
		if write {
			f.PopulateWrite(from, to)
		} else {
			f.Populate(from, to)
		}
		l.mu.Lock()
		if l.active == a && a.file == f {
			a.populated = max(a.populated, to)
			if write {
				a.wpopulated = max(a.wpopulated, to)
			}
		}
		l.mu.Unlock()
		f.unpin()
		return true
	}
	if p := l.prepared; p != nil && l.prepIndex == nil && p.Size() == l.cfg.segmentSize && l.halfFullLocked(a) {
		// The index for the records the prepared segment will likely
		// take (expectRecordsLocked), allocated here rather than by the
		// rotation under the lock; once the active segment is half full,
		// so that the estimate holds and a log that writes little never
		// holds an index for a segment it may never reach (a rotation
		// that comes first allocates its own).
		size := p.Size() // read here: a rotation may discard and close p once we unlock
		if n := l.expectRecordsLocked(size); n > 0 {
			l.mu.Unlock()
			ix := newSegIndex(size)
			ix.reserve(n)
			l.mu.Lock()
			if l.prepared == p && l.prepIndex == nil {
				l.prepIndex = ix
			}
			l.mu.Unlock()
			return true
		}
	}
	if p := l.prepared; p != nil {
		from, end := l.prepPopulated, l.prepReachLocked(a)
		if from >= end || !l.prefaultLocked() {
			l.mu.Unlock()
			return false
		}
		// A rotation may take the file while we populate it (that
		// changes no data) or discard it: our pin keeps it mapped until
		// we are done.
		small := l.writeAheadLocked() == 0
		p.pin()
		l.mu.Unlock()
		if hook := prepareHook.Load(); hook != nil {
			(*hook)(p.File)
		}
		to := min(from+populateChunk, end)
		p.SmallPages(small)
		p.Populate(from, to)
		l.mu.Lock()
		if l.prepared == p {
			l.prepPopulated = to
		}
		l.mu.Unlock()
		p.unpin()
		return true
	}
	size := l.cfg.segmentSize
	l.mu.Unlock()
	path := l.preparedPath()
	f, err := segment.Create(l.fs, path, size, l.cfg.fileMode)
	if err != nil {
		l.log.Warn("wal: could not prepare the next segment; will retry at rotation", "err", err)
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.prepared != nil {
		f.Close()
		l.fs.Remove(path)
		return false
	}
	l.prepared, l.prepPopulated, l.prepIndex = newMapped(f), 0, nil
	l.diskBytes += size
	return true
}

// aheadLocked returns how far past the active segment's tail the
// preparer keeps pages faulted in: an eighth of the bytes appended since
// Open, at least populateMin, at most populateAhead (see Pre-faulting).
func (l *Log) aheadLocked() int64 {
	return min(populateAhead, max(populateMin, l.appended/populateRamp)) &^ (segment.PageSize - 1)
}

// releaseStepLocked returns how far behind the active segment's tail the
// preparer lets written pages stay mapped, and how far the tail moves
// between two releases: a quarter of the window ahead.
func (l *Log) releaseStepLocked() int64 {
	return l.aheadLocked() / 4
}

// writeAheadLocked returns how far past the active segment's tail the
// preparer keeps pages faulted for writing, or 0 if it faults them for
// reading only.
//
// A page faulted for writing is dirty: a sync that comes before records
// fill it writes its zeros back, write-protects it again, and the store
// that fills it faults after all. So pages are faulted for writing only
// where a sixteenth of the bytes appended between syncs (the more of the
// last two gaps between sync rounds, the current one included; a round
// with nothing appended since the one before does not count) is
// populateChunk or more, and no further ahead than that sixteenth: the
// zeros a sync may write back stay within about 6% of the data, and where
// syncs are frequent (SyncAlways, SyncEvery, an explicit Sync per batch)
// nothing changes. Nor further than the window ahead (aheadLocked).
// Under SyncNever the rounds are those of rotations (a segment apart) and
// of explicit Syncs, and a log starts as if the last gap had been just
// long enough to fault populateChunk ahead for writing (a Sync soon after
// Open writes back that much zeros at most); under the other policies,
// as if syncs were frequent.
func (l *Log) writeAheadLocked() int64 {
	w := l.syncGapLocked() / 16
	if w < populateChunk {
		return 0
	}
	return min(w, l.aheadLocked())
}

// syncGapLocked returns the bytes appended between syncs: the more of the
// last two gaps between sync rounds, the current one included (see
// writeAheadLocked).
func (l *Log) syncGapLocked() int64 {
	return max(l.lastSyncGap, l.appended-l.syncedAppended)
}

// prefaultLocked reports whether the preparer faults pages in ahead of
// the writer: unless WithPrefault(false), while appends go through the
// mapping.
func (l *Log) prefaultLocked() bool {
	return l.mapWrites && !l.cfg.noPrefault
}

// zeroChunk is how much of the active segment the preparer writes zeros
// over at a time, holding the log's lock (see zeroNextLocked): one pwrite.
const zeroChunk = segment.ZeroChunk

// zeroHook, if set (by tests), is called with each range the preparer
// writes zeros over and the active segment's tail at that moment, with
// the log's lock held.
var zeroHook atomic.Pointer[func(f *segment.File, from, to, tail int64)]

// zeroNextLocked returns the next range [from, to) of the active segment
// a for the preparer to write zeros over, from >= to if none.
//
// Where syncs are frequent (writeAheadLocked is 0: SyncAlways, SyncEvery,
// an explicit Sync every few MiB), every sync writes records into blocks
// that fallocate left unwritten, and the file system must then record
// that they hold data: a journal commit on top of the data's write (on
// ext4 here, 10,000 bytes and an fdatasync took 150-160 µs into
// fallocated blocks, 88-101 µs into blocks written before). So the
// preparer writes zeros over the window ahead of the tail (aheadLocked),
// a zeroChunk at a time, and writes them back to the device
// (zeroAheadLocked): the records' syncs then find the blocks written, and
// the journal commits that mark them so come from the zeros' writeback,
// a chunk at a time, not from every sync. It starts at the page after
// the tail's, so that it never writes where a record is, and holds the
// lock while it writes, so that no append or acknowledgement writes there
// meanwhile. Not with WithPrefault(false): like pre-faulting, it is
// background work that a machine with no idle core pays for. It doubles
// what a synced log writes to the device, as zero-filling write-ahead
// logs do.
func (l *Log) zeroNextLocked(a *seg) (from, to int64) {
	if !l.zeroingLocked() || a.sealed {
		return 0, 0
	}
	limit := min(a.file.Size(), a.tail+l.aheadLocked()) &^ (segment.PageSize - 1)
	from = max(a.zeroed, segment.PageAlign(a.tail))
	return from, min(from+zeroChunk, limit)
}

// zeroDueLocked reports whether the preparer has zeros to write ahead of
// the active segment a's tail (at half the window, as populateDueLocked).
func (l *Log) zeroDueLocked(a *seg) bool {
	return l.zeroingLocked() && a.zeroed < a.file.Size() && a.tail+l.aheadLocked()/2 > a.zeroed
}

// zeroingLocked reports whether the preparer writes zeros ahead of the
// tail (see zeroNextLocked): syncs are frequent, and they are the
// caller's (SyncAlways, SyncEvery, or Sync called since Open), not only a
// SyncNever log's checkpoint rounds, which would make them look frequent
// for a while after its first checkpoint.
func (l *Log) zeroingLocked() bool {
	return !l.cfg.noPrefault && (l.cfg.sync.kind != syncNever || l.userSynced) && l.writeAheadLocked() == 0
}

// zeroAheadLocked writes zeros over [from, to) of the active segment a,
// ahead of its tail (see zeroNextLocked), with the lock held, releases
// it, and writes them back to the device, waiting for them asleep
// (segment.File.WriteBack, which leaves any writeback error to the next
// sync). A write that fails stops the zeroing of this segment: the zeros
// are an optimisation.
func (l *Log) zeroAheadLocked(a *seg, from, to int64) {
	f := a.file
	if hook := zeroHook.Load(); hook != nil {
		(*hook)(f.File, from, to, a.tail)
	}
	if err := f.WriteZeros(from, to-from); err != nil {
		l.log.Warn("wal: could not write zeros ahead of the tail; stopped for this segment", "path", f.Path, "err", err)
		a.zeroed = f.Size()
		l.mu.Unlock()
		return
	}
	a.zeroed = to
	f.pin()
	l.mu.Unlock()
	f.WriteBack(from, to-from)
	f.unpin()
}

// populateNextLocked returns the next range [from, to) of the active
// segment a to pre-fault, and whether for writing; from >= to if none.
func (l *Log) populateNextLocked(a *seg) (from, to int64, write bool) {
	if !l.prefaultLocked() {
		return 0, 0, false
	}
	size := a.file.Size()
	if w := l.writeAheadLocked(); w > 0 {
		// The pages below the tail's took their faults when filled.
		from = max(a.wpopulated, a.tail&^(segment.PageSize-1))
		return from, min(from+populateChunk, a.tail+w, size), true
	}
	// Nor, faulting for reading, the pages the tail has passed: a writer
	// that got ahead of the preparer (while it wrote zeros, say) faulted
	// them in itself, and the preparer may have released them since.
	from = max(a.populated, a.tail&^(segment.PageSize-1))
	return from, min(from+populateChunk, a.tail+l.aheadLocked(), size), false
}

// windowLocked returns how far past the active segment's tail the
// preparer keeps pages faulted in, for writing or for reading.
func (l *Log) windowLocked() int64 {
	if w := l.writeAheadLocked(); w > 0 {
		return w
	}
	return l.aheadLocked()
}

// prepReachLocked returns how far into the prepared segment the window
// past the active segment a's tail reaches: the preparer populates the
// prepared segment up to there.
func (l *Log) prepReachLocked(a *seg) int64 {
	p := l.prepared
	if p == nil {
		return 0
	}
	return max(0, min(p.Size(), a.tail+l.windowLocked()-a.file.Size()))
}

// populateDueLocked reports whether the preparer has pages of the active
// segment a, or of the prepared one, to pre-fault (at half the distance
// it keeps ahead, so that it is kicked once a chunk, not on every
// append).
func (l *Log) populateDueLocked(a *seg) bool {
	if !l.prefaultLocked() {
		return false
	}
	size := a.file.Size()
	w := l.writeAheadLocked()
	switch {
	case w > 0 && a.wpopulated < size:
		return a.tail+w/2 > a.wpopulated
	case w == 0 && a.populated < size:
		return a.tail+l.aheadLocked()/2 > a.populated
	}
	// The active segment is populated to its end: the window goes on
	// into the prepared one.
	return l.prepared != nil && l.prepPopulated < l.prepReachLocked(a) &&
		a.tail+l.windowLocked()/2 > size+l.prepPopulated
}

// releaseDueLocked reports whether the preparer should drop mapped pages
// (see Releasing).
func (l *Log) releaseDueLocked() bool {
	return l.sealedUnreleased || l.readSince >= releaseEvery || l.releaseBehindDueLocked(l.active)
}

// releaseBehindDueLocked reports whether the active segment a's tail has
// moved a release step past its last release.
func (l *Log) releaseBehindDueLocked(a *seg) bool {
	step := l.releaseStepLocked()
	return a.tail-step >= a.released+step
}

// pagesTouched is the most a read of n bytes through a mapping faults in:
// its pages, one more where it straddles a page boundary.
func pagesTouched(n int64) int64 { return segment.PageAlign(n) + segment.PageSize }

// noteReadLocked counts n bytes a read through the mappings is about to
// fault in, and kicks the preparer to drop them once they add up to
// releaseEvery. Counted under the lock the read's lookup holds anyway:
// an atomic counter beside the fields appends write cost Get a contended
// cache line per record.
func (l *Log) noteReadLocked(n int64) {
	l.readSince += n
	if l.readSince >= releaseEvery && l.readSince-n < releaseEvery {
		l.kick(l.prepKick)
	}
}

// releaseMapped drops from the resident set the pages of the active
// segment up to a release step behind its tail (from the start: pages read
// again since the last release go too) and every page of the sealed
// segments. It is called with the lock held and returns without it.
func (l *Log) releaseMapped() {
	type span struct {
		f  *mapped
		to int64
	}
	var spans []span
	a := l.active
	if to := (a.tail - l.releaseStepLocked()) &^ (segment.PageSize - 1); to > 0 {
		a.released = to
		spans = append(spans, span{a.file, to})
	}
	for _, s := range l.segs {
		if s.sealed && !s.file.retired {
			spans = append(spans, span{s.file, s.file.Size()})
		}
	}
	for _, sp := range spans {
		sp.f.pin()
	}
	l.readSince = 0
	l.sealedUnreleased = false
	l.mu.Unlock()
	for _, sp := range spans {
		if sp.f != a.file {
			// Sealed: pages a reader faults in again may come in large
			// folios (see segment.File.SmallPages).
			sp.f.SmallPages(false)
		}
		sp.f.Release(0, sp.to)
		sp.f.unpin()
	}
}

// retireLocked drops the log's reference to m: it closes m now or, if a
// reader holds it, when the last one lets go.
func (l *Log) retireLocked(m *mapped) {
	if m.retired {
		return
	}
	m.retired = true
	m.unpin()
}

// Sync makes every record appended and every acknowledgement made so far
// durable, whatever the sync policy.
func (l *Log) Sync() error {
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	at := pos{l.active.id, l.active.tail}
	l.userSynced = true
	l.mu.Unlock()
	return l.syncTo(at)
}

// syncSuperblock makes the last high-water mark written durable too.
// Close does it; a sync round does not, so that it costs one fdatasync.
func (l *Log) syncSuperblock() error {
	if l.sbUnsynced.Swap(false) {
		if err := l.sb.Sync(); err != nil {
			return l.fail(fmt.Errorf("wal: sync superblock: %w", err))
		}
	}
	return nil
}

// syncTo returns once everything up to at is durable. Concurrent callers
// share one sync: the first becomes the syncer, the rest wait for it and
// find their position covered.
func (l *Log) syncTo(at pos) error {
	l.syncMu.Lock()
	for {
		// Covered first: a sync round that made at durable before a
		// later failure (background work poisoning the log) did its job.
		if !l.synced.less(at) {
			l.syncMu.Unlock()
			return nil
		}
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			l.syncMu.Unlock()
			return err
		}
		if !l.syncing {
			break
		}
		l.syncCond.Wait()
	}
	l.syncing = true
	l.syncMu.Unlock()
	// Let appenders running beside us add their records to this round.
	runtime.Gosched()
	done, err := l.doSync(at)

	l.syncMu.Lock()
	l.syncing = false
	if err == nil && l.synced.less(done) {
		l.synced = done
	}
	l.syncCond.Broadcast()
	l.syncMu.Unlock()
	return err
}

// doSync syncs every file written since the last sync, then records the
// new durable high-water mark in the superblock. The superblock itself is
// synced by Close only; otherwise the kernel writes it back, so
// that a group-commit round costs one fdatasync. After a power cut the
// mark on disk may be older than the last sync, never newer, which only
// narrows what recovery classifies as corruption.
//
// Where at lies in a sealed segment (the rotation's sync, see
// writeCheckpoint, or an appender whose segment was sealed since), the
// round syncs the sealed segments only, up to the end of the last one,
// and leaves the active segment alone: its pages ahead of the tail,
// pre-faulted for writing (see writeAheadLocked), stay dirty and
// writable instead of being written back as zeros and write-protected
// under the writer, and the round counts as no gap between syncs.
//
// A sealed segment is synced asleep (segment.File.SyncAsleep): its
// writeback, up to a segment's worth of pages, is waited for without
// holding one of the places GOMAXPROCS gives Go code, which the appenders
// and the preparer need meanwhile.
func (l *Log) doSync(at pos) (pos, error) {
	l.mu.Lock()
	if err := l.err; err != nil {
		l.mu.Unlock()
		return pos{}, err
	}
	if l.closed {
		// The files are retired: nothing could be synced.
		l.mu.Unlock()
		return pos{}, ErrClosed
	}
	// A sealed file retired since its rotation (merged or reclaimed) may
	// be closed already: pinning it would make release close it again.
	last := l.lastSealedLocked()
	sealedOnly := last != nil && at.seg < l.active.id && last.id >= at.seg
	synced := l.unsynced
	active := l.active.file
	if !sealedOnly {
		synced = append(synced, active)
	}
	var files []*mapped
	for _, f := range synced {
		if !f.retired {
			f.pin()
			files = append(files, f)
		}
	}
	l.unsynced = nil
	at, lastSeq := pos{l.active.id, l.active.tail}, l.nextSeq-1
	if sealedOnly {
		// The last sealed segment ends where the active one's seqs begin.
		at, lastSeq = pos{last.id, last.tail}, l.active.firstSeq-1
	}
	sb := index.Superblock{Segment: at.seg, Offset: at.off, Seq: lastSeq}
	dirDirty, renames := l.dirDirty, l.renames
	l.dirDirty = false
	if !sealedOnly && l.appended != l.syncedAppended {
		// A round with nothing appended since the last says nothing of
		// the gap between syncs (see writeAheadLocked): the first
		// checkpoint after Open, or acknowledgements alone.
		l.lastSyncGap, l.syncedAppended = l.appended-l.syncedAppended, l.appended
	}
	l.mu.Unlock()
	if hook := syncCapturedHook.Load(); hook != nil {
		(*hook)()
	}

	var err error
	for _, f := range files {
		l.mu.Lock()
		retired := f.retired // set under the lock by compaction and removal
		l.mu.Unlock()
		switch {
		case err != nil || retired:
		case f != active:
			// A sealed segment: written no more, and up to a
			// segment of pages to write back.
			err = f.SyncAsleep()
			if hook := sealedSyncHook.Load(); hook != nil {
				(*hook)(f.Path)
			}
		default:
			err = f.Sync()
		}
		f.unpin()
	}
	if err == nil && dirDirty {
		if err = l.fs.SyncDir(l.dir); err == nil {
			l.mu.Lock()
			l.renamesDurable = max(l.renamesDurable, renames)
			l.mu.Unlock()
		}
	}
	if err == nil {
		err = l.writeSuperblock(sb)
		if noSpace(err) {
			// Every file is synced; only the new mark found no room
			// (the superblock's first page on a full disk). The
			// superblock's other slot holds the last mark, and the next
			// round writes this slot again: not a failed sync, so not
			// sticky. The round's callers get the error.
			return pos{}, fmt.Errorf("wal: sync: %w", err)
		}
	}
	if err != nil {
		return pos{}, l.fail(fmt.Errorf("wal: sync: %w", err))
	}
	return at, nil
}

// noSpace reports whether err is a full disk or an exhausted quota.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// syncCapturedHook, if set (by tests), runs in each sync round once it has
// taken the files to sync and the position they cover.
var syncCapturedHook atomic.Pointer[func()]

// sealedSyncHook, if set (by tests), runs in a sync round after it synced a
// sealed segment, with its path.
var sealedSyncHook atomic.Pointer[func(path string)]

// writeSuperblock writes the next slot, unsynced (see doSync). Only the
// syncer (syncing set) calls it.
func (l *Log) writeSuperblock(sb index.Superblock) error {
	l.sbGen++
	sb.Generation = l.sbGen
	var slot [64]byte
	index.PutSuperblockSlot(slot[:], sb)
	if _, err := l.sb.WriteAt(slot[:], int64(sb.Generation%2)*index.SuperblockSlot); err != nil {
		// The slot may be torn: the next write must go to it again,
		// not overwrite the other, which holds the last good mark.
		l.sbGen--
		return err
	}
	l.sbUnsynced.Store(true)
	l.mu.Lock()
	l.sbBytes = max(l.sbBytes, int64(sb.Generation%2)*index.SuperblockSlot+64)
	l.mu.Unlock()
	return nil
}

// syncer syncs in the background for SyncEvery.
func (l *Log) syncer(every time.Duration) {
	defer l.wg.Done()
	tick, stop := l.cfg.ticker(every)
	defer stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick:
		}
		l.mu.Lock()
		if l.closed || l.err != nil {
			l.mu.Unlock()
			return
		}
		at := pos{l.active.id, l.active.tail}
		l.mu.Unlock()
		l.syncMu.Lock()
		behind := l.synced.less(at)
		l.syncMu.Unlock()
		if behind {
			l.syncTo(at)
		}
	}
}

// Get returns a copy of the record seq. It returns ErrNotFound if seq was
// never written or is acknowledged, and a *CorruptionError if its frame
// fails its checksum.
func (l *Log) Get(seq uint64) ([]byte, error) {
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	s := findSeg(l.segs, seq)
	if s == nil || seq >= l.nextSeq {
		l.mu.Unlock()
		return nil, ErrNotFound
	}
	loc, ok := s.unacked(seq)
	if !ok {
		l.mu.Unlock()
		return nil, ErrNotFound
	}
	f := s.file
	f.pin()
	l.noteReadLocked(pagesTouched(segment.FrameHeaderSize + int64(loc.Stored)))
	l.mu.Unlock()
	defer f.unpin()
	return l.read(f, loc.Off, seq, nil)
}

// GetRange appends to dst copies of the unacknowledged records with seqs
// from from on, ascending, and returns it with next, the seq to go on
// from. It stops before seq to, at the end of the segment file from is
// in, after getRangeMax records, or once the records it appended hold
// maxBytes (at least one record), whichever comes first; every seq from
// from up to next that it did not append was not found (acknowledged,
// never written, or left out by compaction). Each record is verified as
// Get verifies it, and is a copy of its own, as Get's: a caller may keep
// some records far longer than others.
//
// A reader of consecutive records (a sender catching up with a backlog)
// takes the log's lock twice per call instead of twice per record. If a
// record cannot be read, GetRange returns the records before it, next at
// its seq, and the error Get would return for it.
func (l *Log) GetRange(dst []Record, from, to uint64, maxBytes int) (_ []Record, next uint64, err error) {
	dst, _, next, err = l.getRange(dst, nil, from, to, maxBytes)
	return dst, next, err
}

// GetRangeInto is GetRange with the records' bytes in buf's storage, one
// after the other, instead of copies of their own; it returns the part of
// buf it did not use. Besides GetRange's bounds it stops before a record
// that does not fit in what is left of buf. If not even the first fits, it
// is GetRange: copies of their own, and buf unused. A reader that keeps
// records until they are handled and then reuses their storage (a sender
// with a window in flight) allocates nothing per record: the caller owns
// buf, and must not reuse a part of it while a record in it is in use.
func (l *Log) GetRangeInto(dst []Record, buf []byte, from, to uint64, maxBytes int) (_ []Record, rest []byte, next uint64, err error) {
	return l.getRange(dst, buf[:len(buf):len(buf)], from, to, maxBytes)
}

// getRange is GetRange (buf nil) and GetRangeInto.
func (l *Log) getRange(dst []Record, buf []byte, from, to uint64, maxBytes int) (_ []Record, rest []byte, next uint64, err error) {
	rest = buf
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return dst, rest, from, err
	}
	to = min(to, l.nextSeq)
	i := segsThrough(l.segs, from)
	if i == 0 {
		// Below the oldest segment: reclaimed.
		next = to
		if len(l.segs) > 0 {
			next = min(to, l.segs[0].firstSeq)
		}
		l.mu.Unlock()
		return dst, rest, max(from, next), nil
	}
	s := l.segs[i-1]
	if i < len(l.segs) {
		to = min(to, l.segs[i].firstSeq)
	}
	var locs [getRangeMax]frameLoc
	n, size, touched := 0, 0, int64(0)
	next = from
	inBuf := 0 // bytes of buf the records found so far take
	for stop := min(to, from+getRangeScan); next < stop && n < len(locs) && (n == 0 || size < maxBytes); next++ {
		loc, ok := s.unacked(next)
		if !ok {
			continue
		}
		if buf != nil {
			if inBuf+int(loc.Raw) > len(buf) {
				if n > 0 {
					break
				}
				buf = nil // not even the first fits: copies, as GetRange's
			}
			inBuf += int(loc.Raw)
		}
		locs[n] = frameLoc{next, loc}
		n++
		size += int(loc.Raw)
		touched += pagesTouched(segment.FrameHeaderSize + int64(loc.Stored))
	}
	if n == 0 {
		l.mu.Unlock()
		return dst, rest, next, nil
	}
	f := s.file
	f.pin()
	l.noteReadLocked(touched)
	l.mu.Unlock()
	defer f.unpin()
	for _, e := range locs[:n] {
		var into []byte
		if buf != nil {
			into = buf[:0:e.Raw]
		}
		b, err := l.read(f, e.Off, e.seq, into)
		if err != nil {
			return dst, rest, e.seq, err
		}
		if buf != nil {
			buf = buf[e.Raw:]
			rest = buf
		}
		dst = append(dst, Record{Seq: e.seq, Data: b})
	}
	return dst, rest, next, nil
}

// getRangeMax is the most records one GetRange returns, and getRangeScan
// the most seqs it looks at (acknowledged ones are skipped): the lock is
// held meanwhile.
const (
	getRangeMax  = 128
	getRangeScan = 8 * getRangeMax
)

// read returns record seq, whose frame is at off of f (pinned), once its
// checksum is verified: a copy of its own, or with buf non-nil in buf's
// storage (cap(buf) is at least the record's size). A fault reading the
// mapping (an I/O error on one of its pages, or the file truncated under
// it) is an error, not the end of the process.
func (l *Log) read(f *mapped, off int64, seq uint64, buf []byte) (_ []byte, err error) {
	defer catchFault(f.Path, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fr, err := segment.DecodeFrame(f.Bytes(), off)
	if err == nil && fr.Seq != seq {
		err = &segment.Error{Offset: off, Reason: fmt.Sprintf("frame has seq %d", fr.Seq)}
	}
	if err != nil {
		return nil, l.frameError(f.Path, off, seq, err)
	}
	if buf != nil && !fr.Compressed() && !fr.Encrypted() {
		return append(buf[:0], fr.Payload...), nil // decodeRecord's would be the mapping
	}
	return decodeRecord(fr, f.Path, buf, l.sealer)
}

// readFrame decodes the frame at off of f and verifies its checksum; a
// fault reading the mapping is an error, as in read. The caller holds the
// lock or has pinned f.
func readFrame(f *mapped, off int64) (fr segment.Frame, err error) {
	defer catchFault(f.Path, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return segment.DecodeFrame(f.Bytes(), off)
}

func (l *Log) frameError(path string, off int64, seq uint64, err error) error {
	_, reason := decodeCause(err)
	return corrupt(path, off, seq, FixCut, "%s", reason).causedBy(err)
}

// decodeRecord returns the record's bytes: opened if encrypted (with sl;
// ErrKey without), decompressed into buf's storage, or a fresh copy when
// buf is nil.
func decodeRecord(fr segment.Frame, path string, buf []byte, sl *segment.Sealer) ([]byte, error) {
	if fr.Encrypted() {
		return unsealRecord(fr, path, buf, sl)
	}
	if sl != nil && sl.PlainBelow != 0 && fr.Seq >= sl.PlainBelow {
		// Written encrypted, as every record from PlainBelow on: its
		// encryption was stripped on disk.
		return nil, corrupt(path, fr.Offset, fr.Seq, FixCut,
			"record is not encrypted, though every record from seq %d on is: altered", sl.PlainBelow).causedBy(segment.ErrAuth)
	}
	if !fr.Compressed() {
		if buf == nil {
			return slices.Clone(fr.Payload), nil
		}
		return fr.Payload, nil
	}
	return decompress(fr, fr.Payload, path, buf)
}

// decompress returns fr's record, whose zstd frame is z, decompressed into
// buf's storage (fresh when too small).
func decompress(fr segment.Frame, z []byte, path string, buf []byte) ([]byte, error) {
	dec, err := zstdDecoder()
	if err != nil {
		return nil, err
	}
	// No zstd frame decodes to more than maxZstdRatio times its size: a
	// frame claiming more is damaged, and must not cost the memory it
	// claims.
	if uint64(fr.RawLen) > uint64(len(z))*maxZstdRatio {
		return nil, corrupt(path, fr.Offset, fr.Seq, FixCut, "compressed record of %d bytes claims %d bytes, more than zstd can hold", len(z), fr.RawLen)
	}
	if cap(buf) < int(fr.RawLen) {
		buf = make([]byte, 0, fr.RawLen)
	}
	// The decoder stops at the buffer's capacity (WithDecodeAllCapLimit):
	// a damaged or hostile frame that would decode to more than its raw
	// length is refused without the memory for it.
	out, err := dec.DecodeAll(z, buf[:0:fr.RawLen])
	if err != nil {
		return nil, corrupt(path, fr.Offset, fr.Seq, FixCut, "compressed record does not decode to its %d bytes: %v", fr.RawLen, err)
	}
	if len(out) != int(fr.RawLen) {
		return nil, corrupt(path, fr.Offset, fr.Seq, FixCut, "compressed record decodes to %d bytes, not its %d", len(out), fr.RawLen)
	}
	if len(out) > 0 && &out[0] == &buf[:1][0] {
		// Decoded in place: hand buf's whole storage back for the next
		// record, not just the raw length of this one.
		return buf[:len(out)], nil
	}
	return out, nil
}

// maxZstdRatio bounds what a zstd frame decodes to, per byte of it: its
// densest block, run-length, takes 4 bytes (a 3-byte header and the byte)
// for at most 128 KiB.
const maxZstdRatio = (128 << 10) / 4

var (
	decOnce sync.Once
	zdec    *zstd.Decoder
	zdecErr error
)

// zstdDecoder returns the process's shared zstd decoder. DecodeAll is safe
// for concurrent use and starts no goroutines.
func zstdDecoder() (*zstd.Decoder, error) {
	decOnce.Do(func() {
		zdec, zdecErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(4), zstd.WithDecoderMaxMemory(segment.MaxPayload),
			zstd.WithDecodeAllCapLimit(true))
	})
	return zdec, zdecErr
}

// Ack acknowledges records: they leave Pending and their space is
// reclaimed. It acknowledges every valid seq it is given and returns
// ErrNotFound if any was never written (0 included). Acknowledging an
// acknowledged seq is a no-op. An acknowledgement is durable on the same
// terms as an Append.
func (l *Log) Ack(seqs ...uint64) error {
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	// First find what is new, changing nothing: the ack frame must have
	// room before any state changes, or a failed Ack would leave seqs
	// acknowledged in memory only.
	notFound := false
	var fresh []uint64
	// held: a seq named is in a segment still here, so its ack, if not
	// new, may be one another Ack has not synced yet.
	held := false
	for _, q := range seqs {
		if q == 0 || q >= l.nextSeq {
			notFound = true
			continue
		}
		s := findSeg(l.segs, q)
		if s == nil {
			continue // in a reclaimed segment: acknowledged long ago
		}
		held = true
		if _, ok := s.locs.Lookup(q); ok && !s.acks.Has(q) {
			fresh = append(fresh, q)
		}
	}
	reclaim := false
	var at pos
	if len(fresh) > 0 {
		slices.Sort(fresh)
		fresh = slices.Compact(fresh)
		// As many frames as the decoder's limit on ranges needs, all in
		// the active segment: room for them all first.
		payloads := index.AckPayloads(fresh)
		var need int64
		for _, p := range payloads {
			need += int64(segment.FrameSize(len(p)))
		}
		if err := l.ensureRoomLocked(need); err != nil {
			l.mu.Unlock()
			return err
		}
		// The lengths come from the index: nothing is read. A frame
		// damaged since it was verified (written, or read by Open) is
		// found by the next read of it; acknowledged, it is read no more.
		for _, q := range fresh {
			s := findSeg(l.segs, q)
			loc, _ := s.locs.Find(q)
			size := segment.FrameSize(int(loc.Stored))
			s.acks.Set(q)
			s.pending--
			s.pendingBytes -= int64(loc.Raw)
			s.liveFrames -= int64(size)
			l.pending--
			l.pendingBytes -= int64(loc.Raw)
			if s.sealed && (s.pending == 0 || wasDense(s, size)) {
				reclaim = true
			}
		}
		l.ackEpoch++
		a := l.active
		for _, p := range payloads {
			a.tail += int64(segment.PutFrame(a.file.Bytes()[a.tail:], l.nextSeq-1, segment.FlagAck|frameFlags, len(p), p))
		}
		at = pos{a.id, a.tail}
	} else if held {
		// Already acknowledged, perhaps by an Ack still waiting for its
		// sync: under SyncAlways this one returns once that is done too.
		at = pos{l.active.id, l.active.tail}
	}
	debt := l.takeReclaimDebtLocked()
	l.mu.Unlock()
	if debt {
		l.reclaimNow()
	}
	if reclaim {
		l.kick(l.compactKick)
	}
	if held && l.cfg.sync.kind == syncAlways {
		if err := l.syncTo(at); err != nil {
			return err
		}
	}
	if notFound {
		return ErrNotFound
	}
	return nil
}

// Pending yields the unacknowledged records, ascending by seq, that were
// written before the call. Record.Data is valid only until the iteration
// step returns. A record that fails its checksum ends the iteration with a
// *CorruptionError; after Close it ends with ErrClosed.
func (l *Log) Pending() iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		l.mu.Lock()
		if err := l.checkLocked(); err != nil {
			l.mu.Unlock()
			yield(Record{}, err)
			return
		}
		end := l.nextSeq
		l.mu.Unlock()
		var r pendingReader
		from := uint64(1) // the lowest seq not yet considered
		for from < end {
			l.mu.Lock()
			if err := l.checkLocked(); err != nil {
				l.mu.Unlock()
				yield(Record{}, err)
				return
			}
			// The segment whose range holds from, or the first after it.
			// Going by seq, not by segment, keeps the iteration right
			// while compaction merges or replaces segments under it.
			var s *seg
			rangeEnd := end
			for i, c := range l.segs {
				next := end
				if i+1 < len(l.segs) {
					next = l.segs[i+1].firstSeq
				}
				if next > from {
					s, rangeEnd = c, next
					break
				}
			}
			if s == nil {
				l.mu.Unlock()
				return
			}
			if s.pending == 0 {
				from = rangeEnd
				l.mu.Unlock()
				continue
			}
			// Start at the first pending record's frame: the acknowledged
			// ones before it need not be read.
			start := int64(segment.HeaderSize)
			if q, ok := s.acks.NextUnacked(max(from, s.firstSeq), rangeEnd); ok {
				if off, ok := s.locs.Lookup(q); ok {
					start = off
				}
			}
			f, acks, tail := s.file, &s.view, s.tail
			var cuts []int64
			if runtime.GOMAXPROCS(0) > 1 {
				if cuts = readAheadCuts(s.locs, start, tail); len(cuts) < 2 {
					cuts = nil // one window: nothing to read ahead
				}
			}
			f.pin()
			l.mu.Unlock()
			more, err := l.pendingIn(&r, f, acks, tail, start, cuts, from, end, yield)
			f.unpin()
			if err != nil {
				yield(Record{}, err)
				return
			}
			if !more {
				return
			}
			from = rangeEnd
		}
	}
}

// readWindow is how much of a segment file Pending, and each of Open's
// scan workers, reads at a time: small enough to stay in a core's L2
// cache while its frames are hashed, and for the buffers (six on two
// cores) to cost few page faults; 1 MiB windows were no faster for 1 KiB
// records and slower for 100 B.
const readWindow = 256 << 10

// readAhead is how many goroutines at most read windows ahead of the one
// Pending yields from, on as many cores as there are besides the
// caller's: the copy out of the page cache and the checksums are most of
// Pending's work. The caller's goroutine reads windows too while the one
// it yields next is still being read.
const readAhead = 2

// aheadSlots is how many windows may be read and not yet yielded: one
// for each goroutine reading, the caller's included, and one to yield
// from.
const aheadSlots = readAhead + 2

// readAheadCuts returns where Pending's windows from off on end, in a
// segment whose data ends at tail: record frames about readWindow apart,
// so that each window holds whole frames, the last at tail. Before a gap
// of more than twice readWindow between record frames (a large record) it
// stops short of tail: Pending reads on from there without reading ahead.
func readAheadCuts(locs *index.Locations, off, tail int64) []int64 {
	var cuts []int64
	for at := off; at < tail; {
		c, ok := locs.FrameFrom(at + readWindow)
		if !ok || c >= tail {
			c = tail
		}
		if c-at > 2*readWindow {
			break
		}
		cuts = append(cuts, c)
		at = c
	}
	return cuts
}

// pendingReader is the state of one Pending iteration: the part of a
// segment file it read last and the buffer records are decoded into.
//
// Pending reads the files (pread), not their mappings: the bytes come
// from the page cache with one copy, as a buffered file's would, without
// faulting pages into the process (and releasing them again after) or
// copying each record once more out of the mapping; and an I/O error, or
// a file cut short under the log, is an error from the read rather than
// a fault. Each frame's structure is checked again, and the checksum of
// every record handed out (verified when it was written or when Open read
// it, but these are bytes read again).
type pendingReader struct {
	win  []byte // win[:n] holds the bytes of file from offset base on
	file *mapped
	base int64
	n    int
	out  []byte // decompressed or opened records
	// ahead are the windows read ahead (pendingAhead), in turn.
	ahead [aheadSlots]aheadWindow
}

// aheadWindow is a window read ahead: buf holds the bytes of a segment
// file from off on once done is closed, unless err. The goroutine that
// read it also scanned its frames, checking every checksum, and listed in
// recs where the frames of the records from seq from on begin (ack frames
// left out), up to the first frame that is damaged or runs past the
// window: stop is where that one begins, or the window's end. The one who
// yields from the window takes the records from the list, rereading only
// their headers, so that each frame is decoded once.
type aheadWindow struct {
	buf  []byte
	off  int64
	recs []uint32 // frames' offsets in buf
	stop int64
	err  error
	done chan struct{}
}

// scan lists the record frames of w.buf (see aheadWindow), verifying each.
func (w *aheadWindow) scan(from uint64) {
	sc := segment.NewScannerAt(w.buf, w.off, w.off)
	w.recs = w.recs[:0]
	for sc.Next() {
		if fr := sc.Current(); !fr.IsAck() && fr.Seq >= from {
			w.recs = append(w.recs, uint32(fr.Offset-w.off))
		}
	}
	w.stop = sc.Offset()
}

// fill reads the bytes of f from off on into the window: at least need of
// them, and up to readWindow, but never past tail.
func (r *pendingReader) fill(f *mapped, off, tail int64, need int) error {
	size := int(min(int64(max(need, readWindow)), tail-off))
	if cap(r.win) < size {
		r.win = make([]byte, size)
	}
	r.file, r.base, r.n = nil, off, 0
	if err := f.ReadAt(r.win[:size], off); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	r.file, r.n = f, size
	return nil
}

// pendingIn yields the pending records of f, a segment file whose data
// ends at tail, from seq from on and below end, reading its frames from
// offset off on; cuts are where windows from off on end (readAheadCuts),
// for reading ahead.
func (l *Log) pendingIn(r *pendingReader, f *mapped, acks *ackView, tail, off int64, cuts []int64, from, end uint64, yield func(Record, error) bool) (more bool, err error) {
	if len(cuts) > 0 {
		var done bool
		if off, done, more, err = l.pendingAhead(r, f, acks, tail, off, cuts, from, end, yield); done {
			return more, err
		}
	}
	for off < tail {
		if r.file != f || off < r.base || off >= r.base+int64(r.n) {
			if err := r.fill(f, off, tail, segment.FrameHeaderSize); err != nil {
				return false, err
			}
		}
		sc := segment.NewVerifiedScannerAt(r.win[:r.n], r.base, off)
		if stop, err := l.yieldFrames(r, f, &sc, acks, from, end, yield); stop {
			return false, err
		}
		off = sc.Offset()
		switch err := sc.Err(); {
		case err == nil:
			continue // the window ended between frames
		case err != segment.ErrPartial:
			return false, l.frameError(f.Path, off, 0, err)
		case r.base+int64(r.n) == tail:
			// Verified up to tail when it was written or opened.
			return false, corrupt(f.Path, off, 0, FixCut, "frame runs past the end of the data at offset %d", tail)
		}
		// The frame runs past the window: read on from its start, all of
		// it (need, by the length it claims, or its header).
		need := segment.FrameHeaderSize
		if h := r.win[off-r.base : r.n]; len(h) >= segment.FrameHeaderSize {
			need = segment.FrameSize(int(segment.HeaderStored(h)))
		}
		if err := r.fill(f, off, tail, need); err != nil {
			return false, err
		}
	}
	return true, nil
}

// pendingAhead is pendingIn over the windows that off and cuts bound,
// read ahead of the one it yields from (aheadQueue): by up to readAhead
// goroutines, which it joins before it returns, and by the caller's
// goroutine while the window it yields next is not read yet. Each window
// should hold whole frames (the cuts are record frames' offsets); where
// one does not, or a frame there is damaged, or the windows end before
// tail, it returns with done false and the offset to read on from as
// pendingIn does, which finds what is wrong there as it would have
// without reading ahead.
func (l *Log) pendingAhead(r *pendingReader, f *mapped, acks *ackView, tail, off int64, cuts []int64, from, end uint64, yield func(Record, error) bool) (next int64, done, more bool, err error) {
	q := &aheadQueue{r: r, f: f, from: from, bounds: append(append(make([]int64, 0, len(cuts)+1), off), cuts...)}
	windows := len(q.bounds) - 1
	q.avail.L = &q.mu
	q.limit = min(windows, len(r.ahead))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer q.stop()
	for range min(readAhead, runtime.GOMAXPROCS(0)-1, windows-1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q.readNext(true) {
			}
		}()
	}
	for i := range windows {
		w := q.await(i)
		if w.err != nil {
			return 0, true, false, fmt.Errorf("wal: %w", w.err)
		}
		if stop, err := l.yieldListed(r, f, w, acks, end, yield); stop {
			return 0, true, false, err
		}
		if w.stop != q.bounds[i+1] {
			return w.stop, false, false, nil
		}
		q.yielded(i)
	}
	if last := q.bounds[windows]; last < tail {
		return last, false, false, nil
	}
	return 0, true, true, nil
}

// aheadQueue hands out the windows of one pendingAhead to read, in order,
// no further ahead than the windows r.ahead holds past the one being
// yielded.
type aheadQueue struct {
	r      *pendingReader
	f      *mapped
	from   uint64
	bounds []int64 // window i is the bytes from bounds[i] to bounds[i+1]

	mu      sync.Mutex
	avail   sync.Cond // signalled when limit grows or the queue stops
	next    int       // the next window to read
	limit   int       // windows below limit may be read
	stopped bool
}

// readNext reads the next window, if there is one it may read now, and
// reports whether it did. If wait, it waits until there is one or none
// is left.
func (q *aheadQueue) readNext(wait bool) bool {
	q.mu.Lock()
	for wait && !q.stopped && q.next >= q.limit && q.next < len(q.bounds)-1 {
		q.avail.Wait()
	}
	if q.stopped || q.next >= q.limit {
		q.mu.Unlock()
		return false
	}
	i := q.next
	q.next++
	w := &q.r.ahead[i%len(q.r.ahead)]
	size := int(q.bounds[i+1] - q.bounds[i])
	if cap(w.buf) < size {
		w.buf = make([]byte, size)
	}
	w.buf, w.off, w.err, w.done = w.buf[:size], q.bounds[i], nil, make(chan struct{})
	q.mu.Unlock()
	defer close(w.done)
	if hook := readAheadHook.Load(); hook != nil {
		(*hook)(i)
	}
	if w.err = q.f.ReadAt(w.buf, w.off); w.err == nil {
		w.scan(q.from)
	}
	return true
}

// await returns window i once it is read, reading it, or windows after
// it, while it is not.
func (q *aheadQueue) await(i int) *aheadWindow {
	w := &q.r.ahead[i%len(q.r.ahead)]
	for {
		q.mu.Lock()
		claimed := i < q.next
		q.mu.Unlock()
		if claimed {
			select {
			case <-w.done:
				return w
			default:
			}
		}
		if !q.readNext(false) {
			<-w.done
			return w
		}
	}
}

// yielded frees window i's slot for the window that many further on.
func (q *aheadQueue) yielded(i int) {
	q.mu.Lock()
	q.limit = min(i+1+len(q.r.ahead), len(q.bounds)-1)
	q.mu.Unlock()
	q.avail.Signal()
}

// stop lets no further window be read and the goroutines waiting for one
// end.
func (q *aheadQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.avail.Broadcast()
}

// readAheadHook, if set (by tests), runs before each window pendingAhead
// reads, on the goroutine that reads it, with the window's number in the
// segment.
var readAheadHook atomic.Pointer[func(window int)]

// yieldListed yields the pending records of w's list (aheadWindow), as
// yieldFrames does; their frames were decoded and verified when w was
// read.
func (l *Log) yieldListed(r *pendingReader, f *mapped, w *aheadWindow, view *ackView, end uint64, yield func(Record, error) bool) (stop bool, err error) {
	// The bitmap's bits tested here, not by a call to Has a record; the
	// bitmap taken again when a rotation or a merge (from the consumer,
	// say) replaced it.
	acks := view.Load()
	base, n, words, dense := acks.Words()
	for _, at := range w.recs {
		h := w.buf[at:]
		seq := segment.HeaderSeq(h)
		if seq >= end {
			return true, nil
		}
		if i := seq - base; dense && i < n {
			if index.WordBit(words, i) {
				continue
			}
		} else if acks.Has(seq) {
			continue
		}
		end := segment.FrameHeaderSize + int(segment.HeaderStored(h))
		data := h[segment.FrameHeaderSize:end:end]
		// The Frame only for a record to decode: built and passed on
		// every record, the struct is a copy on the stack that stalls
		// on store forwarding.
		// With a key, a plain frame is decoded too: decodeRecord refuses
		// one where every record is encrypted. Only what it decoded into
		// r.out's storage is kept there, not a plain frame's bytes.
		flags := segment.HeaderFlags(h)
		if packed := flags&(segment.FlagZstd|segment.FlagEncrypted) != 0; packed || l.sealer != nil {
			fr := segment.Frame{Offset: w.off + int64(at), Seq: seq, Flags: flags, RawLen: segment.HeaderRawLen(h), Payload: data}
			if data, err = decodeRecord(fr, f.Path, r.out, l.sealer); err != nil {
				return true, err
			}
			if packed {
				r.out = data
			}
		}
		if !yield(Record{Seq: seq, Data: data}, nil) {
			return true, nil
		}
		if a := view.Load(); a != acks {
			acks = a
			base, n, words, dense = acks.Words()
		}
	}
	return false, nil
}

// yieldFrames yields the pending records among sc's frames, from seq from
// on, checking each one's checksum; stop reports that the iteration ends
// here: the consumer stopped, a record's seq reached end, or a record was
// damaged or could not be decoded (err).
func (l *Log) yieldFrames(r *pendingReader, f *mapped, sc *segment.Scanner, acks *ackView, from, end uint64, yield func(Record, error) bool) (stop bool, err error) {
	for sc.Next() {
		fr := sc.Current()
		if fr.IsAck() || fr.Seq < from || acks.Load().Has(fr.Seq) {
			continue
		}
		if fr.Seq >= end {
			return true, nil
		}
		// Open or the append verified it, but the bytes were read again:
		// what changed on the device or in the page cache since must not
		// be handed out.
		if err := sc.Verify(); err != nil {
			return true, l.frameError(f.Path, fr.Offset, fr.Seq, err)
		}
		data := fr.Payload
		if packed := fr.Compressed() || fr.Encrypted(); packed || l.sealer != nil { // as in yieldListed
			if data, err = decodeRecord(*fr, f.Path, r.out, l.sealer); err != nil {
				return true, err
			}
			if packed {
				r.out = data
			}
		}
		if !yield(Record{Seq: fr.Seq, Data: data}, nil) {
			return true, nil
		}
	}
	return false, nil
}

// Stats returns the log's counters. After Close it returns the last
// values.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		NextSeq:      l.nextSeq,
		Pending:      l.pending,
		PendingBytes: l.pendingBytes,
		Segments:     len(l.segs),
		DiskBytes:    l.diskBytes + l.sbBytes + l.ckptBytes + l.encBytes,
		TornBytes:    l.tornBytes,
	}
}

// Close syncs everything, writes the checkpoint, stops every goroutine
// the log started and releases the directory. It leaves nothing on disk
// that holds no live record: the prepared next segment is removed and, if
// no record of the active segment is pending, that segment is reclaimed
// behind a one-page one (see the package doc). Later calls, and calls
// concurrent with the one that does the work, return ErrClosed, once
// that one has returned: whichever Close returns, the log is closed, its
// goroutines joined and the directory free for another Open.
func (l *Log) Close() error {
	l.mu.Lock()
	select {
	case <-l.quit:
		// Closed, or another Close is at work: wait for it.
		l.mu.Unlock()
		if hook := closeWaitHook.Load(); hook != nil {
			(*hook)()
		}
		<-l.closeDone
		return ErrClosed
	default:
	}
	defer close(l.closeDone)
	// Refuse new writes and stop the background work first, so that
	// nothing races the final sync.
	l.closing = true
	close(l.quit)
	l.mu.Unlock()
	l.wg.Wait()
	// A reclaim pass an Append or Ack runs in its own goroutine
	// (reclaimNow) is not one wg waits for: wait for it here, and hold
	// the lock that serializes the passes until the log is closed, so
	// that none writes a checkpoint or removes a file once Close has
	// returned and the directory may have another owner. reclaimNow
	// starts no pass once closing is set.
	l.reclaimMu.Lock()
	defer l.reclaimMu.Unlock()
	var err error
	l.mu.Lock()
	stickyErr := l.err
	l.mu.Unlock()
	if stickyErr == nil {
		l.shrinkIdle()
		l.mu.Lock()
		at := pos{l.active.id, l.active.tail}
		l.mu.Unlock()
		err = l.syncTo(at)
		if err == nil {
			err = l.syncSuperblock()
		}
		if err == nil {
			_, err = l.writeCheckpoint()
		}
		if err == nil {
			// The zero pages faulted in ahead of the writes would have
			// the next Open read them (see segment.File.DropCache).
			l.mu.Lock()
			a := l.active
			l.mu.Unlock()
			a.file.DropCache(a.tail, a.file.Size())
		}
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.closeFiles()
	if l.zenc != nil {
		l.zenc.Close()
	}
	if l.sb != nil {
		err = errors.Join(err, l.sb.Close())
	}
	if l.ownLock {
		err = errors.Join(err, unlockDir(l.lock))
	}
	if stickyErr != nil {
		return stickyErr
	}
	return err
}

// closeWaitHook, if set (by tests), runs in a Close that found another
// at work, before it waits for that one.
var closeWaitHook atomic.Pointer[func()]

// idleSegmentSize is the size of the segment Close leaves active when no
// record of the active segment is pending: one page, enough for its
// header, which carries the next seq.
const idleSegmentSize = segment.PageSize

// shrinkIdle leaves a closing log with nothing on disk that holds no
// live record. The prepared segment goes, and if the active segment has
// no pending record it is sealed behind a one-page segment that only
// carries the next seq (so that seqs go on from there after Open), and
// reclaimed with every other fully acknowledged segment. It is the
// rotation and reclamation the log does in normal operation, in the same
// order (new segment, sync, checkpoint, removal), so it keeps their
// guarantees against a power cut. If the active segment stays, sealed
// segments with no pending record are reclaimed all the same. A failure
// leaves a log that opens as it is; one that poisons the log fails
// Close's sync. Close calls it with reclaimMu held.
func (l *Log) shrinkIdle() {
	l.mu.Lock()
	if l.prepared != nil {
		l.discardPrepared(l.prepared)
		l.prepared = nil
	}
	if a := l.active; a.pending > 0 || a.file.Size() <= idleSegmentSize {
		// The active segment stays, but sealed segments with no pending
		// record go: the compactor, stopped, may not have got to them
		// (kicked too late, or waiting to retry a failure).
		due := slices.ContainsFunc(l.segs, func(s *seg) bool { return s.sealed && s.pending == 0 })
		l.mu.Unlock()
		if due {
			if _, err := l.reclaim(); err != nil {
				l.log.Warn("wal: could not reclaim acknowledged segments on close", "err", err)
			}
		}
		return
	}
	err := l.rotateLocked(idleSegmentSize)
	l.reclaimDebt = false
	l.mu.Unlock()
	if err == nil {
		_, err = l.reclaim()
	}
	if err != nil {
		l.log.Warn("wal: could not shrink the idle log on close", "err", err)
	}
}

// closeFiles unmaps every segment not held by a reader and removes the
// prepared file.
func (l *Log) closeFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		l.retireLocked(s.file)
	}
	if l.prepared != nil {
		l.discardPrepared(l.prepared)
		l.prepared = nil
	}
}
