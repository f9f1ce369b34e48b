package wal

import (
	"fmt"
	"os"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// wasDense reports whether the sealed segment s just dropped below half
// live by losing a frame of n bytes: the moment it becomes worth
// compacting.
func wasDense(s *seg, n int) bool {
	half := (s.file.Size() - segment.HeaderSize) / 2
	return s.liveFrames < half && s.liveFrames+int64(n) >= half
}

// compactor reclaims acknowledged space in the background: it writes the
// checkpoint, deletes sealed segments whose records are all acknowledged
// and compacts those held by a few.
func (l *Log) compactor() {
	defer l.wg.Done()
	for {
		select {
		case <-l.quit:
			return
		case <-l.compactKick:
		}
		if err := l.reclaim(); err != nil {
			l.log.Error("wal: reclaiming space failed", "err", err)
		}
	}
}

// ackSnapshot is a sealed segment's acknowledgement state as a checkpoint
// recorded it.
type ackSnapshot struct {
	seg     *seg
	acks    *index.Acks
	pending int
	sparse  bool // less than half of the file is live: worth compacting
}

// writeCheckpoint records the acknowledgement bitmaps of every sealed
// segment in the checkpoint file (if anything changed since the last one)
// and returns the state it recorded. Reclaiming space relies only on
// that state, so that a crash never leaves a segment gone whose records
// the checkpoint on disk calls unacknowledged.
func (l *Log) writeCheckpoint() ([]ackSnapshot, error) {
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	epoch := l.ackEpoch
	// Every segment before the active one is sealed, present or
	// reclaimed, and its ack frames are in the bitmaps.
	c := index.Checkpoint{NextSeq: l.nextSeq, Through: l.active.id - 1}
	var snap []ackSnapshot
	for _, s := range l.segs {
		if !s.sealed {
			continue
		}
		a := s.acks.Clone()
		c.Segments = append(c.Segments, index.SegmentAcks{ID: s.id, Acks: a})
		sparse := s.liveFrames*2 < s.file.Size()-segment.HeaderSize
		snap = append(snap, ackSnapshot{seg: s, acks: a, pending: s.pending, sparse: sparse})
	}
	changed := epoch != l.ckptEpoch || l.ckptBytes == 0 && len(snap) > 0
	l.mu.Unlock()
	if !changed {
		return snap, nil
	}
	b := index.AppendCheckpoint(nil, c)
	path := vfs.Join(l.dir, index.CheckpointName)
	if err := l.writeFileAtomic(path, b); err != nil {
		return nil, l.fail(fmt.Errorf("wal: checkpoint: %w", err))
	}
	l.mu.Lock()
	l.ckptEpoch = epoch
	l.ckptBytes = int64(len(b))
	l.mu.Unlock()
	return snap, nil
}

// durable reports whether the sync policy asks for data on stable storage.
func (l *Log) durable() bool { return l.cfg.sync.kind != syncNever }

// writeFileAtomic writes b to path through a temporary file and a rename,
// synced unless the policy is SyncNever.
func (l *Log) writeFileAtomic(path string, b []byte) error {
	tmp := path + tmpExt
	f, err := l.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, l.cfg.fileMode)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil && l.durable() {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, path)
	}
	if err == nil && l.durable() {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.fs.Remove(tmp)
	}
	return err
}

func (l *Log) reclaim() error {
	snap, err := l.writeCheckpoint()
	if err != nil {
		return err
	}
	removed := false
	for _, sn := range snap {
		s := sn.seg
		if sn.pending == 0 {
			if err := l.removeSegment(s); err != nil {
				return err
			}
			removed = true
			continue
		}
		if sn.sparse {
			if err := l.compact(s, sn.acks); err != nil {
				return err
			}
		}
	}
	if removed && l.durable() {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("wal: sync directory: %w", err))
		}
	}
	return nil
}

func (l *Log) removeSegment(s *seg) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	for i, c := range l.segs {
		if c == s {
			l.segs = append(l.segs[:i:i], l.segs[i+1:]...)
			break
		}
	}
	l.diskBytes -= s.file.Size()
	path := s.file.Path
	l.retireLocked(s.file)
	l.mu.Unlock()
	if err := l.fs.Remove(path); err != nil {
		return l.fail(fmt.Errorf("wal: remove reclaimed segment: %w", err))
	}
	l.log.Debug("wal: removed acknowledged segment", "file", path)
	return nil
}

// compact rewrites a sealed segment with only the records snap leaves
// unacknowledged, if that at least halves its size. The new file is
// written and synced under a temporary name, then renamed over the old
// one: a crash at any point leaves one complete version of the segment.
func (l *Log) compact(s *seg, snap *index.Acks) (err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	old, tail, gen := s.file, s.tail, s.gen
	old.refs++
	l.mu.Unlock()
	defer l.release(old)
	defer catchFault(old.Path, &err)

	b := old.Bytes()[:tail]
	var need int64
	for off := int64(segment.HeaderSize); off < tail; {
		fr, err := segment.DecodeFrame(b, off)
		if err != nil {
			return l.frameError(old.Path, off, 0, err)
		}
		off = fr.End()
		if fr.Flags&segment.FlagAck == 0 && !snap.Has(fr.Seq) {
			need += int64(fr.Size())
		}
	}
	size := (segment.HeaderSize + need + 4095) &^ 4095
	if size*2 > old.Size() {
		return nil
	}
	path := vfs.Join(l.dir, segName(s.id))
	tmp := path + ".compact" + tmpExt
	nf, err := segment.Create(l.fs, tmp, size, l.cfg.fileMode)
	if err != nil {
		l.log.Warn("wal: compaction postponed", "file", path, "err", err)
		return nil
	}
	nf.Init(segment.Header{ID: s.id, FirstSeq: s.firstSeq, Generation: gen + 1, Flags: segment.SegCompacted})
	nb := nf.Bytes()
	locs := index.NewLocations(s.firstSeq)
	w := int64(segment.HeaderSize)
	var copied []uint64
	for off := int64(segment.HeaderSize); off < tail; {
		fr, _ := segment.DecodeFrame(b, off)
		n := int64(fr.Size())
		if fr.Flags&segment.FlagAck == 0 && !snap.Has(fr.Seq) {
			// Batch flags are dropped: the batch was committed long ago
			// and its survivors are records of their own now.
			segment.PutFrame(nb[w:], fr.Seq, fr.Flags&segment.FlagZstd, int(fr.RawLen), fr.Payload)
			locs.Add(fr.Seq, w)
			copied = append(copied, fr.Seq)
			w += n
		}
		off += n
	}
	if l.durable() {
		err = nf.Sync()
	}
	if err == nil {
		err = l.fs.Rename(tmp, path)
	}
	if err == nil && l.durable() {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		nf.Close()
		l.fs.Remove(tmp)
		return l.fail(fmt.Errorf("wal: compaction: %w", err))
	}
	nf.Path = path
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		nf.Close()
		return nil
	}
	s.file = &mapped{File: nf}
	s.locs = locs
	s.tail = w
	s.gen = gen + 1
	s.liveFrames = 0
	for _, q := range copied {
		if !s.acks.Has(q) {
			off, _ := locs.Lookup(q)
			fr, _ := segment.DecodeFrame(nb, off)
			s.liveFrames += int64(fr.Size())
		}
	}
	l.diskBytes += size - old.Size()
	l.retireLocked(old)
	l.log.Debug("wal: compacted segment", "file", path, "from", old.Size(), "to", size, "records", len(copied))
	return nil
}
