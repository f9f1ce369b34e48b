package kafka

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/headers"
	"github.com/walpub/walpub/internal/kafkaoffsets"
)

// Exactly once (WithExactlyOnce).
//
// The sender produces records inside Kafka transactions and acknowledges
// them in the journal only once their transaction committed. A crash (or a
// commit whose outcome is unknown) can leave records that were committed but
// not acknowledged; before it sends anything, a new client fences the
// transactional ID (InitProducerID aborts whatever an earlier incarnation
// left open and completes a commit it had begun), then reads back,
// read_committed, every partition the journaled records may have reached
// since the last commit this journal knows of, and acknowledges the records
// whose _id it finds there. Only the rest is sent again.
//
// What that needs is kept beside the journal, in txnStateFile (JSON,
// replaced atomically by a rename):
//   - the transactional ID, derived once per journal unless given;
//   - floors: per topic ever produced to, per partition, an offset below
//     which no journaled record of ours is committed and unacknowledged. A
//     topic is registered (floors = its end offsets then) before its first
//     record is produced; a partition missing from a registered topic is
//     read from its start, and so is one whose floor is beyond its end (the
//     topic was recreated, or the journal moved to another cluster). After
//     a commit and its acknowledgements a partition's floor is set just
//     past the commit's records; after a read-back, to where it ended.
//   - max_sent: no record with a higher seq was ever produced, so the
//     read-back matches only pending records up to it (memory stays
//     bounded by about two in-flight windows, not by the backlog).

const (
	// txnStateFile is the exactly-once state's file in the journal
	// directory. Its content is part of the on-disk format (version
	// txnStateVersion).
	txnStateFile    = "exactly-once.json"
	txnStateVersion = 1

	// defaultCommitInterval is how long a transaction collects records
	// before it commits (it commits earlier when it holds an in-flight
	// window's worth).
	defaultCommitInterval = 100 * time.Millisecond
	// fenceWait bounds how long NewProducer waits for the broker to answer
	// the fencing InitProducerID before it leaves that to the sender.
	fenceWait = 5 * time.Second
	// reconcileWait bounds one attempt at fencing and reading back.
	reconcileWait = 2 * time.Minute
	// txnTimeout is the transaction timeout asked of the broker: a
	// transaction left open by a stopped producer is aborted after it.
	txnTimeout = time.Minute
	// closeAbortWait bounds the abort of the open transaction at Close.
	closeAbortWait = 5 * time.Second
	// txnIDPrefix starts a transactional ID derived from a journal.
	txnIDPrefix = "walpub-"
)

// Errors of exactly-once mode.
var (
	// ErrTransactionsUnavailable is returned by NewProducer with
	// WithExactlyOnce when the broker answers that it will not run
	// transactions for this producer: no transaction support, the
	// transactional ID or cluster not authorized, a transaction timeout it
	// refuses. It wraps the broker's error. The producer never falls back
	// to sending outside transactions.
	ErrTransactionsUnavailable = errors.New("kafka: the broker refuses transactions")
	// ErrFenced is returned by Write, Flush and Close once another producer
	// took over the transactional ID (a newer process on a copy of the
	// journal, or on the same ID): this one stops sending, and what it had
	// not committed stays in its journal.
	ErrFenced = errors.New("kafka: fenced: another producer uses the transactional ID")
)

// WithExactlyOnce publishes in Kafka transactions under transactionalID so
// that a consumer reading with isolation.level=read_committed sees each
// record whose Write returned exactly once, through crashes of the process
// at any moment, broker restarts and lost responses. The default is off (at
// least once). An empty transactionalID derives one from the journal: a
// random ID stored in the journal directory on first use, so the same
// across restarts of that journal (and copies of it) and different for
// different journals. Two producers must never share an ID: the newer one
// fences the older. See the package documentation, "Exactly once".
func WithExactlyOnce(transactionalID string) Option {
	return func(c *config) { c.exactlyOnce, c.txnID = true, transactionalID }
}

