package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/wal"
)

// promiseWait bounds how long shutdown waits for the client to report the
// records it held after it was closed. The client reports every record, so
// this is a safety net; records not reported stay in the journal.
const promiseWait = 30 * time.Second

// seqRange is an inclusive range of journal seqs.
type seqRange struct{ lo, hi uint64 }

type entryState uint8

const (
	stateQueued   entryState = iota // read from the journal, not handed to the client
	stateInFlight                   // handed to the client
	stateLeft                       // confirmed, dead-lettered or requeued
)

// entry is one journal record on its way to the broker. It is also its
// record's Context (the sender's, embedded), so that the client's promise
// finds the entry without a closure per record.
type entry struct {
	context.Context
	rec  *kgo.Record // &r, or a record that is not ours to send (dead letters)
	r    kgo.Record
	hdrs [2]kgo.RecordHeader // room for the usual headers: the _id and one more
	seq  uint64
	size int // encoded bytes, for the in-flight window
	solo bool
	// noPart counts the tries the client failed for a partition its
	// metadata does not have (badPartitionTries).
	noPart uint8
	state  entryState
	key    holdKey
	// chunk holds the record's bytes if the sender read them into one
	// (readJournal): the record is then done with (doneWith) or
	// detached before anything but the sender and the client sees it.
	chunk *chunk
	// part is the partition the client buffered the record for, -1 until
	// it did (see partHook); set on the client's goroutines.
	part atomic.Int32
}

// partHook tells each entry the partition the client buffered it for, so
// that the sender knows which records in flight share a failed record's
// partition.
type partHook struct{}

func (partHook) OnProduceRecordPartitioned(r *kgo.Record, _ int32) {
	if e, ok := r.Context.(*entry); ok {
		e.part.Store(r.Partition)
	}
}

// holdKey names what a failure holds back: a partition of a topic when the
// client is told each record's partition (kgo.ManualPartitioner), else the
// whole topic (part -1), since a record's partition is chosen only when the
// client buffers it.
type holdKey struct {
	topic string
	part  int32
}

// hold keeps the records of one holdKey back after a failure, so that the
// failed records are resent before anything newer of theirs, while other
// partitions and topics keep flowing.
type hold struct {
	q          []*entry       // to send, ascending seq: failed records, then those read since
	parts      map[int32]bool // partitions the failed records were buffered for (-1: none)
	collecting bool           // failed records' partition neighbours are still in flight
	retriable  bool           // some failure calls for a backoff
	until      time.Time      // no resend before
	solo       *entry         // sent alone and not yet reported
}

// entrySlab is how many entries the sender allocates at once: one
// allocation per entrySlab records instead of one per record. A slab stays
// in memory while any of its entries is referenced (in flight, held, or
// kept by a callback); its records are consecutive, so they mostly leave
// together.
const entrySlab = 32

// newEntry decodes a journal record into a new entry; c is the chunk
// holding data, if any, whose reference to the record the entry takes.
func (s *sender) newEntry(seq uint64, data []byte, c *chunk) (*entry, error) {
	if len(s.slab) == 0 {
		s.slab = make([]entry, entrySlab)
	}
	e := &s.slab[0]
	if _, err := decodeRecordInto(&e.r, e.hdrs[:0], data, false, &s.intern); err != nil {
		// The slot stays for the next record, zero again.
		e.r, e.hdrs = kgo.Record{}, [2]kgo.RecordHeader{}
		return nil, err
	}
	s.slab = s.slab[1:]
	e.Context, e.seq, e.size, e.chunk = s.ctx, seq, len(data), c
	e.r.Context = e
	e.rec = &e.r
	e.key = holdKey{e.r.Topic, -1}
	if s.manual {
		e.key.part = e.r.Partition
	}
	return e, nil
}

type completion struct {
	e   *entry
	err error
}

