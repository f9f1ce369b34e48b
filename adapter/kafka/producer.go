package kafka

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/headers"
	"github.com/walpub/walpub/wal"
)

// Errors returned by Producer methods.
var (
	// ErrClosed is returned by Write and Flush once Close has begun.
	ErrClosed = errors.New("kafka: producer closed")
	// ErrNoTopic is returned by Write for a record without a topic when the
	// producer's URL names none either.
	ErrNoTopic = errors.New("kafka: record has no topic and the URL names none")
	// ErrInvalidTopic is returned by Write for a topic name Kafka refuses.
	ErrInvalidTopic = errors.New("kafka: invalid topic")
	// ErrRecordTooLarge is returned by Write for a record that alone exceeds
	// the journal's wal.WithMaxBytes bound; it wraps wal.ErrFull.
	ErrRecordTooLarge = fmt.Errorf("kafka: record exceeds the journal's size bound: %w", wal.ErrFull)
	// ErrNotSynced is wrapped by the error Write returns for a record it
	// journaled whose sync then failed (under wal.SyncAlways): the record
	// is in the journal and is sent like any other (a killed process
	// keeps it), but it is not known to survive a power cut.
	ErrNotSynced = errors.New("kafka: record journaled, its sync failed")
)

// Stats is a snapshot of a Producer's counters.
type Stats struct {
	Queued       int   // journaled, not yet handed to the client
	InFlight     int   // handed to the client, not yet confirmed (nor its acknowledgement journaled)
	Delivered    int64 // confirmed by the broker since NewProducer
	Retries      int64 // records requeued after a failed attempt
	DeadLettered int64 // records moved to the dead-letter log (unfixable errors)
	JournalBytes int64 // the journal's DiskBytes
}

// Producer publishes records to Kafka at least once, through a journal on
// disk; see the package documentation. A Producer is safe for concurrent use
// by multiple goroutines.
type Producer struct {
	cfg     config
	topic   string // the URL's topic, may be ""
	journal *wal.Log
	client  *kgo.Client
	snd     *sender

	// Writes in progress; Close waits for them after setting closed.
	mu       sync.Mutex
	closed   bool
	writers  sync.WaitGroup
	closing  chan struct{} // closed when Close begins
	progress chan struct{} // closed and replaced when records are resolved

	// published is the highest seq such that every seq up to it has
	// returned from Append (or predates this producer); pub holds seqs
	// that returned out of order beyond it.
	pubMu     sync.Mutex
	pub       map[uint64]struct{}
	published atomic.Uint64
	// written is the highest seq whose Write returned (or that predates
	// this producer): Flush waits for every seq up to it, so that it
	// covers the caller's own Writes even while an earlier seq's Write is
	// still in progress (group commit wakes appenders in any order).
	written atomic.Uint64

	// resolved: every seq below it is confirmed or dead-lettered.
	resolved atomic.Uint64

	kick chan struct{} // cap 1: tells the sender new records were published
	stop chan struct{} // closed to make the sender shut down
	done chan struct{} // closed when the sender has exited

	fatal atomic.Pointer[error] // set once when the sender stops for good (ErrFenced)

	inFlight atomic.Int64
	// unacked: records the broker confirmed (or that went to the
	// dead-letter log) whose acknowledgement the journal has not taken
	// yet (the sender's unacked, as of its last try).
	unacked      atomic.Int64
	delivered    atomic.Int64
	retries      atomic.Int64
	deadLettered atomic.Int64

	idMu  sync.Mutex
	idRng *rand.ChaCha8

	closeStarted atomic.Bool // the first Close runs close, later ones wait for closeDone
	closeDone    chan struct{}
	closeErr     error
	finalStats   *wal.Stats // set under mu just before the journal closes

	bufPool sync.Pool
	hand    handoff
}