// withAfterCommit sets a function the sender calls after each committed
// transaction, before it acknowledges the transaction's records in the
// journal (fault injection for tests).
func withAfterCommit(fn func()) Option {
	return func(c *config) { c.afterCommit = fn }
}

// txnFile is the exactly-once state as stored in txnStateFile.
type txnFile struct {
	Version         int                        `json:"version"`
	TransactionalID string                     `json:"transactional_id"`
	MaxSent         uint64                     `json:"max_sent"`
	Floors          map[string]map[int32]int64 `json:"floors"`
}

// txnState is the sender's exactly-once state; the sender goroutine owns it
// (after NewProducer).
type txnState struct {
	path     string
	file     txnFile
	baseOpts []kgo.Opt // the client options without the transactional ID: the read-back consumer's
	opts     []kgo.Opt // the producing client's, to make a new one after trouble

	ready    bool // fenced and reconciled: records may be produced
	open     bool // a transaction is open (a record was produced in it)
	aborting bool // a record of the open transaction failed: abort it
	started  time.Time
	n, bytes int      // records and bytes produced in the open transaction
	held     []*entry // produced in the open transaction and reported successful
	interval time.Duration
	fatal    error // fenced: nothing more is sent
	// owned: this producer initialized the transactional ID, as producer
	// ID pid at epoch (as of the last transaction it began). After
	// trouble, it checks that nobody took the ID over since before a new
	// client initializes it again (see checkOwner).
	owned bool
	pid   int64
	epoch int16
}

// openTxnState loads (or creates) the exactly-once state of the journal in
// dir. id, if not empty, replaces a stored transactional ID.
func openTxnState(dir, id string) (*txnState, error) {
	t := &txnState{path: filepath.Join(dir, txnStateFile), interval: defaultCommitInterval}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		t.file = txnFile{Version: txnStateVersion}
	case err != nil:
		return nil, fmt.Errorf("kafka: reading the exactly-once state: %w", err)
	default:
		if t.file, err = decodeTxnFile(b); err != nil {
			return nil, fmt.Errorf("kafka: exactly-once state %s: %w (without it, records committed before may be sent again)", t.path, err)
		}
	}
	if t.file.Floors == nil {
		t.file.Floors = map[string]map[int32]int64{}
	}
	if id == "" {
		id = t.file.TransactionalID
	}
	if id == "" {
		var b [16]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("kafka: deriving a transactional ID: %w", err)
		}
		id = txnIDPrefix + hex.EncodeToString(b[:])
	}
	if id != t.file.TransactionalID {
		t.file.TransactionalID = id
		if err := t.save(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// decodeTxnFile decodes a state file strictly: every field present, none
// unknown, values in range. A damaged one must not pass for a state with
// fewer records sent or no floors, which would have reconcile find less
// and send committed records again.
func decodeTxnFile(b []byte) (txnFile, error) {
	var f txnFile
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return f, err
	}
	var v int
	if err := json.Unmarshal(fields["version"], &v); err != nil || v != txnStateVersion {
		return f, fmt.Errorf("unsupported version %s", fields["version"])
	}
	for _, name := range []string{"transactional_id", "max_sent", "floors"} {
		if _, ok := fields[name]; !ok {
			return f, fmt.Errorf("no %q field", name)
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return f, err
	}
	if f.TransactionalID == "" {
		return f, errors.New("empty transactional_id")
	}
	for topic, parts := range f.Floors {
		for p, off := range parts {
			if off < 0 || p < 0 {
				return f, fmt.Errorf("floor %d of %s partition %d", off, topic, p)
			}
		}
	}
	return f, nil
}

// save replaces the state file atomically (write, sync, rename), so that a
// crash leaves either the old state or the new one.
func (t *txnState) save() error {
	b, err := json.Marshal(&t.file)
	if err != nil {
		return fmt.Errorf("kafka: encoding the exactly-once state: %w", err)
	}
	tmp := t.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("kafka: saving the exactly-once state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, t.path)
	}
	if err != nil {
		return fmt.Errorf("kafka: saving the exactly-once state: %w", err)
	}
	return nil
}

// fence runs InitProducerID for the transactional ID, which fences any
// earlier producer with it and ends its open transaction. It returns an
// error wrapping ErrTransactionsUnavailable when the broker refuses; an
// unreachable broker is not an error (the sender fences before it sends).
func (t *txnState) fence(cl *kgo.Client, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), fenceWait)
	defer cancel()
	id, _, err := cl.ProducerID(ctx)
	if err == nil && id >= 0 {
		return nil
	}
	if refused(err) {
		return fmt.Errorf("%w: transactional ID %q: %w", ErrTransactionsUnavailable, t.file.TransactionalID, err)
	}
	// A broker without InitProducerID leaves the client without a
	// producer ID (or failing locally); ask the broker what it supports.
	if missing := missingTxnAPIs(ctx, cl); missing != "" {
		return fmt.Errorf("%w: the broker does not support %s", ErrTransactionsUnavailable, missing)
	}
	if err == nil {
		err = errors.New("no producer ID")
	}
	log.Warn("kafka: exactly once: cannot fence the transactional ID yet; will retry before sending",
		"transactional_id", t.file.TransactionalID, "err", err)
	return nil
}

