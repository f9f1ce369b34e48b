package wal

import (
	"bytes"
	"io/fs"
	"os"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// segCache is what the scan of a segment file found (verifySegments), as
// a view keeps it so that the next view of the log (View.Reopen) need not
// read the file again while it is unchanged. Its location map is shared
// by the views, which only read it.
type segCache struct {
	fi     fs.FileInfo
	header segment.Header
	// last: it was the last segment file, which a writer appends to; it
	// is scanned again.
	last         bool
	scan         scanResult
	acks         []ackRange // the ranges of its ack frames
	locs         *index.Locations
	lastSeq      uint64
	pending      int // as the scan counted them (countPending takes off the acknowledged)
	pendingBytes int64
	liveFrames   int64
	sealedAt     int64
	plainAt      int64
	tail         int64
	// lastHead is the header of its last record's frame (nil: it holds
	// no record), whose checksum covers the payload.
	lastHead []byte
}

// keep records what the scan of o found, with its ack frames' ranges, for
// the next view.
func (ld *loader) keep(o *opened, acks []ackRange) {
	s := o.s
	fi, err := s.file.Stat()
	if err != nil {
		return
	}
	c := &segCache{fi: fi, header: s.file.Header, last: o.isLast, scan: o.scan, acks: acks,
		locs: s.locs, lastSeq: s.lastSeq, pending: s.pending, pendingBytes: s.pendingBytes, liveFrames: s.liveFrames,
		sealedAt: s.sealedAt, plainAt: s.plainAt, tail: s.tail}
	if c.lastHead = lastFrameHead(s.file, s.locs); c.lastHead == nil && s.locs.Len() > 0 {
		return
	}
	ld.st.scans[s.id] = c
}

// reuse gives o what an earlier view's scan found of its file, if that
// can stand for a scan now, and reports whether it did (through: see
// segScan.apply). It can for a file that was not the last one then and
// is not now, that scan found sound, and that is the same file with the
// same size, modification time, status change time (Linux) and header,
// zeros still where its data ended, and its last record's frame header
// as it was: a writer appends to the last segment only and rewrites a
// segment as a new file (compaction); a repair changes a file's time and
// cuts its last records (the time may stay the same if the repair comes
// within the file system's clock tick of the earlier look: the last frame
// tells). Any other write through the file system moves the status change
// time, and so does setting the modification time back. Recovery can
// make a sealed segment the active one again, and it gets appended to:
// the zeros after its data tell. A change below the file system (a bit
// flipped on the disk) is not looked for: OpenView and Verify find it.
func (ld *loader) reuse(o *opened, through uint64) bool {
	s := o.s
	c := ld.prev[s.id]
	if c == nil || c.last || o.isLast || c.scan.damage != nil || s.file.Header != c.header {
		return false
	}
	fi, err := s.file.Stat()
	if err != nil || !os.SameFile(fi, c.fi) || fi.Size() != c.fi.Size() || !fi.ModTime().Equal(c.fi.ModTime()) || changed(c.fi, fi) {
		return false
	}
	if c.tail+segment.FrameHeaderSize <= fi.Size() {
		var b [segment.FrameHeaderSize]byte
		if s.file.ReadAt(b[:], c.tail) != nil || !segment.AllZero(b[:]) {
			return false
		}
	}
	if h := lastFrameHead(s.file, c.locs); !bytes.Equal(h, c.lastHead) {
		return false
	}
	s.locs, s.lastSeq, s.tail = c.locs, c.lastSeq, c.tail
	s.pending, s.pendingBytes, s.liveFrames = c.pending, c.pendingBytes, c.liveFrames
	s.sealedAt, s.plainAt = c.sealedAt, c.plainAt
	o.scan = c.scan
	if s.id > through {
		o.acks = c.acks
	}
	ld.st.scans[s.id] = c
	return true
}

// changed reports whether the file's status change time moved from was
// to now: it was written to, or its modification time set, since.
func changed(was, now fs.FileInfo) bool {
	w, ok1 := changeTime(was)
	n, ok2 := changeTime(now)
	return ok1 && ok2 && w != n
}

// lastFrameHead returns the header of the frame of the last record in
// locs, as f holds it now: nil if locs holds none, or it cannot be read.
func lastFrameHead(f *mapped, locs *index.Locations) []byte {
	last, ok := locs.Last()
	if !ok {
		return nil
	}
	loc, ok := locs.Find(last)
	if !ok {
		return nil
	}
	b := make([]byte, segment.FrameHeaderSize)
	if f.ReadAt(b, loc.Off) != nil {
		return nil
	}
	return b
}
