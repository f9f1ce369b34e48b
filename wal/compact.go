package wal

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

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
// and compacts those held by a few. It retries a failed pass after
// reclaimRetry, and stops once the log has failed (see reclaimFailed).
func (l *Log) compactor() {
	defer l.wg.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-l.compactKick:
		case <-retry.C:
		}
		l.reclaimMu.Lock()
		recheck, err := l.reclaim()
		l.reclaimMu.Unlock()
		switch {
		case err != nil:
			if !l.reclaimFailed(err) {
				return
			}
			retry.Reset(reclaimRetry)
		case recheck:
			retry.Reset(stuckAfter)
		}
	}
}

// reclaimDueLocked reports whether a reclaim pass would free space now:
// a sealed segment has no pending record left, or the sealed segments
// take more than twice their live frames plus a segment and one of them
// is less than half live (see reclaim).
func (l *Log) reclaimDueLocked() bool {
	var size, live int64
	sparse := false
	for _, s := range l.segs {
		if !s.sealed {
			continue
		}
		if s.pending == 0 {
			return true
		}
		size += s.file.Size()
		live += s.liveFrames
		sparse = sparse || s.liveFrames*2 < s.file.Size()-segment.HeaderSize
	}
	return sparse && size > 2*live+l.cfg.segmentSize
}

// reclaimNow runs a reclaim pass in the caller's goroutine, if one is
// still due (the compactor may have run meanwhile). An Append or Ack that
// rotated calls it when the rotation found space to reclaim: the
// compactor reclaims in the background, and when it falls behind (each
// pass syncs, then writes the checkpoint) a writer faster than it would
// fill the disk with segments waiting for it; so the writer waits for the
// space it leaves behind, and the log stays within twice its live data
// plus a few segments at every moment, not only once the compactor has
// caught up. A failure is logged and left to the compactor's retries.
func (l *Log) reclaimNow() {
	l.reclaimMu.Lock()
	defer l.reclaimMu.Unlock()
	l.mu.Lock()
	due := !l.closing && !l.closed && l.err == nil && l.reclaimDueLocked()
	l.mu.Unlock()
	if !due {
		return
	}
	if _, err := l.reclaim(); err != nil {
		l.reclaimFailed(err)
	}
}

// reclaimFailed logs a failed reclaim pass and reports whether a later
// pass may succeed (a full disk, say, has room again): not once the log
// has failed, when every pass returns that failure, which failLocked
// has logged once already.
func (l *Log) reclaimFailed(err error) (retry bool) {
	l.mu.Lock()
	poisoned := l.err != nil
	l.mu.Unlock()
	if poisoned {
		return false
	}
	l.log.Warn("wal: reclaiming space failed; will retry", "err", err)
	return true
}

// reclaimRetry is how long the compactor waits after a failure (a full
// disk, say) before it tries again.
const reclaimRetry = 500 * time.Millisecond

// stuckAfter is how long a sparse segment's pending count must stay the
// same before it counts as stuck and is merged.
const stuckAfter = time.Second

// ackSnapshot is a sealed segment's acknowledgement state as a checkpoint
// recorded it.
type ackSnapshot struct {
	seg     *seg
	acks    *index.Acks
	pending int
	live    int64 // frame bytes of pending records
	sparse  bool  // less than half of the file is live: worth compacting
}

