package wal

import (
	"errors"
	"fmt"
	"iter"
	"runtime/debug"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// Salvage yields every record that can still be read from the log in dir,
// damaged or not, for looking at (or copying out) what a log holds when
// Open refuses it, before Repair cuts it. It takes no lock and changes
// nothing.
//
// It reads the segment files in id order, frame by frame, and yields the
// records whose frames verify, in the order they are stored. Damage (a
// torn tail included) is yielded as a *CorruptionError naming the file and the offset where the
// unreadable bytes start, and the reading goes on at the next frame that
// verifies: an error is a report, not the end. A batch whose commit frame
// is missing is left out and reported (it was never acknowledged as
// written); one that damage interrupts is yielded where a commit frame, or
// a frame that is not the batch's, reads after the damage (the log went on
// past the batch only once it was committed). A damaged segment header is reported, and the file's frames
// are read all the same. The search for the next valid frame after damage
// does work bounded by a few times the file's size: bytes crafted to look
// like frames can make it stop, and the rest of that file is then
// reported unread.
//
// Unlike Records, Salvage checks nothing across frames and files: seqs
// may repeat (a leftover of an interrupted merge) or be missing. Acked
// says what the readable ack frames and the checkpoint, if it decodes,
// record. RecordInfo.Data is valid only until the iteration step returns.
// A segment file that cannot be read is reported (with its error) and
// skipped, and so is a segment's name on a directory, a symbolic link or
// a special file; a directory that cannot be read ends the iteration.
//
// Encrypted records are yielded without their data (RecordInfo.Data nil);
// SalvageWithKey opens them.
func Salvage(dir string) iter.Seq2[RecordInfo, error] {
	return func(yield func(RecordInfo, error) bool) {
		salvage(vfs.OS, dir, nil, yield)
	}
}

// SalvageWithKey is Salvage that opens encrypted records with key (see
// WithEncryption). A key that the log's encryption file, where it is
// intact, says is not the log's ends the iteration at once with ErrKey.
// A record that does not authenticate (altered, or encrypted under
// another key where that file is damaged or missing) is reported as
// damage, a *CorruptionError caused by ErrAuth, and the reading goes on.
func SalvageWithKey(dir string, key []byte) iter.Seq2[RecordInfo, error] {
	return func(yield func(RecordInfo, error) bool) {
		sl, err := segment.NewSealer(key)
		if err != nil {
			yield(RecordInfo{}, fmt.Errorf("wal: %w", err))
			return
		}
		salvage(vfs.OS, dir, sl, yield)
	}
}

func salvage(fsys vfs.FS, dir string, sl *segment.Sealer, yield func(RecordInfo, error) bool) {
	// Another key would make every encrypted record look damaged: where
	// the encryption file can tell, it is refused as Open refuses it. A
	// file that cannot be read or decoded tells nothing here (damage is
	// what Salvage reads through).
	if sl != nil {
		path := vfs.Join(dir, index.EncryptionName)
		if b, err := readFileUpTo(fsys, path, index.EncryptionSize+1); err == nil {
			if e, err := index.DecodeEncryption(b); err == nil {
				if !keyFits(sl, e) {
					yield(RecordInfo{}, fmt.Errorf("%w: the key check in %s does not match", ErrKey, path))
					return
				}
			}
		}
	}
	ids, err := listSegments(fsys, dir)
	if err != nil {
		yield(RecordInfo{}, err)
		return
	}
	// A segment's name on something other than a regular file (which
	// the listing leaves out) is reported, not read.
	more := true
	if err := fileTypeDamage(fsys, dir, func(ce *CorruptionError) bool {
		more = yield(RecordInfo{}, ce)
		return more
	}); err != nil {
		more = yield(RecordInfo{}, err)
	}
	if !more {
		return
	}
	// First pass: what the ack frames acknowledge, wherever they are.
	var acked []ackRange
	for _, id := range ids {
		path := vfs.Join(dir, segment.Name(id))
		// A file that cannot be read is reported by the second pass.
		_, _ = withMapped(fsys, path, func(b []byte) bool {
			return salvageFrames(path, b, func(fr segment.Frame) bool {
				if fr.IsAck() {
					// Malformed payloads acknowledge nothing; the second
					// pass reports them.
					_ = index.DecodeAckPayload(fr.Payload, func(start, n uint64) {
						acked = append(acked, ackRange{start, n})
					})
				}
				return true
			}, func(*CorruptionError) bool { return true })
		})
	}
	acked = mergeRanges(acked)
	var ckpt *index.Checkpoint
	if b, err := readFile(fsys, vfs.Join(dir, index.CheckpointName)); err == nil {
		if c, err := index.DecodeCheckpoint(b); err == nil {
			ckpt = &c
		}
	}
	isAcked := func(seq uint64) bool {
		if ckpt != nil && ckpt.Acked(seq) {
			return true
		}
		_, ok := rangeAt(acked, seq)
		return ok
	}

	// Second pass: the records.
	var buf []byte
	for _, id := range ids {
		path := vfs.Join(dir, segment.Name(id))
		more, err := withMapped(fsys, path, func(b []byte) bool {
			return salvageSegment(path, b, sl, &buf, isAcked, yield)
		})
		if err != nil {
			more = yield(RecordInfo{}, err)
		}
		if !more {
			return
		}
	}
}

// withMapped calls fn with the bytes of the file at path, mapped
// read-only (a segment may be up to 4 GiB, mostly zeros: the pages are
// read as fn reaches them, and none is copied), and returns what fn
// returned. A fault reading the mapping (the file was truncated
// meanwhile) ends fn and is returned as an error, with more true.
func withMapped(fsys vfs.FS, path string, fn func([]byte) bool) (more bool, err error) {
	f, err := segment.Map(fsys, path)
	if err != nil {
		return true, fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	more = true
	defer catchFault(path, &err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn(f.Bytes()), nil
}

// salvageSegment is Salvage's second pass over one segment file's bytes
// b; it reports whether yield always returned true.
func salvageSegment(path string, b []byte, sl *segment.Sealer, buf *[]byte, isAcked func(uint64) bool, yield func(RecordInfo, error) bool) bool {
	if ce := headerDamage(path, b); ce != nil && !yield(RecordInfo{}, ce) {
		return false
	}
	return salvageRecords(path, sl, buf, isAcked, yield, func(record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool {
		return salvageFrames(path, b, record, damage)
	})
}

// headerDamage reports a segment header at the start of b that does not
// decode, as damage Salvage reads on after (nil: the header is sound).
func headerDamage(path string, b []byte) *CorruptionError {
	_, herr := segment.DecodeHeader(b)
	if herr == nil {
		return nil
	}
	_, reason := decodeCause(herr)
	return corrupt(path, 0, 0, FixCut, "segment header: %s", reason).causedBy(herr)
}

// salvageRecords yields the records of the frames that frames calls its
// record callback with, and the damage it reports, as Salvage does: ack
// frames checked, a batch's records held until its commit frame and
// reported as damage without one. A batch that damage interrupts is held
// on: its commit frame may be in the damage, and a frame read after it
// says that the log went on past the batch, which it does only once the
// batch is committed (a batch is written whole, and only a torn tail
// lacks its commit frame); its records are then yielded. It reports
// whether yield always returned true.
func salvageRecords(path string, sl *segment.Sealer, buf *[]byte, isAcked func(uint64) bool, yield func(RecordInfo, error) bool,
	frames func(record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool) bool {
	// A batch's records wait for its commit frame.
	var batch []segment.Frame
	// held: damage came after the batch began.
	held := false
	flush := func() bool {
		frames := batch
		batch, held = nil, false
		for _, fr := range frames {
			if !salvageRecord(path, fr, sl, buf, isAcked, yield) {
				return false
			}
		}
		return true
	}
	more := frames(func(fr segment.Frame) bool {
		if held && !(fr.InBatch() && !fr.Commits()) && !flush() {
			return false
		}
		if fr.IsAck() {
			if derr := index.DecodeAckPayload(fr.Payload, func(uint64, uint64) {}); derr != nil {
				return yield(RecordInfo{}, corrupt(path, fr.Offset, 0, FixCut, "malformed ack frame"))
			}
			return true
		}
		if fr.InBatch() {
			batch = append(batch, fr)
			if !fr.Commits() {
				return true
			}
			return flush()
		}
		if !dropBatch(path, &batch, yield) {
			return false
		}
		return salvageRecord(path, fr, sl, buf, isAcked, yield)
	}, func(ce *CorruptionError) bool {
		held = held || len(batch) > 0
		return yield(RecordInfo{}, ce)
	})
	held = false
	return more && dropBatch(path, &batch, yield)
}

// salvageFrames calls record for every frame of the segment bytes b that
// verifies, and damage for every run of bytes that does not, from the
// first unreadable offset to the next frame that verifies (or the end of
// the data). It reports whether both callbacks always returned true.
func salvageFrames(path string, b []byte, record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool {
	return salvageWindow(path, b, 0, nil, record, damage)
}

// salvageWindow is salvageFrames for the bytes of a segment from offset
// base on (a multiple of segment.Align; 0: the whole file, its header
// included), with every offset the segment's. A window's frames start at
// base, and the frame it ends in is read as if zeros followed: what a
// cut moved aside leaves out the zeros it ended with (see frameWithZeros).
// work, if not nil, is the bound on the bytes hashed beyond those of b
// (the search after damage, zeros after b) that the windows of one file
// share: what this one leaves of it is stored back; nil, a bound of b's
// own (NewResync's).
func salvageWindow(path string, b []byte, base int64, work *int64, record func(segment.Frame) bool, damage func(*CorruptionError) bool) bool {
	sc := segment.NewScanner(b, segment.HeaderSize)
	if base > 0 {
		sc = segment.NewScannerAt(b, base, base)
	}
	// A whole file holds its zeros: no frame runs past its end.
	resync := segment.NewResync(b)
	if base > 0 {
		resync = segment.NewResyncAt(b, base)
	}
	if work != nil {
		resync.SetBudget(*work)
		defer func() { *work = resync.Budget() }()
	}
	// Where the search's bound on work cuts it short (bytes crafted to
	// look like frames), the rest of the file is reported unread.
	const stopped = "the search for a valid frame stopped at offset %d (too many damaged frame headers); the rest of the file is not read"
	for {
		for sc.Next() {
			if !record(sc.Frame()) {
				return false
			}
		}
		off, err := sc.Offset(), sc.Err()
		if err == nil {
			return true // the end of b
		}
		if errors.Is(err, segment.ErrPartial) {
			fr, ferr := frameWithZeros(b[off-base:], off, resync)
			switch {
			case ferr == nil:
				return record(fr)
			case errors.Is(ferr, segment.ErrEnd):
				return true
			}
			_, reason := decodeCause(ferr)
			return damage(corrupt(path, off, 0, FixCut, "%s; skipped to the end of the data", reason).causedBy(ferr))
		}
		if errors.Is(err, segment.ErrEnd) {
			// Zeros here; a frame may still follow (a zeroed stretch is
			// damage too, when something valid comes after it).
			next, sure := resync.Next(off)
			switch {
			case next < 0:
				return true
			case !sure:
				return damage(corrupt(path, off, 0, FixCut, "zeros, then "+stopped, next))
			}
			if !damage(corrupt(path, off, 0, FixCut, "%d bytes of zeros before the frame at offset %d", next-off, next)) {
				return false
			}
			sc.Resume(next)
			continue
		}
		_, reason := decodeCause(err)
		next, sure := resync.Next(off + segment.Align)
		skipped := "skipped to the end of the data"
		switch {
		case !sure:
			skipped = fmt.Sprintf(stopped, next)
		case next >= 0:
			skipped = "skipped up to the next valid frame"
		}
		if !damage(corrupt(path, off, 0, FixCut, "%s; %s", reason, skipped).causedBy(err)) {
			return false
		}
		if next < 0 || !sure {
			return true
		}
		sc.Resume(next)
	}
}

// salvageRecord yields the record in fr.
func salvageRecord(path string, fr segment.Frame, sl *segment.Sealer, buf *[]byte, isAcked func(uint64) bool, yield func(RecordInfo, error) bool) bool {
	var data []byte
	if sl != nil || !fr.Encrypted() {
		var err error
		if data, err = decodeRecord(fr, path, *buf, sl); err != nil {
			return yield(RecordInfo{}, err)
		}
		if !fr.Compressed() && !fr.Encrypted() {
			// data is in the file's read-only mapping: the caller gets
			// a copy it may change.
			data = append((*buf)[:0], data...)
		}
		*buf = data
		if data == nil {
			// An empty record, opened: nil Data is an encrypted record
			// not opened (no key).
			data = []byte{}
		}
	}
	return yield(RecordInfo{Seq: fr.Seq, Path: path, Offset: fr.Offset, Size: int(fr.RawLen),
		StoredSize: len(fr.Payload), Compressed: fr.Compressed(), Encrypted: fr.Encrypted(),
		Batch: fr.InBatch(), Acked: isAcked(fr.Seq), Data: data}, nil)
}

// dropBatch reports the records of an unfinished batch, if any, and
// forgets them.
func dropBatch(path string, batch *[]segment.Frame, yield func(RecordInfo, error) bool) bool {
	if len(*batch) == 0 {
		return true
	}
	first := (*batch)[0]
	*batch = nil
	return yield(RecordInfo{}, corrupt(path, first.Offset, first.Seq, FixCut,
		"batch without its commit frame: its records from seq %d are left out", first.Seq))
}

// maxZeroTailFrame bounds the frame frameWithZeros copies.
const maxZeroTailFrame = 64 << 20

// frameWithZeros decodes and verifies the frame at segment offset off of
// which rest holds only the start, as if zeros followed rest. A cut moves
// aside a segment's bytes up to the last non-zero one, so the last frame
// of what it moved may lack its trailing zeros: its padding, a payload
// that ends in zeros, even the end of its header. The frame is copied
// whole; one of more than maxZeroTailFrame bytes is not read, nor one
// whose zeros after rest are more than the bytes work may still hash (they
// are taken from it: a file of many pieces, each ending in a frame that
// claims to run far past it, costs no more than the bound).
func frameWithZeros(rest []byte, off int64, work *segment.Resync) (segment.Frame, error) {
	var h [segment.FrameHeaderSize]byte
	copy(h[:], rest)
	if segment.AllZero(h[:]) {
		return segment.Frame{}, segment.ErrEnd
	}
	stored := segment.HeaderStored(h[:])
	if stored > segment.MaxPayload {
		return segment.Frame{}, &segment.Error{Offset: off, Reason: fmt.Sprintf("frame length %d exceeds the largest payload", stored)}
	}
	size := segment.FrameSize(int(stored))
	if size > maxZeroTailFrame {
		return segment.Frame{}, &segment.Error{Offset: off, Reason: fmt.Sprintf("frame of %d bytes, cut short, not read (more than %d)", size, maxZeroTailFrame)}
	}
	zeros := int64(size - len(rest)) // rest is shorter: the frame runs past it
	if zeros > work.Budget() {
		return segment.Frame{}, &segment.Error{Offset: off, Reason: fmt.Sprintf("frame of %d bytes, cut short, not read (the bound on work for the file is spent)", size)}
	}
	work.SetBudget(work.Budget() - zeros)
	buf := make([]byte, size)
	copy(buf, rest)
	sc := segment.NewScannerAt(buf, off, off)
	if !sc.Next() {
		return segment.Frame{}, sc.Err()
	}
	return sc.Frame(), nil
}
