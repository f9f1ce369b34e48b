package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
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
	rec   *kgo.Record // &r, or a record that is not ours to send (dead letters)
	r     kgo.Record
	hdrs  [2]kgo.RecordHeader // room for the usual headers: the _id and one more
	seq   uint64
	size  int // encoded bytes, for the in-flight window
	solo  bool
	state entryState
}

// newEntry decodes a journal record into a new entry.
func (s *sender) newEntry(seq uint64, data []byte) (*entry, error) {
	e := &entry{Context: s.ctx, seq: seq, size: len(data)}
	if _, err := decodeRecordInto(&e.r, e.hdrs[:0], data, false, &s.intern); err != nil {
		return nil, err
	}
	e.r.Context = e
	e.rec = &e.r
	return e, nil
}

type completion struct {
	e   *entry
	err error
}

// sender is the producer's background goroutine: it reads records from the
// journal lazily, hands them to the client within a bounded window, and
// acknowledges what the broker confirmed. All its fields are owned by the
// run goroutine, except those under cmu.
//
// Ordering: records are handed to the client in ascending seq. When the
// client fails a record it fails every later record buffered for the same
// partition with it. As soon as a failure is reported the sender stops
// handing out records, waits until everything in flight has been reported,
// then resends the failed records in seq order before anything newer. So
// per partition no record overtakes an earlier one, with one exception: a
// record handed to the client in the moment between the client failing a
// partition's records and reporting it (microseconds, one Produce call at
// most) can land before them. By default the client retries every
// retriable error itself, so failures it reports are errors no retry fixes
// (or a topic that stays unknown), and this takes a record-level error such
// as a too-large record to occur at all.
type sender struct {
	p   *Producer
	log *slog.Logger
	ctx context.Context // for Produce; cancelled at shutdown
	end context.CancelFunc

	runs []seqRange // records left by an earlier run, ascending
	next uint64     // the next seq written by this producer to read

	inflight  []*entry // handed to the client, ascending seq; done ones dropped by popLeft
	nInFlight int
	nBytes    int
	solo      bool     // a solo entry is in flight: nothing else may be
	paused    bool     // a failure is being collected: hand out nothing
	failed    []*entry // requeued during the pause
	retry     []*entry // to resend before anything newer, ascending seq
	notBefore time.Time
	backoff   time.Duration
	retriable bool // some failure of the pause calls for a backoff
	stopping  bool // shutting down: failures are left in the journal

	tx *txnState // exactly once (WithExactlyOnce); nil otherwise

	intern   interner
	resolved uint64 // last value published to p.resolved
	acks     []uint64
	dl       *wal.Log

	flushes   sync.WaitGroup // Flush calls that cut the linger of solo records
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
	s := &sender{p: p, log: p.cfg.logger, wake: make(chan struct{}, 1)}
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
		var tick <-chan time.Time
		d := time.Until(s.txnDeadline()) // > 0 only for an open transaction not yet due
		if !s.notBefore.IsZero() && !s.paused {
			if nb := time.Until(s.notBefore); nb > 0 && (d <= 0 || nb < d) {
				d = nb
			}
		}
		if d > 0 {
			timer.Reset(d)
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
	s.p.client.Close()
	deadline := time.NewTimer(promiseWait)
	defer deadline.Stop()
	for {
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
	failRetry      failKind = iota // retry after a backoff
	failAlone                      // may be caused by its batch: resend alone to tell
	failDeadLetter                 // no retry can fix it
)

// classify decides what a failed attempt calls for. Errors that are not
// known to be permanent are retried: a record goes to the dead-letter log
// only when no retry can deliver it.
func classify(err error) failKind {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return failRetry // client closed, network, timeouts, ...
	}
	switch ke {
	case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.CorruptMessage, kerr.InvalidTimestamp:
		// The broker judges a whole batch: one bad record fails its
		// neighbours with the same error.
		return failAlone
	case kerr.InvalidTopicException, kerr.TopicAuthorizationFailed,
		kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed:
		return failDeadLetter
	}
	return failRetry
}

type deadRecord struct {
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

	acks := s.acks[:0]
	var delivered []*kgo.Record
	var dead []deadRecord
	var firstErr error
	nFailed, nHeld := 0, 0
	for _, c := range batch {
		e := c.e
		s.nInFlight--
		s.nBytes -= e.size
		if e.solo {
			s.solo = false
		}
		if c.err == nil && s.tx != nil {
			s.txnHold(e) // acknowledged once its transaction commits
			nHeld++
			continue
		}
		if c.err == nil {
			e.state = stateLeft
			acks = append(acks, e.seq)
			e.rec.Context = nil // callbacks get the record, not the entry
			delivered = append(delivered, e.rec)
			continue
		}
		kind := classify(c.err)
		if s.tx != nil {
			s.txnFailed(c.err)
			kind = txnKind(c.err, kind)
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
		case failRetry:
			s.retriable = true
		}
		s.requeue(e)
		nFailed++
		if firstErr == nil {
			firstErr = c.err
		}
		s.log.Debug("kafka: send failed, will retry", "seq", e.seq, "topic", e.rec.Topic, "err", c.err)
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
			acks = append(acks, d.e.seq)
		}
		for _, d := range kept {
			s.retriable = true
			s.requeue(d.e)
		}
	}
	if len(acks) > 0 {
		if err := s.p.journal.Ack(acks...); err != nil {
			// Delivered all the same; a restart may resend them.
			s.log.Error("kafka: acknowledging in the journal", "records", len(acks), "err", err)
		}
	}
	s.acks = acks[:0]
	if n := len(batch) - nHeld; n > 0 {
		s.p.inFlight.Add(-int64(n))
	}
	if len(delivered) > 0 {
		s.backoff = 0
		s.p.delivered.Add(int64(len(delivered)))
	}
	s.p.deadLettered.Add(int64(len(buried)))
	// Callbacks before progress is published: Flush returns after them.
	if fn := s.p.cfg.onDelivery; fn != nil {
		for _, r := range delivered {
			fn(r)
		}
	}
	if fn := s.p.cfg.onDeadLetter; fn != nil {
		for _, d := range buried {
			d.e.rec.Context = nil
			fn(d.e.rec, d.err)
		}
	}
	s.popLeft()
	if s.paused && s.nInFlight == 0 {
		s.resume()
	}
	if len(acks) > 0 || len(buried) > 0 {
		s.publishProgress(true)
	}
}