// refused reports whether err is a broker's final answer that it will not
// run transactions for this producer.
func refused(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke {
	case kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.ConcurrentTransactions:
		return false
	}
	return !ke.Retriable
}

// fenced reports whether err says another producer took over the
// transactional ID.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, ErrFenced)
}

// missingTxnAPIs asks the broker for its API versions and names the
// transaction APIs it lacks, or returns "" (also when it cannot tell).
func missingTxnAPIs(ctx context.Context, cl *kgo.Client) string {
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		return ""
	}
	need := map[int16]string{
		kmsg.InitProducerID.Int16(): "InitProducerID",
		kmsg.EndTxn.Int16():         "EndTxn",
	}
	for _, k := range resp.ApiKeys {
		delete(need, k.ApiKey)
	}
	var names []string
	for _, n := range need {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprint(names)
}

// txnStep runs at each turn of the sender's loop: it fences and reconciles
// until that succeeded, and ends the open transaction when it is due and
// nothing of it is in flight.
func (s *sender) txnStep() {
	t := s.tx
	if t.fatal != nil || s.stopping {
		return
	}
	if !t.ready {
		if !s.notBefore.IsZero() && time.Now().Before(s.notBefore) {
			return
		}
		if err := s.txnPrepare(); err != nil {
			if fenced(err) {
				s.txnFatal(err)
				return
			}
			s.log.Warn("kafka: exactly once: fencing and reading back failed, will retry", "err", err)
			s.delay()
			return
		}
		t.ready = true
		return
	}
	if t.open && s.nInFlight == 0 && (t.aborting || s.txnDue()) {
		s.txnEnd()
	}
}

// txnDue reports whether the open transaction should end: it holds a
// window's worth of records or has been open for the commit interval.
func (s *sender) txnDue() bool {
	t := s.tx
	return t.n >= s.p.cfg.maxInFlight || t.bytes >= s.p.cfg.maxInFlightLen ||
		time.Since(t.started) >= t.interval
}

// txnDeadline returns when the open transaction falls due by time, or the
// zero time.
func (s *sender) txnDeadline() time.Time {
	if s.tx == nil || !s.tx.open || !s.tx.ready {
		return time.Time{}
	}
	return s.tx.started.Add(s.tx.interval)
}

// txnRoom reports whether dispatch may hand the client another record.
func (s *sender) txnRoom() bool {
	t := s.tx
	return t.ready && t.fatal == nil && !t.aborting && !(t.open && s.txnDue())
}