// sender is the producer's background goroutine: it reads records from the
// journal lazily, hands them to the client within a bounded window, and
// acknowledges what the broker confirmed. All its fields are owned by the
// run goroutine, except those under cmu and the entries' part.
//
// Ordering: records are handed to the client in ascending seq. When the
// client fails a record it fails every later record buffered for the same
// partition with it. A failure holds back the records of its partition
// (with kgo.ManualPartitioner, where a record's partition is known before
// the client buffers it) or else of its topic: they wait in the hold, in
// seq order, while other partitions and topics keep flowing. The hold
// collects the failed records until none of the records in flight shares
// a failed record's partition (partHook tells which do), waits out its
// backoff, then resends them in seq order before anything newer of its
// partition or topic. So per partition no record overtakes an earlier one,
// with one exception: the sender learns of a failure when it runs the
// client's report of it, which comes through the client's completion
// queue behind the confirmations queued before it (the client's hooks run
// on that queue too: there is no earlier signal). Records of the failed
// partition handed to the client until then, up to the in-flight window,
// can land before the failed ones are resent: measured, 130 records of
// 5000 with 8 failures on one partition of three. By default the client
// retries every retriable error itself, so failures it reports are errors
// no retry fixes (or a topic that stays unknown), and this takes a
// record-level error such as a too-large record to occur at all.
type sender struct {
	p   *Producer
	log *slog.Logger
	ctx context.Context // for Produce; cancelled at shutdown
	end context.CancelFunc

	runs []seqRange // records left by an earlier run, ascending
	next uint64     // the next seq written by this producer to read

	// ahead holds records read from the journal with the one the cursor
	// needed (readJournal), in aheadBuf's storage, their bytes in
	// aheadChunk if not nil; every seq from aheadFrom up to aheadTo not in
	// it was not found.
	ahead, aheadBuf    []wal.Record
	aheadFrom, aheadTo uint64
	aheadChunk         *chunk
	// chunk is the chunk records are read into, from chunkRest on (nil:
	// none, records are read as copies of their own); spareChunks are
	// chunks done with, to be reused.
	chunk       *chunk
	chunkRest   []byte
	spareChunks []*chunk
	chunks      atomic.Int64 // this sender's chunks not yet collected
	// Chunks made, spares reused, and fresh chunks wanted past chunkLimit
	// (for tests).
	chunksMade, chunksReused, chunkMisses atomic.Int64

	inflight  []*entry // handed to the client, ascending seq; done ones dropped by popLeft
	nInFlight int
	nBytes    int
	manual    bool // the client uses kgo.ManualPartitioner: holds are per partition
	holds     map[holdKey]*hold
	nHeld     int // records waiting in holds, counted in the window
	heldBytes int
	backoffs  map[holdKey]time.Duration // last backoff per key, until it delivers again
	notBefore time.Time                 // journal reads wait until then after a read error
	backoff   time.Duration             // for journal read errors
	stopping  bool                      // shutting down: failures are left in the journal

	// partitioner is the client's, to tell whether a record resent alone
	// goes to the partition of its failed attempt (soloBusy).
	partitioner kgo.Partitioner

	tx *txnState // exactly once (WithExactlyOnce); nil otherwise

	opts           []kgo.Opt // the client's, to make a new one (replaceClient)
	rebuild        bool      // the client keeps an error for good: replace it
	rebuildAt      time.Time // not before
	rebuildBackoff time.Duration

	intern   interner
	slab     []entry // entries not yet used (newEntry)
	resolved uint64  // last value published to p.resolved
	acks     []uint64
	// Records confirmed or dead-lettered whose acknowledgement is not
	// journaled yet: reported (OnDelivery, OnDeadLetter) only once it is,
	// and retried after a backoff when it failed.
	unacked    []settled
	ackRetryAt time.Time
	ackBackoff time.Duration
	dl         *wal.Log
	// dlCopies maps the journal seq of a record that bury appended to the
	// dead-letter log, but whose sync failed, to the copy's seq there: a
	// later bury of the record syncs that copy instead of appending
	// another, and its delivery, or Close with the record still journaled,
	// acknowledges the copy (dropDeadLetterCopies).
	dlCopies map[uint64]uint64

	flushes   sync.WaitGroup // Flush calls that cut the linger of solo records
	flushing  atomic.Bool    // one of them is running
	promiseFn func(*kgo.Record, error)

	cmu     sync.Mutex
	failing atomic.Bool // a failure is reported and not yet collected
	compl   []completion
	spare   []completion
	wake    chan struct{}
}

// newSender lists the records an earlier run left unconfirmed, as seq
// ranges (not their bytes: the backlog is read lazily), and sets the
// producer's watermarks.
func newSender(p *Producer) (*sender, error) {
	s := &sender{p: p, log: p.cfg.logger, wake: make(chan struct{}, 1),
		holds: make(map[holdKey]*hold), backoffs: make(map[holdKey]time.Duration)}
	for rec, err := range p.journal.Pending() {
		if err != nil {
			return nil, fmt.Errorf("kafka: reading journal: %w", err)
		}
		if n := len(s.runs); n > 0 && s.runs[n-1].hi+1 == rec.Seq {
			s.runs[n-1].hi = rec.Seq
		} else {
			s.runs = append(s.runs, seqRange{rec.Seq, rec.Seq})
		}
	}
	next := p.journal.Stats().NextSeq
	if next == 0 {
		next = 1
	}
	s.next = next
	p.published.Store(next - 1)
	p.written.Store(next - 1)
	s.resolved = s.minUnresolved()
	p.resolved.Store(s.resolved)
	s.ctx, s.end = context.WithCancel(context.Background())
	s.promiseFn = s.promise // one func value for every Produce
	return s, nil
}

func (s *sender) run() {
	defer close(s.p.done)
	defer s.end()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.complete()
		if s.tx != nil {
			s.txnStep()
		}
		s.dispatch()
		s.publishProgress(false)
		s.idleChunks()
		var tick <-chan time.Time
		if t := s.wakeAt(); !t.IsZero() {
			timer.Reset(time.Until(t))
			tick = timer.C
		}
		select {
		case <-s.wake:
		case <-s.p.kick:
		case <-tick:
		case <-s.p.stop:
			timer.Stop()
			s.shutdown()
			return
		}
		timer.Stop()
	}
}

// shutdown closes the client and collects the reports of every record it
// held: those it confirmed are acknowledged, the rest stay journaled.
func (s *sender) shutdown() {
	s.stopping = true
	s.end()
	s.flushes.Wait()
	if s.tx != nil {
		s.txnAbortOpen()
	}
	s.p.client.Close()
	deadline := time.NewTimer(promiseWait)
	defer deadline.Stop()
	for {
		s.ackRetryAt = time.Time{} // closing: no backoff for acknowledgements
		s.complete()
		if s.nInFlight == 0 {
			break
		}
		select {
		case <-s.wake:
		case <-deadline.C:
			s.log.Error("kafka: the client did not report every record after closing; they stay journaled",
				"records", s.nInFlight)
			s.publishProgress(false)
			return
		}
	}
	s.publishProgress(false)
}