// writeCheckpoint records the acknowledgement bitmaps of every sealed
// segment in the checkpoint file (if anything changed since the last one)
// and returns the state it recorded. Reclaiming space relies only on
// that state, so that a crash never leaves a segment gone whose records
// the checkpoint on disk calls unacknowledged.
//
// A rotation alone calls for no checkpoint: a segment sealed with every
// record pending (and at least half of its file live) is not one reclaim
// could delete or compact, and Open reads all of it anyway, to verify its
// records. So after a rotation with no acknowledgement since the last
// checkpoint, the checkpoint on disk stays as it is (covering fewer
// segments) and only the sealed segments are synced, up to their end
// (see doSync): the active segment's pages are not written back under
// the writer. Such a segment gets into a checkpoint with the first
// acknowledgement after it, or at Close.
func (l *Log) writeCheckpoint() ([]ackSnapshot, error) {
	l.mu.Lock()
	// Not checkLocked: Close writes the last checkpoint while closing.
	if l.closed || l.err != nil {
		l.mu.Unlock()
		return nil, cmp.Or(l.err, ErrClosed)
	}
	epoch := l.ackEpoch
	// Every segment before the active one is sealed, present or
	// reclaimed, and its ack frames are in the bitmaps.
	c := index.Checkpoint{NextSeq: l.nextSeq, Through: l.active.id - 1, SealedEnd: l.active.firstSeq}
	// The data the checkpoint covers (every seq below NextSeq, the
	// active segment's header) must be durable before it is: see load.
	at := pos{l.active.id, l.active.tail}
	var snap []ackSnapshot
	// due: a sealed segment the checkpoint on disk does not cover has
	// something for a checkpoint to record: acknowledged records, or it
	// is one reclaim would delete (none pending) or compact (sparse).
	due := false
	for _, s := range l.segs {
		if !s.sealed {
			continue
		}
		a := s.acks.Clone()
		c.Segments = append(c.Segments, index.SegmentAcks{ID: s.id, Acks: a})
		sparse := s.liveFrames*2 < s.file.Size()-segment.HeaderSize
		snap = append(snap, ackSnapshot{seg: s, acks: a, pending: s.pending, live: s.liveFrames, sparse: sparse})
		if s.id > l.ckptThrough && (s.pending == 0 || s.pending < s.locs.Len() || sparse) {
			due = true
		}
	}
	changed := epoch != l.ckptEpoch || l.ckptBytes == 0 && len(snap) > 0 ||
		c.Through != l.ckptThrough && (due || l.closing)
	if !changed {
		// The segments the checkpoint on disk leaves out have every
		// record pending and are not sparse (or due would be set): reclaim
		// deletes and compacts none of them. Sync what was sealed since
		// the last sync, if anything.
		var end pos // the end of the last sealed segment, if one needs a sync
		if last := l.lastSealedLocked(); last != nil && slices.ContainsFunc(l.unsynced, func(f *mapped) bool { return !f.retired }) {
			end = pos{last.id, last.tail}
		}
		l.mu.Unlock()
		if end != (pos{}) {
			if err := l.syncTo(end); err != nil {
				return nil, err
			}
		}
		return snap, nil
	}
	l.mu.Unlock()
	if err := l.syncTo(at); err != nil {
		return nil, err
	}
	b := index.AppendCheckpoint(nil, c)
	path := vfs.Join(l.dir, index.CheckpointName)
	if renamed, err := l.writeFileAtomic(path, b); err != nil {
		err = fmt.Errorf("wal: checkpoint: %w", err)
		if renamed {
			// The new checkpoint is in place but may not be durable.
			return nil, l.fail(err)
		}
		// The old checkpoint is intact: nothing is reclaimed until a
		// later try succeeds (a full disk, say, has room again).
		return nil, err
	}
	l.mu.Lock()
	l.ckptEpoch = epoch
	l.ckptThrough = c.Through
	l.ckptBytes = int64(len(b))
	l.mu.Unlock()
	return snap, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
// The file is synced before the rename and the directory after it, under
// every sync policy: metadata must never reach the disk before what it
// describes. It reports whether the rename happened: a failure before it
// leaves the old file intact.
func (l *Log) writeFileAtomic(path string, b []byte) (renamed bool, err error) {
	tmp := path + tmpExt
	f, err := l.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, l.cfg.fileMode)
	if err != nil {
		return false, err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, path)
	}
	if err != nil {
		l.fs.Remove(tmp)
		return false, err
	}
	return true, l.fs.SyncDir(l.dir)
}