// txnAdmit prepares for e to be produced in a transaction: it begins one if
// none is open, registers e's topic and raises max_sent, saving the state
// before the record goes out. It returns false (with a backoff set) if
// that failed; e must then be sent later.
func (s *sender) txnAdmit(e *entry) bool {
	t := s.tx
	if _, ok := t.file.Floors[e.rec.Topic]; !ok || e.seq > t.file.MaxSent {
		if !ok {
			floors, err := s.topicEnds(e.rec.Topic)
			if err != nil {
				s.log.Warn("kafka: exactly once: reading the end offsets of a new topic, will retry",
					"topic", e.rec.Topic, "err", err)
				s.delay()
				return false
			}
			t.file.Floors[e.rec.Topic] = floors
		}
		if e.seq > t.file.MaxSent {
			t.file.MaxSent = e.seq + uint64(s.p.cfg.maxInFlight)
		}
		if err := t.save(); err != nil {
			s.log.Error("kafka: exactly once: the records wait", "err", err)
			s.delay()
			return false
		}
	}
	if !t.open {
		if err := s.p.client.BeginTransaction(); err != nil {
			s.txnTrouble("beginning a transaction", err)
			return false
		}
		// The epoch this transaction runs at (it moves at each end
		// under KIP-890), for checkOwner.
		ctx, cancel := context.WithTimeout(s.ctx, fenceWait)
		if id, epoch, err := s.p.client.ProducerID(ctx); err == nil {
			t.pid, t.epoch = id, epoch
		}
		cancel()
		t.open, t.started = true, time.Now()
	}
	t.n++
	t.bytes += e.size
	return true
}

// topicEnds returns the end offsets of topic's partitions (none if the
// topic does not exist yet: every partition is then read from its start).
func (s *sender) topicEnds(topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(s.ctx, fenceWait)
	defer cancel()
	ends, err := kafkaoffsets.End(ctx, s.p.client, topic)
	if errors.Is(err, kafkaoffsets.ErrUnknownTopic) {
		return map[int32]int64{}, nil
	}
	return ends, err
}

// txnHold keeps a record the client reported produced until its
// transaction ends.
func (s *sender) txnHold(e *entry) {
	e.state = stateLeft
	s.tx.held = append(s.tx.held, e)
}

// txnFailed notes that a record of the open transaction failed: the
// transaction is aborted and its records sent again. An error saying the
// producer was fenced stops the sender.
func (s *sender) txnFailed(err error) {
	if fenced(err) {
		s.txnFatal(err)
	}
	s.tx.aborting = true
}

// txnKind overrides classify for errors about the transaction rather than
// the record: they are retried, never dead-lettered.
func txnKind(err error, k failKind) failKind {
	if k == failDeadLetter && (errors.Is(err, kerr.TransactionalIDAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed)) {
		return failRetry
	}
	return k
}

// txnHeldMin returns the lowest seq held by the open transaction, if any.
func (s *sender) txnHeldMin() (uint64, bool) {
	if s.tx == nil || len(s.tx.held) == 0 {
		return 0, false
	}
	m := s.tx.held[0].seq
	for _, e := range s.tx.held[1:] {
		m = min(m, e.seq)
	}
	return m, true
}

// txnEnd commits the open transaction, or aborts it after a failure.
func (s *sender) txnEnd() {
	t := s.tx
	held := t.held
	aborting := t.aborting
	t.held, t.open, t.aborting, t.n, t.bytes = nil, false, false, 0, 0
	s.p.inFlight.Add(-int64(len(held)))
	cl := s.p.client
	if aborting {
		err := cl.AbortBufferedRecords(s.ctx)
		if err == nil {
			err = cl.EndTransaction(s.ctx, kgo.TryAbort)
		}
		s.txnRequeue(held)
		if err != nil {
			s.txnTrouble("aborting a transaction", err)
		}
		return
	}
	if err := cl.EndTransaction(s.ctx, kgo.TryCommit); err != nil {
		// Committed or not: the read-back after the new client fenced
		// the ID tells.
		s.txnRequeue(held)
		s.txnTrouble("committing a transaction", err)
		return
	}
	if fn := s.p.cfg.afterCommit; fn != nil {
		fn()
	}
	s.txnCommitted(held)
}