// completed queues the client's report on e for the sender goroutine; it
// runs on the client's promise goroutine and must not block.
func (s *sender) completed(e *entry, err error) {
	s.cmu.Lock()
	s.compl = append(s.compl, completion{e, err})
	if err != nil {
		s.failing.Store(true)
	}
	s.cmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

type failKind int

const (
	failRetry       failKind = iota // retry after a backoff
	failAlone                       // may be caused by its batch: resend alone to tell
	failDeadLetter                  // no retry can fix it
	failNoPartition                 // its partition does not exist (yet?)
)

// badPartitionTries is how many times a record whose partition the client
// says does not exist is tried, the client's metadata refreshed between
// tries, before it is dead-lettered.
const badPartitionTries = 3

// classify decides what a failed attempt calls for. Errors that are not
// known to be permanent are retried: a record goes to the dead-letter log
// only when no retry can deliver it.
func classify(err error) failKind {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		// kgo's text for a partition its metadata does not have
		// (kgo.ManualPartitioner and a bad Record.Partition).
		if strings.Contains(err.Error(), "invalid record partitioning choice") {
			return failNoPartition
		}
		return failRetry // client closed, network, timeouts, ...
	}
	switch ke {
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.CorruptMessage, kerr.InvalidTimestamp:
		// The broker judges a whole batch: one bad record fails its
		// neighbours with the same error.
		return failAlone
	case kerr.InvalidTopicException:
		return failDeadLetter
	}
	// Everything else can change without the record changing: a refused
	// authorization too (an ACL still propagating, or granted later).
	return failRetry
}

type deadRecord struct {
	e   *entry
	err error
}

// settled is a record confirmed by the broker (err nil) or moved to the
// dead-letter log (err says why), to be acknowledged in the journal.
type settled struct {
	e   *entry
	err error
}

// complete processes what the client reported since the last call.
func (s *sender) complete() {
	s.cmu.Lock()
	batch := s.compl
	s.compl = s.spare[:0]
	s.failing.Store(false) // any failure reported so far is in batch
	s.cmu.Unlock()
	defer func() {
		clear(batch)
		s.spare = batch[:0]
	}()

	var delivered []*entry
	var dead []deadRecord
	var firstErr error
	nFailed, nTxnHeld := 0, 0
	refresh := false
	for _, c := range batch {
		e := c.e
		s.nInFlight--
		s.nBytes -= e.size
		if h := s.holds[e.key]; h != nil && h.solo == e {
			h.solo = nil
		}
		if c.err == nil && s.tx != nil {
			s.txnHold(e) // acknowledged once its transaction commits
			nTxnHeld++
			continue
		}
		if c.err == nil {
			e.state = stateLeft
			delete(s.backoffs, e.key)
			delivered = append(delivered, e)
			continue
		}
		kind := classify(c.err)
		if s.tx == nil && errors.Is(c.err, kerr.ClusterAuthorizationFailed) {
			// kgo keeps a refused producer ID for good: only a new
			// client asks again.
			s.rebuild = true
		}
		if s.tx != nil {
			s.txnFailed(c.err)
			kind = txnKind(c.err, kind)
		}
		if kind == failNoPartition {
			kind = failRetry
			if !s.stopping {
				// Counted per record: the records of a partition
				// fail together, each try.
				if e.noPart++; e.noPart >= badPartitionTries {
					kind = failDeadLetter
				} else {
					refresh = true
				}
			}
		}
		switch kind {
		case failDeadLetter:
			dead = append(dead, deadRecord{e, c.err})
			continue
		case failAlone:
			if e.solo {
				dead = append(dead, deadRecord{e, c.err})
				continue
			}
			e.solo = true
		}
		s.requeue(e, kind == failRetry)
		nFailed++
		if firstErr == nil {
			firstErr = c.err
		}
		s.log.Debug("kafka: send failed, will retry", "seq", e.seq, "topic", e.rec.Topic, "err", c.err)
	}
	if refresh {
		s.p.client.ForceMetadataRefresh()
	}
	if nFailed > 0 && !errors.Is(firstErr, kgo.ErrClientClosed) && !errors.Is(firstErr, context.Canceled) {
		s.log.Warn("kafka: send failed, will retry", "records", nFailed, "err", firstErr)
	}

	var buried []deadRecord
	if len(dead) > 0 {
		var kept []deadRecord
		buried, kept = s.bury(dead)
		for _, d := range buried {
			d.e.state = stateLeft
		}
		for _, d := range kept {
			s.requeue(d.e, true)
		}
	}
	if n := len(batch) - nTxnHeld; n > 0 {
		s.p.inFlight.Add(-int64(n))
	}
	if len(delivered) > 0 {
		s.backoff = 0
		s.dropDeadLetterCopies(delivered)
	}
	for _, e := range delivered {
		s.unacked = append(s.unacked, settled{e, nil})
	}
	for _, d := range buried {
		s.unacked = append(s.unacked, settled(d))
	}
	acked := s.journalAcks()
	s.popLeft()
	s.settleHolds()
	if s.rebuild && !s.stopping && !time.Now().Before(s.rebuildAt) {
		s.rebuild = false
		s.log.Warn("kafka: the client keeps refusing; replacing it")
		s.replaceClient()
		s.rebuildBackoff = s.step(s.rebuildBackoff)
		s.rebuildAt = time.Now().Add(jitter(s.rebuildBackoff))
	}
	if acked {
		s.publishProgress(true)
	}
}