// reclaim writes the checkpoint, then deletes and merges. It reports
// whether a pass should follow soon (a sparse segment is being watched to
// see whether it is stuck).
func (l *Log) reclaim() (recheck bool, err error) {
	snap, err := l.writeCheckpoint()
	if err != nil {
		return false, err
	}
	// Merging copies live records: do it only when the sealed segments
	// would otherwise take more than about twice their live data (plus
	// a segment of slack). With acknowledgements in order, the oldest
	// segments empty and are deleted whole, and nothing is copied.
	var sealedBytes, sealedLive int64
	for _, sn := range snap {
		if sn.pending > 0 {
			sealedBytes += sn.seg.file.Size()
			sealedLive += sn.live
		}
	}
	overBound := sealedBytes > 2*sealedLive+l.cfg.segmentSize
	removed := false
	var run []ackSnapshot // adjacent sparse sealed segments to merge
	var runLive int64
	flush := func() error {
		r := run
		run, runLive = nil, 0
		if len(r) == 0 {
			return nil
		}
		return l.merge(r)
	}
	for _, sn := range snap {
		s := sn.seg
		if sn.pending == 0 {
			if err := l.removeSegment(s); err != nil {
				return false, err
			}
			removed = true
			continue // a reclaimed segment does not break a run
		}
		// A sparse segment is merged when disk use calls for it, or when
		// it is stuck: its pending count has not moved since the last
		// pass (a few records held back while the rest were
		// acknowledged). One still emptying is left to be deleted whole.
		stuck := false
		if sn.sparse {
			stuck = s.sparseSeen == sn.pending
			if !stuck {
				s.sparseSeen = sn.pending
				recheck = true
			}
		}
		take := sn.sparse && (overBound || stuck)
		if !take || runLive+sn.live > l.cfg.segmentSize ||
			len(run) > 0 && s.firstSeq+s.acks.Len()-run[0].seg.firstSeq > index.MaxSpan {
			if err := flush(); err != nil {
				return false, err
			}
		}
		if take {
			run = append(run, sn)
			runLive += sn.live
		}
	}
	if err := flush(); err != nil {
		return false, err
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return false, l.fail(fmt.Errorf("wal: sync directory: %w", err))
		}
	}
	return recheck, nil
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
	path, size := s.file.Path, s.file.Size() // before retiring: a closed file's Size is 0
	l.retireLocked(s.file)
	l.mu.Unlock()
	if err := l.fs.Remove(path); err != nil {
		// Its records are all acknowledged: a file left behind is only
		// space, and the next Open reclaims it again. It is on disk
		// until then, and counted.
		l.log.Warn("wal: could not remove a reclaimed segment", "file", path, "err", err)
		return nil
	}
	l.mu.Lock()
	l.diskBytes -= size
	l.mu.Unlock()
	l.log.Debug("wal: removed acknowledged segment", "file", path)
	return nil
}

// merge rewrites a run of adjacent sealed segments (often just one) into
// one file holding only the records the snapshot leaves unacknowledged,
// under the first segment's id, if that at least halves the space they
// take. The new file is written and synced under a temporary name (under
// every sync policy), then renamed over the first segment, and the
// directory synced; the others are removed after. Its
// header names the last id merged, so that an Open after a crash between
// the rename and the removals knows the old files for leftovers. A crash
// at any point leaves every unacknowledged record in the log exactly once.
func (l *Log) merge(run []ackSnapshot) error {
	l.mu.Lock()
	if l.closed || l.err != nil {
		l.mu.Unlock()
		return nil
	}
	m := mergeJob{srcs: make([]mergeSrc, len(run))}
	for i, sn := range run {
		m.srcs[i] = mergeSrc{sn.seg, sn.seg.file, sn.seg.tail, sn.acks}
		sn.seg.file.pin()
		m.oldSize += sn.seg.file.Size()
		m.gen = max(m.gen, sn.seg.gen)
		m.mergedThrough = max(m.mergedThrough, sn.seg.file.Header.MergedThrough, sn.seg.id)
	}
	l.mu.Unlock()
	defer func() {
		for _, sr := range m.srcs {
			sr.f.unpin()
		}
	}()
	m.first = m.srcs[0].s
	if m.mergedThrough == m.first.id {
		m.mergedThrough = 0
	}
	m.path = vfs.Join(l.dir, segment.Name(m.first.id))

	need, err := l.mergeSize(m.srcs)
	if err != nil {
		return err
	}
	m.size = segment.PageAlign(segment.HeaderSize + need)
	if len(m.srcs) == 1 && m.size*2 > m.oldSize {
		return nil
	}
	nf, err := l.writeMerged(&m)
	if nf == nil {
		return err
	}
	return l.installMerged(&m, nf)
}