// txnAbortOpen aborts the open transaction at shutdown (Close's context
// ended before it committed), so that read_committed consumers of its
// partitions need not wait for the broker's transaction timeout. Its records
// stay journaled.
func (s *sender) txnAbortOpen() {
	t := s.tx
	if !t.open || t.fatal != nil {
		return
	}
	s.p.inFlight.Add(-int64(len(t.held)))
	t.held, t.open, t.aborting, t.n, t.bytes = nil, false, false, 0, 0
	ctx, cancel := context.WithTimeout(context.Background(), closeAbortWait)
	defer cancel()
	err := s.p.client.AbortBufferedRecords(ctx)
	if err == nil {
		err = s.p.client.EndTransaction(ctx, kgo.TryAbort)
	}
	if err != nil {
		s.log.Warn("kafka: exactly once: aborting the open transaction at close; the broker aborts it after its timeout",
			"timeout", txnTimeout, "err", err)
	}
}

// txnCommitted acknowledges the records of a committed transaction, moves
// the floors past them and reports them.
func (s *sender) txnCommitted(held []*entry) {
	t := s.tx
	s.dropDeadLetterCopies(held)
	acks := s.acks[:0]
	for _, e := range held {
		acks = append(acks, e.seq)
	}
	slices.Sort(acks)
	ackErr := s.ack(acks)
	s.acks = acks[:0]
	if ackErr != nil {
		// The floors stay (a restart reads these records back); the
		// acknowledgement is retried, and the records reported once it
		// is journaled (journalAcks).
		for _, e := range held {
			s.unacked = append(s.unacked, settled{e, nil})
		}
		s.ackFailed(ackErr)
		s.publishProgress(false)
		return
	}
	// This transaction's records are acknowledged now: the floors move
	// to just past them (set, not raised, so that a topic recreated with
	// lower offsets, or a journal moved to another cluster, gets true
	// floors again), unless records an earlier transaction committed
	// still wait for their acknowledgement (a retry): past them, a
	// restart would not read them back, and would send them again.
	if !slices.ContainsFunc(s.unacked, func(d settled) bool { return d.err == nil }) {
		moved := map[string]map[int32]int64{}
		for _, e := range held {
			m := moved[e.rec.Topic]
			if m == nil {
				m = map[int32]int64{}
				moved[e.rec.Topic] = m
			}
			m[e.rec.Partition] = max(m[e.rec.Partition], e.rec.Offset+1)
		}
		for topic, m := range moved {
			for p, off := range m {
				s.setFloor(topic, p, off)
			}
		}
		if err := t.save(); err != nil {
			s.log.Warn("kafka: exactly once: saving the floors (a restart reads back more)", "err", err)
		}
	}
	s.backoff = 0
	s.p.delivered.Add(int64(len(held)))
	fn := s.p.cfg.onDelivery
	for _, e := range held {
		if fn != nil {
			e.rec.Context = nil
			detach(e)
			fn(e.rec)
		}
		s.doneWith(e)
	}
	s.publishProgress(true)
}

func (s *sender) setFloor(topic string, partition int32, off int64) {
	f := s.tx.file.Floors[topic]
	if f == nil {
		f = map[int32]int64{}
		s.tx.file.Floors[topic] = f
	}
	f[partition] = off
}

// txnRequeue puts the records of an ended transaction back, to be sent
// again before anything newer.
func (s *sender) txnRequeue(held []*entry) {
	if len(held) == 0 {
		return
	}
	for _, e := range held {
		s.park(e)
	}
	s.p.retries.Add(int64(len(held)))
}