// handoff passes records from Write to the sender in memory, so that the
// sender need not read back from the journal (a copy and a checksum) what
// was just appended. It is bounded (handoffShare of the in-flight window);
// when a record does not fit, the handoff stops taking records until the
// sender has read every record written so far: it serves bursts, and a
// writer that runs ahead of the broker for longer leaves its records in the
// journal only, read back when the window has room, instead of holding in
// memory records far ahead of what the sender needs next. Records of an
// earlier run are read from the journal too.
type handoff struct {
	mu       sync.Mutex
	m        map[uint64][]byte
	n, bytes int // reserved, including records in m
	maxN     int
	maxBytes int
	// full: a record missed the handoff; none is handed off until the
	// sender has caught up with the journal (caughtUp).
	full atomic.Bool
	// held counts the records in m, so that the sender's look-ups skip
	// the lock while there are none.
	held atomic.Int64
}

// handoffShare is the handoff's bound as a fraction of the in-flight
// window, in records and in bytes.
const handoffShare = 4

func newHandoff(maxN, maxBytes int) handoff {
	return handoff{m: make(map[uint64][]byte), maxN: max(maxN/handoffShare, 1),
		maxBytes: max(maxBytes/handoffShare, 1)}
}

// reserve makes room for a record of size bytes, if there is room and the
// handoff is not full.
func (h *handoff) reserve(size int) bool {
	if h.full.Load() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n >= h.maxN || h.bytes+size > h.maxBytes {
		h.full.Store(true)
		return false
	}
	h.n++
	h.bytes += size
	return true
}

// release gives back a reservation that was not used.
func (h *handoff) release(size int) {
	h.mu.Lock()
	h.n--
	h.bytes -= size
	h.mu.Unlock()
}

// put stores the encoded record seq under an earlier reservation.
func (h *handoff) put(seq uint64, b []byte) {
	h.mu.Lock()
	h.m[seq] = b
	h.held.Add(1)
	h.mu.Unlock()
}

// take removes and returns record seq, if it was handed off.
func (h *handoff) take(seq uint64) ([]byte, bool) {
	if h.held.Load() == 0 {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.m[seq]
	if ok {
		delete(h.m, seq)
		h.held.Add(-1)
		h.n--
		h.bytes -= len(b)
	}
	return b, ok
}

// caughtUp tells the handoff that the sender has read every record
// published so far: records written from now on may be handed off again.
func (h *handoff) caughtUp() {
	if h.full.Load() {
		h.full.Store(false)
	}
}

// NewProducer opens the journal, starts the background sender and resends
// every record an earlier run left unconfirmed, oldest first. url is
// "kafka://host:port[,host:port...]/topic"; the topic may be omitted when
// every record names its own, and a port, when it is 9092.
//
// An unreachable broker is not an error: records wait in the journal until
// one answers. A damaged journal is (errors.Is(err, wal.ErrCorrupt), with the
// *wal.CorruptionError naming file and offset; see wal.Repair), and so is a
// journal held by another producer (wal.ErrLocked). With WithExactlyOnce,
// NewProducer first fences the transactional ID, waiting up to 5 s for the
// broker (then the sender does it before sending), and fails with
// ErrTransactionsUnavailable if the broker refuses transactions, or with an
// error naming the exactly-once state file if that is unreadable.
func NewProducer(url string, opts ...Option) (*Producer, error) {
	t, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	copts, err := cfg.clientOptions(t.brokers)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("kafka: seeding record ids: %w", err)
	}

	journal, err := wal.Open(cfg.journal, cfg.journalOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafka: opening journal %s: %w", cfg.journal, err)
	}
	p := &Producer{
		cfg:       cfg,
		topic:     t.topic,
		journal:   journal,
		closing:   make(chan struct{}),
		progress:  make(chan struct{}),
		pub:       make(map[uint64]struct{}),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		closeDone: make(chan struct{}),
		idRng:     rand.NewChaCha8(seed),
		hand:      newHandoff(cfg.maxInFlight, cfg.maxInFlightLen),
	}
	snd, err := newSender(p)
	if err != nil {
		_ = journal.Close()
		return nil, err
	}
	if cfg.exactlyOnce {
		if snd.tx, err = openTxnState(cfg.journal, cfg.txnID); err != nil {
			snd.end()
			_ = journal.Close()
			return nil, err
		}
		if cfg.commitInterval > 0 {
			snd.tx.interval = cfg.commitInterval
		}
		snd.tx.baseOpts = copts
		copts = append(slices.Clone(copts), kgo.TransactionalID(snd.tx.file.TransactionalID),
			kgo.TransactionTimeout(txnTimeout))
		snd.tx.opts = copts
	}
	snd.opts = copts
	client, err := kgo.NewClient(copts...)
	if err == nil {
		if err = checkClient(client, snd.tx); err == nil && snd.tx != nil {
			err = snd.tx.fence(client, cfg.logger)
		}
		if err != nil {
			client.Close()
		}
	} else {
		err = fmt.Errorf("%w: client: %w", ErrInvalidOption, err)
	}
	if err != nil {
		snd.end()
		_ = journal.Close()
		return nil, err
	}
	p.client, p.snd = client, snd
	snd.manual = manualPartitioning(client)
	snd.partitioner, _ = client.OptValue(kgo.RecordPartitioner).(kgo.Partitioner)
	js := journal.Stats()
	cfg.logger.Info("kafka: producer started", "journal", cfg.journal, "brokers", t.brokers,
		"topic", t.topic, "resending", js.Pending, "resend_bytes", js.PendingBytes)
	go snd.run()
	return p, nil
}