// requeue takes a failed entry back; nothing is handed out until every
// entry in flight has been reported.
func (s *sender) requeue(e *entry) {
	e.state = stateLeft
	s.failed = append(s.failed, e)
	s.paused = true
	if !s.stopping {
		s.p.retries.Add(1)
	}
}

// resume ends a pause: the failed entries go back in seq order ahead of
// everything not yet sent.
func (s *sender) resume() {
	s.paused = false
	if len(s.failed) == 0 {
		return
	}
	for _, e := range s.failed {
		e.state = stateQueued
	}
	s.retry = append(s.retry, s.failed...)
	slices.SortFunc(s.retry, func(a, b *entry) int { return cmpSeq(a.seq, b.seq) })
	clear(s.failed)
	s.failed = s.failed[:0]
	if s.retriable {
		s.retriable = false
		s.delay()
	}
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

// delay holds dispatching back for the next backoff step.
func (s *sender) delay() {
	lo, hi := s.p.cfg.minBackoff, s.p.cfg.maxBackoff
	if s.backoff == 0 {
		s.backoff = lo
	} else {
		s.backoff = min(2*s.backoff, hi)
	}
	// ±20% jitter, so that producers restarted together spread out.
	j := time.Duration(float64(s.backoff) * (0.8 + 0.4*rand.Float64()))
	s.notBefore = time.Now().Add(j)
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
		if _, err := s.dl.Append(EncodeDeadLetter(d.e.rec, d.err.Error())); err != nil {
			s.log.Error("kafka: appending to the dead-letter log; the record stays journaled", "seq", d.e.seq, "err", err)
			kept = append(kept, d)
			continue
		}
		moved = append(moved, d)
	}
	if len(moved) == 0 {
		return nil, kept
	}
	// The dead letters must be durable before the journal forgets them.
	if err := s.dl.Sync(); err != nil {
		s.log.Error("kafka: syncing the dead-letter log; the records stay journaled", "err", err)
		return nil, dead
	}
	for _, d := range moved {
		r := d.e.rec
		s.log.Error("kafka: record moved to the dead-letter log",
			"seq", d.e.seq, "topic", r.Topic, "partition", r.Partition,
			"key_bytes", len(r.Key), "value_bytes", len(r.Value), "err", d.err)
	}
	return moved, kept
}