// txnTrouble handles a transaction call that failed: fenced, the producer
// stops; otherwise the client is replaced (its InitProducerID fences the old
// one's transaction) and the journal reconciled before anything is sent.
func (s *sender) txnTrouble(what string, err error) {
	if fenced(err) {
		s.txnFatal(err)
		return
	}
	s.log.Warn("kafka: exactly once: "+what+" failed; fencing and reading back before sending again", "err", err)
	t := s.tx
	t.ready, t.open, t.aborting, t.n, t.bytes = false, false, false, 0, 0
	s.replaceClient()
	s.delay()
}

// txnFatal stops the sender for good: another producer has the ID.
func (s *sender) txnFatal(err error) {
	if s.tx.fatal != nil {
		return
	}
	if !errors.Is(err, ErrFenced) {
		err = fmt.Errorf("%w: %w", ErrFenced, err)
	}
	s.tx.fatal = err
	s.log.Error("kafka: exactly once: fenced by a newer producer with the same transactional ID; stopping, the records stay journaled",
		"transactional_id", s.tx.file.TransactionalID, "err", err)
	s.p.fatal.Store(&err)
	s.p.broadcast()
}

// txnPrepare fences the transactional ID with the current client and
// reconciles the journal with what is committed.
func (s *sender) txnPrepare() error {
	ctx, cancel := context.WithTimeout(s.ctx, reconcileWait)
	defer cancel()
	t := s.tx
	if t.owned {
		if err := s.checkOwner(ctx); err != nil {
			return err
		}
	}
	id, epoch, err := s.p.client.ProducerID(ctx)
	if err != nil || id < 0 {
		if err == nil {
			err = fmt.Errorf("%w: no producer ID", ErrTransactionsUnavailable)
		}
		return fmt.Errorf("initializing the transactional producer: %w", err)
	}
	t.owned, t.pid, t.epoch = true, id, epoch
	return s.reconcile(ctx)
}

// checkOwner runs before a new client initializes the transactional ID
// again after trouble. A fresh InitProducerID always wins: were this
// producer a zombie (stopped while a newer process on a copy of its
// journal took the ID over, then resumed), it would fence the newer one and
// carry on. Its trouble then looks like a transaction the broker timed out
// (a produce fails with INVALID_PRODUCER_EPOCH either way), so it asks the
// coordinator (DescribeTransactions) what became of the ID. It is fenced
// when another producer ID holds it, when its epoch moved on by more than
// the one bump a timed-out transaction's abort makes (or a lost commit
// response, under KIP-890), or when a transaction under another epoch is
// ongoing. A transition in progress is asked about again later. The one
// case it cannot tell apart is a newer producer that initialized the ID and
// has not begun a transaction yet: that one is fenced in turn.
func (s *sender) checkOwner(ctx context.Context) error {
	t := s.tx
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{t.file.TransactionalID}
	resp, err := req.RequestWith(ctx, s.p.client)
	if err != nil {
		return fmt.Errorf("describing the transactional ID: %w", err)
	}
	if len(resp.TransactionStates) != 1 {
		return fmt.Errorf("describing the transactional ID: %d states in the answer", len(resp.TransactionStates))
	}
	st := resp.TransactionStates[0]
	if err := kerr.ErrorForCode(st.ErrorCode); err != nil {
		switch {
		case errors.Is(err, kerr.TransactionalIDNotFound):
			return nil // expired: nobody holds it
		case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
			s.log.Warn("kafka: exactly once: not allowed to describe the transactional ID; initializing it again without checking that no newer producer took it over",
				"transactional_id", t.file.TransactionalID)
			return nil
		}
		return fmt.Errorf("describing the transactional ID: %w", err)
	}
	other := ""
	switch {
	case st.ProducerID != t.pid:
		other = fmt.Sprintf("producer ID %d holds it (ours: %d)", st.ProducerID, t.pid)
	case int(st.ProducerEpoch) > int(t.epoch)+1:
		other = fmt.Sprintf("its epoch is %d (ours: %d)", st.ProducerEpoch, t.epoch)
	case st.State == "Ongoing" && st.ProducerEpoch != t.epoch:
		other = fmt.Sprintf("a transaction at epoch %d is ongoing (ours: %d)", st.ProducerEpoch, t.epoch)
	case strings.HasPrefix(st.State, "Prepare"):
		return fmt.Errorf("the transactional ID is in state %s; asking again", st.State)
	}
	if other != "" {
		return fmt.Errorf("%w: %s", ErrFenced, other)
	}
	return nil
}