// manualPartitioning reports whether the client partitions records by
// their Partition field (kgo.ManualPartitioner), so that the sender knows a
// record's partition before the client buffers it.
func manualPartitioning(cl *kgo.Client) bool {
	return reflect.TypeOf(cl.OptValue(kgo.RecordPartitioner)) == reflect.TypeOf(kgo.ManualPartitioner())
}

// checkClient refuses client options under which the sender cannot work.
func checkClient(cl *kgo.Client, tx *txnState) error {
	if manual, _ := cl.OptValue(kgo.ManualFlushing).(bool); manual {
		return fmt.Errorf("%w: WithClient: kgo.ManualFlushing would leave records unsent", ErrInvalidOption)
	}
	if v := cl.OptValues(kgo.TransactionalID); len(v) == 2 && v[1] == true {
		if tx == nil {
			return fmt.Errorf("%w: WithClient: kgo.TransactionalID is not supported (use WithExactlyOnce)", ErrInvalidOption)
		}
		if v[0] != tx.file.TransactionalID {
			return fmt.Errorf("%w: WithClient: kgo.TransactionalID: pass the ID to WithExactlyOnce", ErrInvalidOption)
		}
	}
	return nil
}

// Write journals r's topic (r.Topic, or the URL's when empty), partition,
// key, value, headers and timestamp (time.Now when zero), then returns: the
// record is sent in the background. A 16-byte random "_id" header is added
// unless r already has an "_id" header; it is journaled, so it stays the
// same across resends and lets consumers drop duplicates.
//
// Write neither keeps nor modifies r. It blocks only while the journal is at
// its wal.WithMaxBytes bound (until an acknowledgement makes room or ctx
// ends) and, under wal.SyncAlways, for the sync. It returns ErrClosed once
// Close has begun, ErrNoTopic, ErrInvalidTopic, ErrRecordTooLarge, ctx's
// error, or the journal's error wrapped: with ErrNotSynced if the record
// was journaled all the same (its sync failed).
func (p *Producer) Write(ctx context.Context, r *kgo.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil {
		return errors.New("kafka: nil record")
	}
	topic := r.Topic
	if topic == "" {
		topic = p.topic
		if topic == "" {
			return ErrNoTopic
		}
	} else if topic != p.topic {
		if err := validTopic(topic); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidTopic, err)
		}
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	var id []byte
	if !hasID(r) {
		var b [idLen]byte
		p.newID(&b)
		id = b[:]
	}

	if err := p.failure(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.writers.Add(1)
	p.mu.Unlock()
	defer p.writers.Done()

	// Encode into a buffer of our own if the record can be handed to the
	// sender, else into a pooled one.
	size := encodedLen(r, topic, id, 0, "")
	var buf []byte
	handed := p.hand.reserve(size)
	if handed {
		buf = make([]byte, 0, size)
	} else {
		bp := p.getBuf()
		defer p.bufPool.Put(bp)
		buf = (*bp)[:0]
		defer func() { *bp = buf[:0] }()
	}
	buf = appendRecord(buf, r, topic, ts, id, 0, "")
	seq, err := p.append(ctx, buf)
	if handed {
		if err == nil {
			p.hand.put(seq, buf)
		} else {
			p.hand.release(size)
		}
	}
	if seq != 0 {
		// Journaled; with an error, its sync failed (wal.SyncAlways):
		// the sender still sends it, and reads on past it.
		p.publish(seq)
		storeMax(&p.written, seq)
	}
	return err
}