// mergeSrc is one segment of a merge's run, pinned, with the snapshot
// of its acknowledgements the merge leaves out.
type mergeSrc struct {
	s    *seg
	f    *mapped
	tail int64
	snap *index.Acks
}

// mergeJob is what merge knows of the run and of the file it writes.
type mergeJob struct {
	srcs          []mergeSrc
	first         *seg
	oldSize       int64  // the run's files' sizes
	gen           uint64 // the highest generation in the run
	mergedThrough uint64 // the new header's merged through
	path          string // the first segment's path: the new file's name
	size          int64  // the new file's size

	// Filled by writeMerged.
	locs   *index.Locations
	tail   int64    // the end of the new file's data
	copied []uint64 // the seqs copied, ascending
}

// mergeSize returns the bytes the frames of the run's unacknowledged
// records take, verifying every frame of the run.
func (l *Log) mergeSize(srcs []mergeSrc) (need int64, err error) {
	for _, sr := range srcs {
		ferr := func() (err error) {
			defer catchFault(sr.f.Path, &err)
			sc := segment.NewScanner(sr.f.Bytes()[:sr.tail], segment.HeaderSize)
			for sc.Next() {
				if fr := sc.Frame(); !fr.IsAck() && !sr.snap.Has(fr.Seq) {
					need += int64(fr.Size())
				}
			}
			if err := sc.Err(); err != nil {
				return l.frameError(sr.f.Path, sc.Offset(), 0, err)
			}
			return nil
		}()
		if ferr != nil {
			return 0, ferr
		}
	}
	return need, nil
}

// writeMerged writes the merged file under a temporary name, syncs it and
// renames it over the first segment of the run. It returns nil (and no
// error) if that failed with the old segments intact: compaction is tried
// again later.
func (l *Log) writeMerged(m *mergeJob) (*segment.File, error) {
	tmp := m.path + ".compact" + tmpExt
	nf, err := segment.Create(l.fs, tmp, m.size, l.cfg.fileMode)
	if errors.Is(err, fs.ErrExist) {
		// The copy of an earlier pass whose removal failed (see below):
		// it holds nothing the log needs. Left there, it would postpone
		// this merge at every pass until Open removed it.
		if err = l.fs.Remove(tmp); err == nil {
			nf, err = segment.Create(l.fs, tmp, m.size, l.cfg.fileMode)
		}
	}
	if err != nil {
		l.log.Warn("wal: compaction postponed", "file", m.path, "err", err)
		return nil, nil
	}
	nf.Init(segment.Header{ID: m.first.id, FirstSeq: m.first.firstSeq, Generation: m.gen + 1,
		Flags: segment.SegCompacted, MergedThrough: m.mergedThrough})
	nb := nf.Bytes()
	m.locs = index.NewLocations(m.first.firstSeq)
	w := int64(segment.HeaderSize)
	for _, sr := range m.srcs {
		// Every frame verified when the new file was sized.
		for sc := segment.NewScanner(sr.f.Bytes()[:sr.tail], segment.HeaderSize); sc.Next(); {
			if fr := sc.Frame(); !fr.IsAck() && !sr.snap.Has(fr.Seq) {
				// Batch flags are dropped: the batch was committed long
				// ago and its survivors are records of their own now. An
				// encrypted payload is copied as it is, nonce and tag
				// included: its associated data holds none of what this
				// changes (see segment.Sealer), and no nonce is used anew.
				segment.PutFrame(nb[w:], fr.Seq, fr.Flags&(segment.FlagZstd|segment.FlagEncrypted)|frameFlags, int(fr.RawLen), fr.Payload)
				m.locs.Add(fr.Seq, index.Loc{Off: w, Stored: uint32(len(fr.Payload)), Raw: fr.RawLen})
				m.copied = append(m.copied, fr.Seq)
				w += int64(fr.Size())
			}
		}
	}
	m.tail = w
	// The copy is synced before it replaces the original, under every
	// sync policy: renamed unsynced, a power cut could leave the name
	// with none of the data.
	err = nf.SyncAsleep()
	if err == nil {
		err = l.fs.Rename(tmp, m.path)
	}
	if err != nil {
		// The old segments are intact; compaction is tried again later.
		nf.Close()
		l.fs.Remove(tmp)
		l.log.Warn("wal: compaction postponed", "file", m.path, "err", err)
		return nil, nil
	}
	nf.Path = m.path
	if err := l.fs.SyncDir(l.dir); err != nil {
		nf.Close()
		return nil, l.fail(fmt.Errorf("wal: compaction: %w", err))
	}
	return nf, nil
}