func (s *sender) openDeadLetter() error {
	if s.dl != nil {
		return nil
	}
	opts := append(s.p.cfg.journalOptions(),
		wal.WithSegmentSize(deadLetterSegmentSize), wal.WithMaxBytes(0))
	dl, err := wal.Open(filepath.Join(s.p.cfg.journal, DeadLetterDir), opts...)
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
	if err := s.dl.Close(); err != nil {
		return fmt.Errorf("kafka: closing dead-letter log: %w", err)
	}
	return nil
}

// dispatch hands records to the client while the window has room.
func (s *sender) dispatch() {
	if s.paused || s.solo || s.stopping {
		return
	}
	if !s.notBefore.IsZero() {
		if time.Now().Before(s.notBefore) {
			return
		}
		s.notBefore = time.Time{}
	}
	cfg := &s.p.cfg
	for s.nInFlight < cfg.maxInFlight && s.nBytes < cfg.maxInFlightLen {
		if s.failing.Load() {
			return // collect it first: the client failed its partition's buffer
		}
		if s.tx != nil && !s.txnRoom() {
			return // not fenced yet, or the transaction is ending
		}
		var e *entry
		if len(s.retry) > 0 {
			e = s.retry[0]
			if e.solo && s.nInFlight > 0 {
				return // wait until it can go alone
			}
			s.retry[0] = nil
			s.retry = s.retry[1:]
			if len(s.retry) == 0 {
				s.retry = nil
			}
		} else if e = s.read(); e == nil {
			return
		}
		if s.tx != nil && !s.txnAdmit(e) {
			s.retry = slices.Insert(s.retry, 0, e) // retry is empty or newer
			return
		}
		s.produce(e)
		if e.solo {
			// Alone in the client: flushing sends it without waiting for
			// the linger. Flush returns when it is reported, or at shutdown.
			s.solo = true
			s.flushes.Go(func() { _ = s.p.client.Flush(s.ctx) })
			return
		}
	}
}

// cursor returns the next seq to read from the journal, and whether there
// is one.
func (s *sender) cursor() (uint64, bool) {
	if len(s.runs) > 0 {
		return s.runs[0].lo, true
	}
	return s.next, s.next <= s.p.published.Load()
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
			return nil
		}
		if len(s.runs) == 0 {
			if data, ok := s.p.hand.take(seq); ok {
				if e, err := s.newEntry(seq, data); err == nil {
					s.advance()
					return e
				}
				// Cannot happen (Write encoded it); the journal decides.
			}
		}
		data, err := s.p.journal.Get(seq)
		if errors.Is(err, wal.ErrNotFound) {
			s.advance() // acknowledged meanwhile
			continue
		}
		if err != nil {
			s.log.Error("kafka: reading the journal, will retry", "seq", seq, "err", err)
			s.delay()
			return nil
		}
		e, err := s.newEntry(seq, data) // Get returned a copy we own
		if err != nil {
			// Not ours: keep the bytes in the dead-letter log.
			e := &entry{seq: seq, rec: &kgo.Record{Value: data}, size: len(data)}
			if moved, _ := s.bury([]deadRecord{{e, fmt.Errorf("undecodable journal record: %w", err)}}); len(moved) == 0 {
				s.delay() // it stays journaled; try again later
				return nil
			}
			if aerr := s.p.journal.Ack(seq); aerr != nil {
				s.log.Error("kafka: acknowledging in the journal", "seq", seq, "err", aerr)
			}
			s.p.deadLettered.Add(1)
			s.advance()
			continue
		}
		s.advance()
		return e
	}
}

func (s *sender) produce(e *entry) {
	e.state = stateInFlight
	s.inflight = append(s.inflight, e)
	s.nInFlight++
	s.nBytes += e.size
	s.p.inFlight.Add(1)
	s.p.client.Produce(s.ctx, e.rec, s.promiseFn)
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
	if len(s.retry) > 0 {
		m = min(m, s.retry[0].seq)
	}
	for _, e := range s.failed {
		m = min(m, e.seq)
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