// storeMax raises a to v unless it is already higher.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// append appends an encoded record to the journal, waiting for room. An
// error with a seq: the record is journaled, but the sync the journal's
// policy asks for failed.
func (p *Producer) append(ctx context.Context, b []byte) (uint64, error) {
	// The record is too large only if the journal refuses it while empty:
	// empty before the append (seen after the previous refusal) and after
	// it. Empty only after, it emptied meanwhile, and the append is tried
	// again. The journal is looked at only once it refused a record, so
	// that an append that fits costs nothing more.
	emptyBefore := false
	var progress chan struct{} // taken before the last try
	for {
		seq, err := p.journal.Append(b)
		if err == nil {
			return seq, nil
		}
		if seq != 0 {
			return seq, fmt.Errorf("%w: %w", ErrNotSynced, err)
		}
		if !errors.Is(err, wal.ErrFull) {
			return 0, fmt.Errorf("kafka: journal append: %w", err)
		}
		if fn := p.cfg.afterFull; fn != nil {
			fn()
		}
		if p.journal.Stats().Pending == 0 {
			if emptyBefore {
				return 0, fmt.Errorf("%w (%d bytes)", ErrRecordTooLarge, len(b))
			}
			emptyBefore = true
			continue
		}
		emptyBefore = false
		if progress == nil {
			// Taken before the next try, so that an acknowledgement
			// between that try and the wait below is not missed.
			progress = p.progressChan()
			continue
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.closing:
			return 0, ErrClosed
		case <-progress:
		}
		// A sender stopped for good (ErrFenced) frees no more room.
		if err := p.failure(); err != nil {
			return 0, err
		}
		progress = p.progressChan()
	}
}

func hasID(r *kgo.Record) bool {
	_, ok := headers.Value(r, idHeader)
	return ok
}

// newID fills b with a random RFC 9562 version 4 UUID, from a ChaCha8
// stream seeded by crypto/rand.
func (p *Producer) newID(b *[idLen]byte) {
	p.idMu.Lock()
	_, _ = p.idRng.Read(b[:]) // never fails
	p.idMu.Unlock()
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
}

func (p *Producer) getBuf() *[]byte {
	if bp, ok := p.bufPool.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 4096)
	return &b
}

// publish records that seq returned from Append and tells the sender.
func (p *Producer) publish(seq uint64) {
	p.pubMu.Lock()
	hi := p.published.Load()
	if seq == hi+1 {
		hi++
		for {
			if _, ok := p.pub[hi+1]; !ok {
				break
			}
			delete(p.pub, hi+1)
			hi++
		}
		p.published.Store(hi)
	} else if seq > hi {
		p.pub[seq] = struct{}{}
	}
	p.pubMu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// failure returns the error that stopped the sender for good (ErrFenced),
// or nil.
func (p *Producer) failure() error {
	if e := p.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *Producer) progressChan() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.progress
}

