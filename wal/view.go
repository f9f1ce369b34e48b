package wal

import (
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// View is a read-only look at a log directory, for tools: it takes no
// lock and changes no byte, so it may look at a log another process has
// open. It is a snapshot of the moment OpenView ran. A View is not safe
// for concurrent use.
type View struct {
	dir      string
	st       *loaded
	sealer   *segment.Sealer // SetKey's: opens encrypted records
	prepared int64           // bytes of the prepared next segment files (see preparedBytes)
}

// Info summarises a log.
type Info struct {
	Dir           string
	Segments      []SegmentInfo
	NextSeq       uint64 // the seq the next Append would get
	Records       int    // records present on disk, acknowledged or not
	Pending       int    // unacknowledged records
	Acked         int    // acknowledged records still on disk
	PendingBytes  int64  // payload bytes of pending records, uncompressed
	RawBytes      int64  // payload bytes of all records present, uncompressed
	StoredBytes   int64  // payload bytes of all records present, as stored
	DiskBytes     int64  // bytes of segment and metadata files, the prepared next segment's included
	OldestPending uint64 // seq of the oldest pending record, 0 if none
	HighWater     HighWater
	TornBytes     int64 // bytes of a torn tail that Open would cut
	TornOffset    int64 // where it starts in the last segment, -1 if none
	// Encrypted: the log is encrypted (it has an encryption file, or an
	// encrypted record): Open needs its key (WithEncryption).
	Encrypted bool
	// EncryptedRecords counts the records present that are encrypted;
	// Records - EncryptedRecords are stored in plain text.
	EncryptedRecords int
	// PreparedBytes are the bytes of the next segment a writer prepared
	// ahead of rotation (allocated in full, holding no record yet),
	// counted in DiskBytes as Log.Stats counts them; 0 if none.
	PreparedBytes int64
}

// HighWater is the durable high-water mark the last sync recorded.
type HighWater struct {
	Segment uint64
	Offset  int64
	Seq     uint64
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Path       string
	ID         uint64
	FirstSeq   uint64
	LastSeq    uint64 // 0 if the segment holds no record
	Size       int64
	DataEnd    int64 // offset where the data ends
	Compacted  bool
	Generation uint64
	Records    int
	Pending    int
}

// RecordInfo is one record as stored.
type RecordInfo struct {
	Seq        uint64
	Path       string // segment file
	Offset     int64  // of the frame in that file
	Size       int    // payload bytes, uncompressed
	StoredSize int    // payload bytes as stored
	Compressed bool
	Batch      bool // written by AppendBatch with other records
	Acked      bool
	Encrypted  bool // stored encrypted (WithEncryption)
	// Data is the record's bytes, valid only until the iteration step
	// returns; nil for an encrypted record when no key was given
	// (View.SetKey, SalvageWithKey).
	Data []byte
}

// OpenView reads and verifies the log in dir like Open does (every frame
// of every segment is checked), without taking the lock or changing
// anything. Damage is a *CorruptionError, except a torn tail, which Info
// reports.
//
// A writer in another process may be in the middle of a frame when the
// view reads it, and finish it (and start the next) while the view scans
// on: what looks like damage followed by a valid frame. Damage is
// therefore looked at again a few times before it is reported; real
// damage stays. So is a segment file that the writer removed (reclaimed
// or merged) between listing the directory and opening the file. A torn
// tail is looked at again the same way: if it has become the frames that
// follow (the writer was writing them), the view is the log as it was
// before them, with no torn tail; one that stays (a writer killed in the
// middle of a frame) is reported.
func OpenView(dir string) (*View, error) { return openView(vfs.OS, dir) }

// Reopen returns a new view of the log in v's directory, as OpenView
// does, except that it reads and verifies again only the segment files
// that are new since v was opened, the last one (which a writer appends
// to) and those that changed (another file, or its size, modification
// time, status change time or header, or data past where v found it
// ended): of a file that v found sound and sealed, it takes what v found.
// A tool that looks at a live log again and again (walcat follow) so
// reads about its newest data each time, not its whole history. The key
// (SetKey) is not carried over. v may be closed already.
func (v *View) Reopen() (*View, error) { return openViewFrom(vfs.OS, v.dir, v.st.scans) }

// openView is OpenView on the file system fsys.
func openView(fsys vfs.FS, dir string) (*View, error) { return openViewFrom(fsys, dir, nil) }

// openViewFrom is openView reusing prev (see Reopen).
func openViewFrom(fsys vfs.FS, dir string, prev map[uint64]*segCache) (*View, error) {
	var st *loaded
	var err error
	lookAgain(func() bool {
		st, err = loadFrom(fsys, dir, loadRead, prev)
		return err == nil || !errors.Is(err, ErrCorrupt) && !errors.Is(err, errChanged)
	})
	if err != nil {
		return nil, err
	}
	if st.tornFrom >= 0 && len(st.dropped) == 0 {
		lookAgain(func() bool {
			if hook := tornHook.Load(); hook != nil {
				(*hook)()
			}
			if !st.tornWritten() {
				return false
			}
			// A frame the writer was writing: the view is the log as it
			// was before it.
			st.tornFrom, st.tornTo, st.tornBatch = -1, 0, false
			return true
		})
	}
	return &View{dir: dir, st: st, prepared: preparedBytes(fsys, dir)}, nil
}

// preparedBytes returns the bytes of the prepared next segment files in
// dir (see Log.preparedPath): there is one while a writer has the log
// open, and a crash may leave one, which the next Open removes.
func preparedBytes(fsys vfs.FS, dir string) int64 {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if !e.Type().IsRegular() || !isPreparedName(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil { // gone since: taken by a rotation, or discarded
			n += fi.Size()
		}
	}
	return n
}

// lookAgain calls look until it reports it is done, at most
// viewRetries+1 times, viewRetryWait apart: what a live writer is in the
// middle of changes between the looks, damage stays.
func lookAgain(look func() (done bool)) {
	for try := 0; !look() && try < viewRetries; try++ {
		time.Sleep(viewRetryWait)
	}
}

// tornHook, if set (by tests), runs each time a view looks at a torn tail
// again (see tornWritten).
var tornHook atomic.Pointer[func()]

// tornWritten reports whether the torn tail of the last segment, as load
// found it, now holds valid frames up to the last byte it held, batches
// committed, with the seqs that follow the segment's: a frame the log's
// writer was writing when the view scanned it, finished since. A tail
// that a killed writer left torn stays so.
func (st *loaded) tornWritten() (written bool) {
	s := st.segs[len(st.segs)-1]
	var err error
	defer catchFault(s.file.Path, &err) // a fault: not written
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	expect := s.firstSeq
	if s.lastSeq != 0 {
		expect = s.lastSeq + 1
	}
	inBatch := false
	for sc := segment.NewScanner(s.file.Bytes(), st.tornFrom); sc.Next(); {
		fr := sc.Frame()
		switch {
		case fr.IsAck():
			if inBatch || fr.Seq != expect-1 {
				return false
			}
		case fr.Seq != expect:
			return false
		default:
			expect++
			inBatch = fr.InBatch() && !fr.Commits()
		}
		if !inBatch && fr.End() >= st.tornTo {
			return true
		}
	}
	return false
}

// errChanged: a file of the log changed (a segment file listed was gone
// when it was opened) while a view read it, which a writer does; the
// view looks again.
var errChanged = errors.New("the log changed while it was read")

const (
	viewRetries   = 3
	viewRetryWait = 20 * time.Millisecond
)

// SetKey gives the view the log's key (see WithEncryption), so that
// Records yields encrypted records' data too. A key that is not the log's
// is ErrKey; so is a key for a log that is not encrypted.
func (v *View) SetKey(key []byte) error {
	if !v.st.encrypted() {
		return fmt.Errorf("%w: %s is not encrypted", ErrKey, v.dir)
	}
	sl, _, err := checkKey(v.st, key)
	if err != nil {
		return err
	}
	v.sealer = sl
	return nil
}

// Close unmaps the log's files.
func (v *View) Close() error {
	var err error
	for _, s := range v.st.segs {
		err = errors.Join(err, s.file.Close())
	}
	v.st.segs = nil
	return err
}

// NextSeq returns the seq the next Append would get: Info's NextSeq,
// without the reading of every record Info does.
func (v *View) NextSeq() uint64 { return v.st.nextSeq }

// Segments describes the segment files: Info's Segments, without the
// reading of every record Info does.
func (v *View) Segments() []SegmentInfo {
	var segs []SegmentInfo
	for _, s := range v.st.segs {
		segs = append(segs, SegmentInfo{Path: s.file.Path, ID: s.id, FirstSeq: s.firstSeq, LastSeq: s.lastSeq,
			Size: s.file.Size(), DataEnd: s.tail, Compacted: s.compacted(), Generation: s.gen,
			Records: s.locs.Len(), Pending: s.pending})
	}
	return segs
}

// Encrypted reports whether the log is encrypted: Info's Encrypted,
// without the reading of every record Info does.
func (v *View) Encrypted() bool { return v.st.encrypted() }

// Info returns the summary of the log. It reads every record (to count
// their bytes), verifying it as Records does.
func (v *View) Info() Info {
	st := v.st
	in := Info{Dir: v.dir, NextSeq: st.nextSeq, TornOffset: st.tornFrom,
		HighWater: HighWater{st.hwm.Segment, st.hwm.Offset, st.hwm.Seq},
		DiskBytes: st.sbBytes + st.ckptBytes + st.encBytes + v.prepared, PreparedBytes: v.prepared}
	if st.tornFrom >= 0 {
		in.TornBytes = st.tornTo - st.tornFrom
	}
	in.TornBytes += st.droppedBytes
	in.Segments = v.Segments()
	for i, si := range in.Segments {
		in.DiskBytes += si.Size
		in.Records += si.Records
		in.Pending += si.Pending
		in.PendingBytes += st.segs[i].pendingBytes
	}
	in.Acked = in.Records - in.Pending
	in.Encrypted = st.encrypted()
	for r, err := range v.records(0, 0, false, false) {
		if err != nil {
			break
		}
		if r.Encrypted {
			in.EncryptedRecords++
		}
		in.RawBytes += int64(r.Size)
		in.StoredBytes += int64(r.StoredSize)
		if !r.Acked && in.OldestPending == 0 {
			in.OldestPending = r.Seq
		}
	}
	return in
}

// Records yields every record present on disk with from <= seq <= to
// (to 0: no upper bound), acknowledged or not, ascending, with its
// payload decrypted (given the key, see SetKey; else Data is nil) and
// decompressed. It stops with an error at a record that does not decode
// (or, with the key, does not authenticate).
func (v *View) Records(from, to uint64) iter.Seq2[RecordInfo, error] {
	return v.records(from, to, true, false)
}

// RecordsOnce is Records for one pass over the log, such as a dump's: it
// unmaps each segment file once it has passed it (yielded its records, or
// found none of them wanted), so that a caller that takes its time does
// not keep the files a writer has removed since taking up the disk (a
// removed file's space is freed when its last mapping goes). The segments
// it passed are gone from the view: Info and later calls see only those
// it did not reach.
func (v *View) RecordsOnce(from, to uint64) iter.Seq2[RecordInfo, error] {
	return v.records(from, to, true, true)
}

// records is Records; without data it decodes no payload (Info's count);
// with release it is RecordsOnce.
func (v *View) records(from, to uint64, data, release bool) iter.Seq2[RecordInfo, error] {
	return func(yield func(RecordInfo, error) bool) {
		var buf []byte
		for i := 0; i < len(v.st.segs); {
			s := v.st.segs[i]
			if to != 0 && s.firstSeq > to {
				return
			}
			if s.lastSeq >= from && !v.recordsIn(s, from, to, data, &buf, yield) {
				return
			}
			if !release {
				i++
				continue
			}
			// Passed: no record yielded from s is in use any more.
			v.st.segs = v.st.segs[1:]
			if err := s.file.Close(); err != nil {
				yield(RecordInfo{}, fmt.Errorf("wal: %w", err))
				return
			}
		}
	}
}

func (v *View) recordsIn(s *seg, from, to uint64, withData bool, buf *[]byte, yield func(RecordInfo, error) bool) (more bool) {
	var err error
	defer func() {
		if err != nil {
			yield(RecordInfo{}, err)
			more = false
		}
	}()
	defer catchFault(s.file.Path, &err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	sc := segment.NewScanner(s.file.Bytes()[:s.tail], segment.HeaderSize)
	// batchAt: the first frame of the batch fr is in, or -1 (a record
	// that does not decode is cut at its batch's start: see cutOffset).
	batchAt := int64(-1)
	for sc.Next() {
		fr := sc.Frame()
		if fr.IsAck() {
			continue
		}
		at := batchAt
		if fr.InBatch() && at < 0 {
			at = fr.Offset
		}
		batchAt = at
		if !fr.InBatch() || fr.Commits() {
			batchAt = -1
		}
		if fr.Seq < from {
			continue
		}
		if to != 0 && fr.Seq > to {
			return false
		}
		var data []byte
		if withData && (v.sealer != nil || !fr.Encrypted()) {
			var derr error
			if data, derr = decodeRecord(fr, s.file.Path, *buf, v.sealer); derr != nil {
				if ce := (*CorruptionError)(nil); errors.As(derr, &ce) && at >= 0 {
					ce.inBatch(at)
				}
				err = derr
				return false
			}
			if fr.Compressed() || fr.Encrypted() {
				*buf = data
			}
			if data == nil {
				// An empty record, opened: nil Data is an encrypted
				// record not opened (no key).
				data = []byte{}
			}
		}
		r := RecordInfo{Seq: fr.Seq, Path: s.file.Path, Offset: fr.Offset, Size: int(fr.RawLen),
			StoredSize: len(fr.Payload), Compressed: fr.Compressed(), Encrypted: fr.Encrypted(),
			Batch: fr.InBatch(), Acked: s.acks.Has(fr.Seq), Data: data}
		if !yield(r, nil) {
			return false
		}
	}
	if ferr := sc.Err(); ferr != nil {
		err = fmt.Errorf("wal: %s: %w", s.file.Path, ferr)
		return false
	}
	return true
}

// Verify checks the log in dir without changing it: every checksum,
// header, sequence number, the metadata and the durable high-water mark,
// and that every compressed record decompresses (an encrypted one cannot
// be looked into without its key: its checksum is verified, not its
// authentication tag). It returns nil for a
// healthy log (a torn tail, which Open would cut, is healthy) and the
// first damage otherwise, a *CorruptionError where it is damage on disk.
func Verify(dir string) error {
	v, err := OpenView(dir)
	if err != nil {
		return err
	}
	defer v.Close()
	return v.readAll()
}

// readAll reads every record of the view (verifying it as Records does)
// and returns the first error.
func (v *View) readAll() error {
	for _, err := range v.Records(0, 0) {
		if err != nil {
			return err
		}
	}
	return nil
}