// journalAcks acknowledges in the journal the records settled since the
// last call, and those whose acknowledgement failed before once their
// backoff is over; then it counts and reports them (OnDelivery,
// OnDeadLetter), so that a callback always finds its record acknowledged.
// After a failure they wait for the next try: a record is never reported
// before its acknowledgement is journaled. It returns whether it
// acknowledged any.
func (s *sender) journalAcks() bool {
	s.p.unacked.Store(int64(len(s.unacked)))
	if len(s.unacked) == 0 || time.Now().Before(s.ackRetryAt) {
		return false
	}
	acks := s.acks[:0]
	for _, d := range s.unacked {
		acks = append(acks, d.e.seq)
	}
	err := s.ack(acks)
	s.acks = acks[:0]
	if err != nil {
		s.ackFailed(err)
		return false
	}
	s.ackBackoff, s.ackRetryAt = 0, time.Time{}
	var nDelivered, nDead int64
	for _, d := range s.unacked {
		if d.err == nil {
			nDelivered++
		} else {
			nDead++
		}
	}
	s.p.delivered.Add(nDelivered)
	s.p.deadLettered.Add(nDead)
	s.p.unacked.Store(0)
	// Callbacks before progress is published: Flush returns after them.
	onDelivery, onDead := s.p.cfg.onDelivery, s.p.cfg.onDeadLetter
	for _, d := range s.unacked {
		d.e.rec.Context = nil // callbacks get the record, not the entry
		switch {
		case d.err == nil && onDelivery != nil:
			detach(d.e)
			onDelivery(d.e.rec)
		case d.err != nil && onDead != nil:
			detach(d.e)
			onDead(d.e.rec, d.err)
		}
		s.doneWith(d.e)
	}
	clear(s.unacked)
	s.unacked = s.unacked[:0]
	return true
}

// replaceClient closes the client and makes a new one with the same
// options: the way out of an error the client keeps for good (a refused
// producer ID). The records the old one held are reported failed, and sent
// again.
func (s *sender) replaceClient() {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		// Cannot happen: the same options made the first client.
		s.log.Error("kafka: making a new client", "err", err)
		return
	}
	old := s.p.client
	s.p.client = cl
	old.Close()
	s.flushes.Wait()
}

// ackFailed schedules the next try of the acknowledgements in s.unacked.
func (s *sender) ackFailed(err error) {
	s.ackBackoff = s.step(s.ackBackoff)
	s.ackRetryAt = time.Now().Add(jitter(s.ackBackoff))
	s.log.Error("kafka: acknowledging in the journal, will retry", "records", len(s.unacked),
		"retry_in", time.Until(s.ackRetryAt), "err", err)
}

// ack acknowledges seqs in the journal.
func (s *sender) ack(seqs []uint64) error {
	if fn := s.p.cfg.ackFault; fn != nil {
		if err := fn(); err != nil {
			return err
		}
	}
	return s.p.journal.Ack(seqs...)
}

// requeue takes a failed entry back into the hold of its partition or
// topic, which keeps back everything newer of it, and collects failures
// until the client has reported the entry's partition neighbours.
func (s *sender) requeue(e *entry, retriable bool) {
	h := s.park(e)
	h.parts[e.part.Load()] = true
	h.collecting = true
	h.retriable = h.retriable || retriable
	if !s.stopping {
		s.p.retries.Add(1)
	}
}

// park puts e in the hold of its key (opened if need be), to be sent, in
// seq order, before anything newer of its key.
func (s *sender) park(e *entry) *hold {
	e.state = stateLeft
	h := s.holds[e.key]
	if h == nil {
		h = &hold{parts: make(map[int32]bool)}
		s.holds[e.key] = h
	}
	h.insert(e)
	s.nHeld++
	s.heldBytes += e.size
	return h
}

// dropHeld forgets held entries whose seq is in done (acknowledged
// meanwhile).
func (s *sender) dropHeld(done map[uint64]bool) {
	for _, h := range s.holds {
		h.q = slices.DeleteFunc(h.q, func(e *entry) bool {
			if done[e.seq] {
				s.nHeld--
				s.heldBytes -= e.size
				return true
			}
			return false
		})
	}
}

// insert puts e in the hold's queue, in seq order.
func (h *hold) insert(e *entry) {
	i, _ := slices.BinarySearchFunc(h.q, e.seq, func(x *entry, seq uint64) int { return cmpSeq(x.seq, seq) })
	h.q = slices.Insert(h.q, i, e)
}

// settleHolds ends the collection of the holds whose failed records have
// no partition neighbour in flight any more: the client has reported every
// record it failed with them. Their backoff starts then.
func (s *sender) settleHolds() {
	now := time.Now()
	for k, h := range s.holds {
		if !h.collecting || s.busy(k, h.parts) {
			continue
		}
		h.collecting = false
		clear(h.parts)
		if h.retriable {
			h.retriable = false
			h.until = now.Add(s.nextBackoff(k))
		}
	}
}

// busy reports whether a record of key k is in flight on one of parts (or
// not yet buffered by the client, so possibly on any), or on any partition
// when parts is nil; with kgo.ManualPartitioner every record of k is on k's
// partition.
func (s *sender) busy(k holdKey, parts map[int32]bool) bool {
	for _, e := range s.inflight {
		if e.state != stateInFlight || e.key != k {
			continue
		}
		if p := e.part.Load(); s.manual || p < 0 || parts == nil || parts[p] {
			return true
		}
	}
	return false
}

