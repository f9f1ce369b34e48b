package wal

import (
	"errors"
	"fmt"

	"github.com/walpub/walpub/wal/segment"
)

var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("wal: log closed")
	// ErrFull is returned by Append when WithMaxBytes would be exceeded.
	ErrFull = errors.New("wal: log full")
	// ErrNotFound is returned for a seq never written or already
	// acknowledged.
	ErrNotFound = errors.New("wal: record not found")
	// ErrLocked is returned by Open when another Log, in this process or
	// another, holds the directory.
	ErrLocked = errors.New("wal: directory locked by another log")
	// ErrCorrupt matches every *CorruptionError with errors.Is.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrTooLarge is returned for a record or batch larger than 1 GiB.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrKey is returned by Open when the log is encrypted and no key, or
	// a different key, was given (WithEncryption); by View.SetKey for a
	// key that is not the log's; and by a read of an encrypted record
	// without a key.
	ErrKey = errors.New("wal: the log is encrypted and no key, or a different key, was given")
	// ErrAuth is the cause (errors.Is) of the *CorruptionError a read
	// returns for an encrypted record that does not authenticate: altered
	// on disk (its checksum fixed up), or sealed under another key. None
	// of its bytes are returned.
	ErrAuth = segment.ErrAuth
)

// CorruptionError reports damage on disk: which file, where, and why.
// Nothing is deleted on its account; Repair cuts the log at the damage.
type CorruptionError struct {
	Path   string // the damaged file
	Offset int64  // byte offset of the damaged frame in that file
	Seq    uint64 // the sequence number expected there, if known (0 otherwise)
	Reason string
	// Err is the cause found while decoding, if any (a *segment.Error or
	// an *index.FormatError, say); Reason already states it.
	Err error

	fix   Fix    // what Repair does about it
	aside string // with FixMoveAside: the metadata file to move aside
	// batch: with FixCut, the offset of the first frame of the batch
	// Offset is in, if it is in one (0: none).
	batch int64
}

// Fix says what Repair does about a CorruptionError (see
// CorruptionError.Fix), so that a tool can say it before it repairs.
type Fix uint8

const (
	// FixCut: cut Path at Offset, moving the rest of that segment and
	// every later segment into a side file; damage within a batch of
	// AppendBatch is cut at the batch's first frame, so that the batch's
	// frames go into one piece of the side file together.
	FixCut Fix = iota
	// FixResize: give the segment Path the size its header names: a short
	// one is extended with zeros, bytes past the end of a long one are
	// moved into a side file.
	FixResize
	// FixMoveAside: move the damaged metadata file (the superblock or the
	// checkpoint) into a side file whole; the log is then judged by its
	// segments.
	FixMoveAside
	// FixCheckpoint: the checkpoint Path is missing; write a new one from
	// the ack frames still on disk, keeping every segment.
	FixCheckpoint
	// FixByHand: Path is not damage to bytes Repair can move (a
	// directory, a symbolic link or a special file where the log keeps a
	// file): Repair refuses, changing nothing; a person moves it out of
	// the log's directory, or puts the file itself there.
	FixByHand
)

// String names the fix.
func (f Fix) String() string {
	switch f {
	case FixCut:
		return "cut"
	case FixResize:
		return "resize"
	case FixMoveAside:
		return "move aside"
	case FixCheckpoint:
		return "new checkpoint"
	case FixByHand:
		return "by hand"
	}
	return fmt.Sprintf("Fix(%d)", uint8(f))
}

// Fix returns what Repair does about e.
func (e *CorruptionError) Fix() Fix { return e.fix }

// inBatch records that the damage e reports is within the batch whose
// first frame is at offset start of the same file.
func (e *CorruptionError) inBatch(start int64) {
	if start > 0 && start < e.Offset {
		e.batch = start
	}
}

// cutOffset returns where Repair cuts for e (FixCut): at Offset, or at
// the start of the batch Offset is in. Cutting at the damage would leave
// the batch's frames before it at the end of the log without their
// commit frame, which the next round would cut into another piece (or,
// after an interrupted Repair, another side file), apart from the
// batch's commit frame that says they were written.
func (e *CorruptionError) cutOffset() int64 {
	if e.batch > 0 {
		return e.batch
	}
	return e.Offset
}

func (e *CorruptionError) Error() string {
	s := fmt.Sprintf("wal: corrupt log: %s at offset %d", e.Path, e.Offset)
	if e.Seq != 0 {
		s += fmt.Sprintf(" (seq %d)", e.Seq)
	}
	return s + ": " + e.Reason
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the cause, Err (nil if there is none).
func (e *CorruptionError) Unwrap() error { return e.Err }