// reconcile finds the pending records (up to max_sent) that are committed
// on the broker, by reading back the partitions of their topics from the
// floors, read_committed, and matching topic and _id. It acknowledges and
// reports those, and moves the floors to where the partitions ended.
func (s *sender) reconcile(ctx context.Context) error {
	t := s.tx
	cands := map[string][]uint64{} // topic NUL _id → pending seqs, ascending
	topics := map[string]bool{}
	for rec, err := range s.p.journal.Pending() {
		if err != nil {
			return fmt.Errorf("reading the journal: %w", err)
		}
		if rec.Seq > t.file.MaxSent {
			break
		}
		var r kgo.Record
		if _, err := decodeRecordInto(&r, nil, rec.Data, false, &s.intern); err != nil {
			continue // never sent; read dead-letters it
		}
		if _, ok := t.file.Floors[r.Topic]; !ok {
			continue // registered before any record of the topic is sent: never sent
		}
		k := r.Topic + "\x00" + string(recordID(&r))
		cands[k] = append(cands[k], rec.Seq)
		topics[r.Topic] = true
	}
	if len(cands) == 0 {
		return nil
	}

	ends := map[string]map[int32]int64{}
	var found []*kgo.Record
	var acks []uint64
	for topic := range topics {
		e, err := kafkaoffsets.End(ctx, s.p.client, topic)
		if errors.Is(err, kafkaoffsets.ErrUnknownTopic) {
			continue
		}
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		ends[topic] = e
		// A floor beyond the partition's end means the topic is not the
		// one the floor was taken on (recreated, another cluster): read
		// that partition whole.
		from := map[int32]int64{}
		for p, f := range t.file.Floors[topic] {
			if f <= e[p] {
				from[p] = f
			}
		}
		err = kafkaoffsets.Read(ctx, append(slices.Clone(t.baseOpts), kgo.FetchIsolationLevel(kgo.ReadCommitted())),
			topic, from, e, func(r *kgo.Record) {
				k := r.Topic + "\x00" + string(recordID(r))
				if seqs := cands[k]; len(seqs) > 0 {
					acks = append(acks, seqs[0])
					cands[k] = seqs[1:]
					found = append(found, r)
				}
			})
		if err != nil {
			return fmt.Errorf("reading back: %w", err)
		}
	}

	if len(acks) > 0 {
		if err := s.p.journal.Ack(acks...); err != nil {
			return fmt.Errorf("acknowledging records found committed: %w", err)
		}
		done := make(map[uint64]bool, len(acks))
		for _, q := range acks {
			done[q] = true
		}
		s.dropHeld(done)
		// Found committed, acknowledged and reported here: no longer
		// waiting for an acknowledgement retry to be reported again.
		s.unacked = slices.DeleteFunc(s.unacked, func(d settled) bool { return d.err == nil && done[d.e.seq] })
	}
	for topic, e := range ends {
		for p, end := range e {
			s.setFloor(topic, p, end)
		}
	}
	if err := t.save(); err != nil {
		return err
	}
	s.log.Info("kafka: exactly once: reconciled the journal with the broker",
		"transactional_id", t.file.TransactionalID, "found_committed", len(acks))
	s.p.delivered.Add(int64(len(found)))
	if fn := s.p.cfg.onDelivery; fn != nil {
		for _, r := range found {
			fn(r)
		}
	}
	if len(acks) > 0 {
		s.publishProgress(true)
	}
	return nil
}

// recordID returns r's _id header value (nil if none).
func recordID(r *kgo.Record) []byte {
	v, _ := headers.Value(r, idHeader)
	return v
}