// broadcast wakes everyone waiting for progress (Flush, Write at the
// journal's bound).
func (p *Producer) broadcast() {
	p.mu.Lock()
	close(p.progress)
	p.progress = make(chan struct{})
	p.mu.Unlock()
}

// Flush waits until every record whose Write returned before the call is
// confirmed by the broker or dead-lettered, including records resent from an
// earlier run, and their WithOnDelivery and WithOnDeadLetter callbacks have
// returned. It returns ctx's error if ctx ends first, and ErrClosed if Close
// has begun.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return p.waitResolved(ctx, p.written.Load())
}

// waitResolved waits until every seq up to target is resolved.
func (p *Producer) waitResolved(ctx context.Context, target uint64) error {
	for {
		progress := p.progressChan()
		if p.resolved.Load() > target {
			return nil
		}
		if err := p.failure(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			// The sender stopped; whatever is left stays journaled.
			if p.resolved.Load() > target {
				return nil
			}
			return ErrClosed
		case <-progress:
		}
	}
}

// Close stops accepting writes, waits until every journaled record is
// confirmed (or dead-lettered), then stops the client and every goroutine of
// the producer and closes the journal. If ctx ends first, Close returns ctx's
// error; the records not yet confirmed stay in the journal for the next
// NewProducer on it, and Close still stops everything and closes the journal
// before returning. With brokers down and a ctx that never ends, Close waits
// for as long as they stay down.
//
// Close is idempotent: later calls wait for the first to finish (or for
// their own ctx) and return its result.
func (p *Producer) Close(ctx context.Context) error {
	// Not a sync.Once: its Do would keep a later call waiting for the
	// first one whatever the later call's ctx.
	if p.closeStarted.CompareAndSwap(false, true) {
		p.closeErr = p.close(ctx)
		close(p.closeDone)
		return p.closeErr
	}
	select {
	case <-p.closeDone:
		return p.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Producer) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	close(p.closing)
	p.mu.Unlock()
	p.writers.Wait()

	err := p.waitResolved(ctx, p.published.Load())
	if errors.Is(err, ErrClosed) {
		err = nil // the sender stopped on its own; nothing more to wait for
	}
	p.snd.end() // a transaction call, or a Produce waiting for the client's buffer, gives up
	close(p.stop)
	<-p.done

	final := p.journal.Stats()
	p.mu.Lock()
	p.finalStats = &final
	p.mu.Unlock()
	if cerr := p.journal.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("kafka: closing journal: %w", cerr)
	}
	if cerr := p.snd.closeDeadLetter(); cerr != nil && err == nil {
		err = cerr
	}
	p.cfg.logger.Info("kafka: producer closed", "delivered", p.delivered.Load(),
		"left_in_journal", final.Pending, "err", err)
	return err
}

// Stats returns a snapshot of the producer's counters. After Close it
// reports the journal as Close left it.
func (p *Producer) Stats() Stats {
	var js wal.Stats
	p.mu.Lock() // Close sets finalStats under mu before it closes the journal
	if p.finalStats != nil {
		js = *p.finalStats
	} else {
		js = p.journal.Stats()
	}
	p.mu.Unlock()
	// A record the broker confirmed is in flight until the journal took
	// its acknowledgement: until then it is neither delivered nor queued
	// (the journal may count it pending, or, after an Ack whose sync
	// failed, not).
	inFlight := int(p.inFlight.Load() + p.unacked.Load())
	return Stats{
		Queued:       max(js.Pending-inFlight, 0),
		InFlight:     inFlight,
		Delivered:    p.delivered.Load(),
		Retries:      p.retries.Load(),
		DeadLettered: p.deadLettered.Load(),
		JournalBytes: js.DiskBytes,
	}
}