// installMerged puts the merged file nf in the place of the run's
// segments and removes the others of the run.
func (l *Log) installMerged(m *mergeJob, nf *segment.File) error {
	first, srcs := m.first, m.srcs
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		nf.Close()
		return nil
	}
	// The merged segment's range runs to the segment after the run; seqs
	// between the run's segments belong to reclaimed ones.
	at := -1
	for i, c := range l.segs {
		if c == first {
			at = i
		}
	}
	last := at + len(srcs) - 1
	if at < 0 || last+1 >= len(l.segs) || l.segs[last] != srcs[len(srcs)-1].s {
		l.mu.Unlock()
		nf.Close()
		return l.fail(fmt.Errorf("wal: compaction: segments changed under the compactor"))
	}
	// The merged range ends where the last member's did: seqs after it
	// belong to reclaimed segments.
	var end uint64
	for _, o := range l.segs[at : last+1] {
		end = max(end, o.firstSeq+o.acks.Len())
	}
	// Only the records copied may be unacknowledged: every other seq of
	// the range was acknowledged (the snapshot's, or a reclaimed
	// segment's). The bitmap is built from them alone, sparse when the
	// range is much larger, so that neither time nor memory grows with
	// the span.
	ns := &seg{id: first.id, firstSeq: first.firstSeq, file: newMapped(nf), locs: m.locs, tail: m.tail,
		sealed: true, gen: m.gen + 1}
	ns.setAcks(index.NewAcksOf(first.firstSeq, end-first.firstSeq, m.copied))
	members := l.segs[at : last+1]
	for _, q := range m.copied {
		for len(members) > 1 && !members[0].acks.Covers(q) {
			members = members[1:]
		}
		if members[0].acks.Has(q) {
			// Acknowledged since the snapshot.
			ns.acks.Set(q)
			continue
		}
		loc, _ := m.locs.Find(q)
		ns.pending++
		ns.pendingBytes += int64(loc.Raw)
		ns.liveFrames += int64(segment.FrameSize(int(loc.Stored)))
	}
	type other struct {
		path string
		size int64
	}
	var others []other
	firstSize := first.file.Size()
	for _, sr := range srcs {
		if sr.s != first {
			others = append(others, other{sr.f.Path, sr.f.Size()})
		}
		l.retireLocked(sr.f)
	}
	// A Pending reading a member's file goes on with the merged bitmap,
	// which answers for every seq of the members' ranges: acknowledged,
	// unless copied and not acknowledged since. Linked rather than set:
	// a member may itself be the merged copy of segments a Pending is
	// still reading, whose views lead to it, and a later merge of the
	// merged segment must reach them too.
	for _, o := range l.segs[at : last+1] {
		o.view.merged.Store(&ns.view)
	}
	l.segs = append(l.segs[:at:at], append([]*seg{ns}, l.segs[last+1:]...)...)
	// The first segment's file is replaced; the others are counted until
	// they are removed.
	l.diskBytes += m.size - firstSize
	l.mu.Unlock()

	for _, o := range others {
		if err := l.fs.Remove(o.path); err != nil {
			l.log.Warn("wal: could not remove a merged segment; the next Open will", "file", o.path, "err", err)
			continue
		}
		l.mu.Lock()
		l.diskBytes -= o.size
		l.mu.Unlock()
	}
	if len(others) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("wal: compaction: %w", err))
		}
	}
	l.log.Debug("wal: compacted", "file", m.path, "segments", len(srcs), "from", m.oldSize, "to", m.size, "records", len(m.copied))
	return nil
}