// nextBackoff returns the next backoff step for key k, with jitter.
func (s *sender) nextBackoff(k holdKey) time.Duration {
	b := s.step(s.backoffs[k])
	s.backoffs[k] = b
	return jitter(b)
}

// step doubles a backoff within the configured bounds.
func (s *sender) step(b time.Duration) time.Duration {
	if b == 0 {
		return s.p.cfg.minBackoff
	}
	return min(2*b, s.p.cfg.maxBackoff)
}

// jitter spreads d by ±20%, so that producers restarted together spread out.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// delay holds journal reads back for the next backoff step.
func (s *sender) delay() {
	s.backoff = s.step(s.backoff)
	s.notBefore = time.Now().Add(jitter(s.backoff))
}

// wakeAt returns when the sender must look again without being woken (the
// end of a backoff, an open transaction falling due), or zero. Only times
// still ahead count: what is due already waits for a report, which wakes
// the sender.
func (s *sender) wakeAt() time.Time {
	now := time.Now()
	var t time.Time
	at := func(u time.Time) {
		if u.After(now) && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	at(s.notBefore)
	at(s.txnDeadline())
	if len(s.unacked) > 0 {
		at(s.ackRetryAt)
	}
	if s.rebuild {
		at(s.rebuildAt)
	}
	for _, h := range s.holds {
		if !h.collecting && h.solo == nil && len(h.q) > 0 {
			at(h.until)
		}
	}
	return t
}

// popLeft drops finished entries from the front of the in-flight queue,
// and every finished entry once they outnumber those still in flight, so
// that a record stuck in flight cannot make the queue (and the heap) grow
// with everything delivered behind it: the queue stays within about twice
// the window.
func (s *sender) popLeft() {
	i := 0
	for i < len(s.inflight) && s.inflight[i].state != stateInFlight {
		s.inflight[i] = nil
		i++
	}
	if i == len(s.inflight) {
		s.inflight = s.inflight[:0]
		return
	}
	s.inflight = s.inflight[i:]
	if len(s.inflight) > 2*s.nInFlight+64 {
		s.inflight = slices.DeleteFunc(s.inflight, func(e *entry) bool { return e.state != stateInFlight })
	}
	if cap(s.inflight) > 4*len(s.inflight)+64 {
		s.inflight = slices.Clone(s.inflight)
	}
}

// bury appends records to the dead-letter log and syncs it. It returns
// those it moved and those it could not, which the caller keeps: nothing is
// dropped.
func (s *sender) bury(dead []deadRecord) (moved, kept []deadRecord) {
	if err := s.openDeadLetter(); err != nil {
		s.log.Error("kafka: opening the dead-letter log; the records stay journaled", "records", len(dead), "err", err)
		return nil, dead
	}
	for _, d := range dead {
		if _, ok := s.dlCopies[d.e.seq]; ok {
			// Appended by an earlier bury whose sync failed: the log
			// still holds it, and the sync below covers it (a failed
			// sync of the log's files fails the log for good, so a
			// sync that succeeds later made durable everything
			// appended before it).
			moved = append(moved, d)
			continue
		}
		// A seq with the error: appended, its sync failed; the Sync
		// below decides.
		seq, err := s.dl.Append(EncodeDeadLetter(d.e.rec, d.err.Error()))
		if err != nil && seq == 0 {
			hint := ""
			if errors.Is(err, wal.ErrFull) {
				hint = "the dead-letter log is at its bound: requeue or drop its records (walcat dead-letters)"
			}
			s.log.Error("kafka: appending to the dead-letter log; the record stays journaled and is retried",
				"seq", d.e.seq, "err", err, "hint", hint)
			kept = append(kept, d)
			continue
		}
		if s.dlCopies == nil {
			s.dlCopies = make(map[uint64]uint64)
		}
		s.dlCopies[d.e.seq] = seq // until the sync below succeeds
		moved = append(moved, d)
	}
	if len(moved) == 0 {
		return nil, kept
	}
	// The dead letters must be durable before the journal forgets them.
	if err := s.syncDeadLetter(); err != nil {
		s.log.Error("kafka: syncing the dead-letter log; the records stay journaled", "err", err)
		return nil, dead
	}
	for _, d := range moved {
		delete(s.dlCopies, d.e.seq)
		r := d.e.rec
		s.log.Error("kafka: record moved to the dead-letter log",
			"seq", d.e.seq, "topic", r.Topic, "partition", r.Partition,
			"key_bytes", len(r.Key), "value_bytes", len(r.Value), "err", d.err)
	}
	return moved, kept
}

// dropDeadLetterCopies acknowledges in the dead-letter log the copies that
// moves of es whose sync failed left there: es, which stayed journaled,
// are delivered now. A copy left there would be a dead letter of a
// delivered record, which a requeue would send again. Close does the same
// for the copies of records still journaled: the next run knows nothing of
// them, and would deliver such a record and leave its copy, or move it
// again beside its copy. Losing the acknowledgement in a crash leaves the
// copy, a duplicate at worst, as before.
func (s *sender) dropDeadLetterCopies(es []*entry) {
	if len(s.dlCopies) == 0 {
		return
	}
	var copies []uint64
	for _, e := range es {
		if seq, ok := s.dlCopies[e.seq]; ok {
			copies = append(copies, seq)
			delete(s.dlCopies, e.seq)
		}
	}
	s.ackDeadLetterCopies(copies)
}

// ackDeadLetterCopies acknowledges copies, seqs of the dead-letter log
// (see dropDeadLetterCopies).
func (s *sender) ackDeadLetterCopies(copies []uint64) {
	if len(copies) == 0 {
		return
	}
	if err := s.dl.Ack(copies...); err != nil {
		s.log.Warn("kafka: acknowledging in the dead-letter log the copies of records a failed move left there; they stay dead letters, and a requeue sends them again",
			"records", len(copies), "err", err)
	}
}

// syncDeadLetter syncs the dead-letter log.
func (s *sender) syncDeadLetter() error {
	if fn := s.p.cfg.dlSyncFault; fn != nil {
		if err := fn(); err != nil {
			return err
		}
	}
	return s.dl.Sync()
}

func (s *sender) openDeadLetter() error {
	if s.dl != nil {
		return nil
	}
	dl, err := wal.Open(filepath.Join(s.p.cfg.journal, DeadLetterDir),
		deadLetterOptions(s.p.cfg.journalOptions(), s.p.cfg.deadLetterMax)...)
	if err != nil {
		return err
	}
	s.dl = dl
	return nil
}

// closeDeadLetter runs after the sender goroutine has exited.
func (s *sender) closeDeadLetter() error {
	if s.dl == nil {
		return nil
	}
	// The records of these copies stay journaled, for the next run
	// (dropDeadLetterCopies).
	s.ackDeadLetterCopies(slices.Collect(maps.Values(s.dlCopies)))
	clear(s.dlCopies)
	if err := s.dl.Close(); err != nil {
		return fmt.Errorf("kafka: closing dead-letter log: %w", err)
	}
	return nil
}

// dispatch hands records to the client: those of holds that may go, then
// new ones while the window (in flight and held) has room.
func (s *sender) dispatch() {
	if s.stopping {
		return
	}
	now := time.Now()
	for k, h := range s.holds {
		if s.failing.Load() {
			return // collect it first: the client failed its partition's buffer
		}
		s.release(k, h, now)
	}
	if !s.notBefore.IsZero() {
		if now.Before(s.notBefore) {
			return
		}
		s.notBefore = time.Time{}
	}
	cfg := &s.p.cfg
	// Records whose acknowledgement waits count too: if the journal
	// refuses acknowledgements for good, sending stops after a window.
	for s.nInFlight+s.nHeld+len(s.unacked) < cfg.maxInFlight && s.nBytes+s.heldBytes < cfg.maxInFlightLen {
		if s.failing.Load() || !s.txnOpen() {
			return
		}
		e := s.read()
		if e == nil {
			return
		}
		if h := s.holds[e.key]; h != nil {
			h.q = append(h.q, e) // newer than anything it holds
			s.nHeld++
			s.heldBytes += e.size
			continue
		}
		if s.tx != nil && !s.txnAdmit(e) {
			s.park(e)
			return
		}
		s.produce(e)
	}
}

// txnOpen reports whether records may be handed to the client: always,
// except in exactly-once mode before fencing or while a transaction ends.
func (s *sender) txnOpen() bool {
	return s.tx == nil || s.txnRoom()
}

// release hands the records of a hold to the client once its failures are
// collected and its backoff is over, oldest first; a record to be sent
// alone waits until no record it could share a batch with is in flight
// (soloBusy), and nothing follows it until it is reported. An empty hold
// ends.
func (s *sender) release(k holdKey, h *hold, now time.Time) {
	if h.collecting || h.solo != nil || now.Before(h.until) {
		return
	}
	for len(h.q) > 0 {
		e := h.q[0]
		if e.solo && s.soloBusy(k, e) {
			return
		}
		if !s.txnOpen() || s.tx != nil && !s.txnAdmit(e) {
			return
		}
		h.q[0] = nil
		h.q = h.q[1:]
		s.nHeld--
		s.heldBytes -= e.size
		s.produce(e)
		if e.solo {
			// Alone in its partition: flushing sends it without waiting
			// for the linger (one Flush at a time: it returns only when
			// everything buffered is reported, or at shutdown).
			h.solo = e
			if !s.flushing.Swap(true) {
				cl := s.p.client
				s.flushes.Go(func() {
					_ = cl.Flush(s.ctx)
					s.flushing.Store(false)
				})
			}
			return
		}
	}
	delete(s.holds, k)
}

// soloBusy reports whether a record to be resent alone could share a batch
// with a record of its key in flight. The partitioner sends it to the
// partition of its failed attempt again only if the record requires a
// consistent partition (a keyed record, by default): otherwise (a keyless
// record, whose partition the client chooses anew) it may go to any
// partition of its topic, where a newer record of the topic, handed to the
// client before the failure was collected, may still be waiting for its
// linger, and is sent alone only once no record of the topic is in flight
// (the hold keeps the newer ones back meanwhile).
func (s *sender) soloBusy(k holdKey, e *entry) bool {
	if s.manual || s.partitioner != nil && s.partitioner.ForTopic(e.rec.Topic).RequiresConsistency(e.rec) {
		return s.busy(k, map[int32]bool{e.part.Load(): true})
	}
	return s.busy(k, nil)
}

// cursor returns the next seq to read from the journal, and whether there
// is one.
func (s *sender) cursor() (uint64, bool) {
	seq, last := s.cursorRun()
	return seq, seq <= last
}

// cursorRun returns the cursor's seq and the last seq of the run it reads
// through: the earlier run's it is in, or the last this producer
// published.
func (s *sender) cursorRun() (seq, last uint64) {
	if len(s.runs) > 0 {
		return s.runs[0].lo, s.runs[0].hi
	}
	return s.next, s.p.published.Load()
}

func (s *sender) advance() {
	if len(s.runs) == 0 {
		s.next++
		return
	}
	if s.runs[0].lo == s.runs[0].hi {
		s.runs = s.runs[1:]
		if len(s.runs) == 0 {
			s.runs = nil
		}
		return
	}
	s.runs[0].lo++
}

// read returns the next record from the journal, or nil.
func (s *sender) read() *entry {
	for {
		seq, ok := s.cursor()
		if !ok {
			s.p.hand.caughtUp()
			return nil
		}
		if len(s.runs) == 0 {
			if data, ok := s.p.hand.take(seq); ok {
				if e, err := s.newEntry(seq, data, nil); err == nil {
					s.advance()
					return e
				}
				// Cannot happen (Write encoded it); the journal decides.
			}
		}
		if fn := s.p.cfg.journalRead; fn != nil {
			fn(seq)
		}
		data, c, err := s.readJournal(seq)
		if errors.Is(err, wal.ErrNotFound) {
			s.advance() // acknowledged meanwhile
			continue
		}
		if err != nil {
			s.log.Error("kafka: reading the journal, will retry", "seq", seq, "err", err)
			s.delay()
			return nil
		}
		e, err := s.newEntry(seq, data, c)
		if err != nil {
			// Not ours: keep the bytes in the dead-letter log.
			if c != nil {
				data = slices.Clone(data)
				s.unref(c)
			}
			e := &entry{seq: seq, rec: &kgo.Record{Value: data}, size: len(data)}
			moved, _ := s.bury([]deadRecord{{e, fmt.Errorf("undecodable journal record: %w", err)}})
			if len(moved) == 0 {
				s.delay() // it stays journaled; try again later
				return nil
			}
			// Acknowledged, counted and reported as every dead letter.
			s.unacked = append(s.unacked, settled(moved[0]))
			if s.journalAcks() {
				s.publishProgress(true)
			}
			s.advance()
			continue
		}
		s.advance()
		return e
	}
}

// readJournal returns record seq, the cursor's, from the journal, as
// wal.Log.Get does, and the chunk holding it (nil: the bytes are a copy of
// their own), whose reference to it passes to the caller. It reads the
// records after it in the same call (wal.Log.GetRangeInto), up to the end
// of the cursor's run or of what was published and at most readAheadBytes,
// and serves the cursor's next seqs from them: the journal's lock is taken
// twice per call, not twice per record, and the writer appending meanwhile
// waits for it less.
func (s *sender) readJournal(seq uint64) ([]byte, *chunk, error) {
	if seq < s.aheadFrom || seq >= s.aheadTo {
		_, last := s.cursorRun()
		s.dropAhead() // read and never taken: behind the cursor
		if len(s.chunkRest) < readAheadBytes {
			s.nextChunk()
		}
		recs, rest, next, err := s.p.journal.GetRangeInto(s.aheadBuf[:0], s.chunkRest, seq, last+1, readAheadBytes)
		s.aheadBuf, s.ahead, s.aheadFrom, s.aheadTo = recs, recs, seq, next
		s.aheadChunk = nil
		if len(rest) < len(s.chunkRest) {
			s.chunkRest, s.aheadChunk = rest, s.chunk
			s.chunk.refs += len(recs)
		}
		if len(recs) == 0 && (err != nil || next <= seq) {
			// Nothing read at seq: Get says why, as it did before.
			s.aheadTo = seq
			data, err := s.p.journal.Get(seq)
			return data, nil, err
		}
	}
	for len(s.ahead) > 0 && s.ahead[0].Seq < seq {
		s.ahead[0] = wal.Record{}
		s.ahead = s.ahead[1:]
		s.unref(s.aheadChunk)
	}
	if len(s.ahead) == 0 || s.ahead[0].Seq != seq {
		return nil, nil, wal.ErrNotFound // acknowledged: GetRange skipped it
	}
	data := s.ahead[0].Data
	s.ahead[0] = wal.Record{} // the sender's entry holds it from now on
	s.ahead = s.ahead[1:]
	return data, s.aheadChunk, nil
}

// dropAhead forgets the records read ahead and not taken.
func (s *sender) dropAhead() {
	for range s.ahead {
		s.unref(s.aheadChunk)
	}
	clear(s.ahead)
	s.ahead = nil
}

// readAheadBytes bounds the records one readJournal reads ahead.
const readAheadBytes = 256 << 10

// chunk is storage the sender reads journal records into
// (wal.Log.GetRangeInto), so that reading a record back allocates nothing:
// once the sender reads into a newer chunk and every record read into this
// one is done with, it is reused. A record is done with (doneWith) once the
// broker confirmed it or it went to the dead-letter log, its
// acknowledgement is journaled and its callback has returned, with a copy
// of its own (detach). A record that ends otherwise (left journaled at
// shutdown, found committed by reconcile) keeps its chunk from being
// reused; the garbage collector takes the chunk once no record refers to
// it. Only the sender goroutine touches a chunk's fields.
type chunk struct {
	buf  []byte
	refs int  // records read into it and not done with
	old  bool // the sender reads into a newer chunk
}

const chunkSize = 1 << 20

// chunkLimit bounds the sender's chunks not yet collected by the garbage
// collector (chunks), so that records held long (a partition that keeps
// failing, among others that deliver) cannot keep chunk after chunk alive
// for a record or two each: past it, records are read as copies of their
// own.
func (s *sender) chunkLimit() int64 {
	return max(4, 2*int64(s.p.cfg.maxInFlightLen)/chunkSize)
}

// nextChunk makes a fresh chunk the one records are read into: a spare,
// a new one, or none past chunkLimit.
func (s *sender) nextChunk() {
	if c := s.chunk; c != nil {
		c.old = true
		if c.refs == 0 {
			s.recycle(c)
		}
	}
	s.chunk, s.chunkRest = nil, nil
	switch n := len(s.spareChunks); {
	case n > 0:
		s.chunk = s.spareChunks[n-1]
		s.spareChunks[n-1] = nil
		s.spareChunks = s.spareChunks[:n-1]
		s.chunksReused.Add(1)
	case s.chunks.Load() < s.chunkLimit():
		s.chunk = &chunk{buf: make([]byte, chunkSize)}
		s.chunks.Add(1)
		s.chunksMade.Add(1)
		runtime.AddCleanup(s.chunk, func(n *atomic.Int64) { n.Add(-1) }, &s.chunks)
	default:
		s.chunkMisses.Add(1)
	}
	if s.chunk != nil {
		s.chunk.old = false
		s.chunkRest = s.chunk.buf
	}
}

// unref drops a reference to c, if not nil, from a record done with.
func (s *sender) unref(c *chunk) {
	if c == nil {
		return
	}
	c.refs--
	if c.refs == 0 && c.old {
		s.recycle(c)
	}
}

// recycle keeps c, which no record refers to any more, for reuse (the
// spares are at most chunkLimit: every chunk counts towards it).
func (s *sender) recycle(c *chunk) {
	s.spareChunks = append(s.spareChunks, c)
}

// idleChunks lets the garbage collector have the spare chunks, and the
// current one if no record refers to it, once the sender has nothing in
// flight, held or to read: an idle producer keeps no chunk.
func (s *sender) idleChunks() {
	if len(s.spareChunks) == 0 && s.chunk == nil || s.nInFlight+s.nHeld+len(s.unacked) > 0 || len(s.ahead) > 0 {
		return
	}
	if _, more := s.cursor(); more {
		return
	}
	clear(s.spareChunks)
	s.spareChunks = nil
	if s.chunk != nil && s.chunk.refs == 0 {
		s.chunk, s.chunkRest = nil, nil
	}
}

// doneWith drops e's reference to its chunk: e's bytes are no longer
// read, by the sender, the client or a callback.
func (s *sender) doneWith(e *entry) {
	c := e.chunk
	e.chunk = nil
	s.unref(c)
}

// detach gives e's record bytes of their own instead of its chunk's,
// before a callback, which may keep them, receives it.
func detach(e *entry) {
	if e.chunk == nil {
		return
	}
	r := e.rec
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	b := make([]byte, 0, n)
	take := func(v []byte) []byte {
		if v == nil {
			return nil
		}
		b = append(b, v...)
		return b[len(b)-len(v) : len(b) : len(b)]
	}
	r.Key, r.Value = take(r.Key), take(r.Value)
	for i := range r.Headers { // the entry's own, or the heap's (newEntry)
		r.Headers[i].Value = take(r.Headers[i].Value)
	}
}

func (s *sender) produce(e *entry) {
	e.state = stateInFlight
	e.part.Store(-1)
	s.track(e)
	s.nInFlight++
	s.nBytes += e.size
	s.p.inFlight.Add(1)
	s.p.client.Produce(s.ctx, e.rec, s.promiseFn)
}

// track adds e to the in-flight queue, which stays in ascending seq order
// (minUnresolved relies on it): at the end, unless e is a record sent
// again after newer ones went out, which goes in at its place, or stays
// there if its earlier attempt still holds it.
func (s *sender) track(e *entry) {
	if n := len(s.inflight); n == 0 || s.inflight[n-1].seq < e.seq {
		s.inflight = append(s.inflight, e)
		return
	}
	i, found := slices.BinarySearchFunc(s.inflight, e.seq, func(x *entry, q uint64) int { return cmp.Compare(x.seq, q) })
	if found && s.inflight[i] == e {
		return
	}
	s.inflight = slices.Insert(s.inflight, i, e)
}

// promise is the client's report on a record, on the client's promise
// goroutine: it must not block.
func (s *sender) promise(r *kgo.Record, err error) {
	e, ok := r.Context.(*entry)
	if !ok {
		return // not ours: cannot happen
	}
	s.completed(e, err)
}

// minUnresolved returns the lowest seq neither confirmed nor dead-lettered.
func (s *sender) minUnresolved() uint64 {
	m, _ := s.cursor()
	for _, e := range s.inflight {
		if e.state == stateInFlight {
			m = min(m, e.seq)
			break // ascending
		}
	}
	for _, h := range s.holds {
		if len(h.q) > 0 {
			m = min(m, h.q[0].seq)
		}
	}
	for _, d := range s.unacked {
		m = min(m, d.e.seq)
	}
	if h, ok := s.txnHeldMin(); ok {
		m = min(m, h)
	}
	return m
}

// publishProgress updates the producer's resolved watermark and wakes its
// waiters when it moved (or always, when acks freed journal room).
func (s *sender) publishProgress(force bool) {
	m := s.minUnresolved()
	if m != s.resolved {
		s.resolved = m
		s.p.resolved.Store(m)
		force = true
	}
	if force {
		s.p.broadcast()
	}
}
