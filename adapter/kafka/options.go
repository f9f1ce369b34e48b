package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/walpub/walpub/wal"
)

// Defaults. Each option's documentation repeats the one it overrides.
const (
	// DefaultJournal is the journal directory used without WithJournal,
	// relative to the working directory (the reference's default).
	DefaultJournal = "publisher.journal"
	// DeadLetterDir is the dead-letter log's directory inside the journal
	// directory.
	DeadLetterDir = "dead-letter"
	// DefaultPort is the broker port assumed when the URL names a host alone.
	DefaultPort = "9092"

	defaultMaxInFlight      = 10000
	defaultMaxInFlightBytes = 8 << 20
	defaultMinBackoff       = 100 * time.Millisecond
	defaultMaxBackoff       = 10 * time.Second
	deadLetterSegmentSize   = 1 << 20
	idHeader                = "_id"
	idLen                   = 16
	maxTopicLen             = 249
)

// Errors returned by NewProducer for a bad URL or option; they are wrapped
// with the details.
var (
	ErrInvalidURL    = errors.New("kafka: invalid URL")
	ErrInvalidOption = errors.New("kafka: invalid option")
)

// An Option configures a Producer; pass options to NewProducer.
type Option func(*config)

type config struct {
	journal        string
	walOpts        []wal.Option
	clientOpts     []kgo.Opt
	saslMechanism  string
	saslUser       string
	saslPass       string
	saslSet        bool
	tls            *tls.Config
	onDelivery     func(*kgo.Record)
	onDeadLetter   func(*kgo.Record, error)
	logger         *slog.Logger
	maxInFlight    int
	maxInFlightLen int
	minBackoff     time.Duration
	maxBackoff     time.Duration
	exactlyOnce    bool         // WithExactlyOnce
	txnID          string       // WithExactlyOnce's ID; "" derives one
	afterCommit    func()       // withAfterCommit (tests)
	ackFault       func() error // withAckFault (tests)
	dlSyncFault    func() error // withDeadLetterSyncFault (tests)
	afterFull      func()       // withAfterFull (tests)
	journalRead    func(uint64) // withJournalRead (tests)
	deadLetterMax  int64        // withDeadLetterMax (tests); DefaultDeadLetterMaxBytes

	// withCommitInterval (tests); 0: defaultCommitInterval.
	commitInterval time.Duration
}

func defaultConfig() config {
	return config{
		journal:        DefaultJournal,
		maxInFlight:    defaultMaxInFlight,
		maxInFlightLen: defaultMaxInFlightBytes,
		minBackoff:     defaultMinBackoff,
		maxBackoff:     defaultMaxBackoff,
		deadLetterMax:  DefaultDeadLetterMaxBytes,
	}
}

// WithJournal sets the journal directory, overriding the default
// "publisher.journal" in the working directory. The directory is created if
// missing; the dead-letter log lives in its "dead-letter" subdirectory.
func WithJournal(dir string) Option {
	return func(c *config) { c.journal = dir }
}

// journalSyncEvery is the journal's default sync interval: a power cut
// loses at most about this much of what was written (BenchmarkProducer's
// journal=default and journal=never compare its cost).
const journalSyncEvery = 100 * time.Millisecond

// journalOptions returns the options of the journal's wal.Log: the
// producer's own, then WithWAL's. The journal does not pre-fault
// (wal.WithPrefault(false)): the writer, the sender, the client and the
// broker keep the cores busy, so the pre-faulting goroutine would only add
// work (BenchmarkProducer, interleaved, flush every 1000 records: CPU per
// 1 KiB record 20-33% lower without it, on kfake and on a real broker).
func (c *config) journalOptions() []wal.Option {
	return append([]wal.Option{wal.WithSync(wal.SyncEvery(journalSyncEvery)), wal.WithPrefault(false)},
		c.walOpts...)
}

// WithWAL passes options to the journal's wal.Log, after the producer's own:
// wal.WithSync(wal.SyncEvery(100ms)), so that a power cut loses at most
// about the last 100 ms of records written (a killed process loses none),
// and wal.WithPrefault(false).
// Pass wal.WithSync(wal.SyncAlways) to have Write return only once the
// record is on stable storage, or wal.WithSync(wal.SyncNever) to leave
// write-back to the kernel, as the reference does. wal.WithMaxBytes bounds
// the journal: Write then waits for room. The dead-letter log gets the same
// options, except that it uses 1 MiB segments and its own bound,
// DefaultDeadLetterMaxBytes. Repeated
// calls accumulate.
func WithWAL(opts ...wal.Option) Option {
	return func(c *config) { c.walOpts = append(c.walOpts, opts...) }
}

// WithClient passes options to the franz-go client, after the producer's
// own: the seed brokers of the URL, kgo.RequiredAcks(kgo.AllISRAcks()) (and
// so idempotent writes), kgo.MaxBufferedRecords set to the in-flight window,
// kgo.AllowAutoTopicCreation, the client's warnings and errors logged to
// WithLogger's logger, and the WithTLS and WithSASL settings. By default none are added. Options
// that weaken delivery (kgo.DisableIdempotentWrite, other acks, record
// retry limits or timeouts) are honoured but weaken the guarantees: failures
// they cause are retried, which may duplicate or reorder records. Hooks and
// partitioners they add see records whose byte slices the producer reuses
// once the record is confirmed: they must copy what they keep. Repeated
// calls accumulate.
func WithClient(opts ...kgo.Opt) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

// WithSASL authenticates with SASL, overriding the default of no
// authentication. mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512"
// (case-insensitive). Combine with WithTLS unless the network is trusted:
// PLAIN sends the password in the clear.
func WithSASL(mechanism, user, password string) Option {
	return func(c *config) {
		c.saslMechanism, c.saslUser, c.saslPass, c.saslSet = mechanism, user, password, true
	}
}

// WithTLS connects to the brokers with TLS using cfg (cloned), overriding the
// default of plaintext. A nil cfg means TLS with Go's defaults.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			cfg = new(tls.Config)
		}
		c.tls = cfg.Clone()
	}
}

// WithOnDelivery sets a function called once per record after the broker
// confirmed it and its acknowledgement was written to the journal (an
// acknowledgement the journal refused is retried after a backoff, and the
// call waits for it), overriding the default of none. It receives the record as produced, with
// Partition and Offset set by the client, and may keep it. Calls come from
// the producer's sender goroutine one at a time; a slow callback slows
// delivery, and the callback must not call Flush or Close (nor Write, if the
// journal has a wal.WithMaxBytes bound: it may wait for room that only the
// sender can make). Flush returns after the callbacks of the records it
// waited for. Records from an
// earlier run that this producer resends are reported too. Dead-lettered
// records are not delivered and not reported here (see WithOnDeadLetter).
func WithOnDelivery(fn func(r *kgo.Record)) Option {
	return func(c *config) { c.onDelivery = fn }
}

// WithOnDeadLetter sets a function called once per record moved to the
// dead-letter log, after the move, with the error that no retry can fix;
// the default is none (the move is logged and counted in Stats either way).
// Calls come from the sender goroutine, like WithOnDelivery's.
func WithOnDeadLetter(fn func(r *kgo.Record, err error)) Option {
	return func(c *config) { c.onDeadLetter = fn }
}

// WithLogger sets the logger for retries, dead letters and lifecycle events,
// and for the franz-go client's warnings and errors (a refused login, an
// unreachable broker), overriding the default, which discards everything.
// kgo.WithLogger through WithClient replaces the client's part.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithMaxInFlight bounds the records handed to the client and not yet
// confirmed, by count and by encoded bytes, overriding the defaults of
// 10000 records and 8 MiB (enough for the client to fill a request of
// 1 MB batches for several partitions while the previous one is in flight;
// raise it for brokers far away). Up to a quarter of the window more waits
// in memory between Write and the sender; everything beyond waits in the
// journal, not in memory. A record larger than bytes is still sent, alone.
func WithMaxInFlight(records, bytes int) Option {
	return func(c *config) { c.maxInFlight, c.maxInFlightLen = records, bytes }
}

// WithRetryBackoff sets the wait before a failed record is resent, doubling
// from minWait up to maxWait and reset by the next success, overriding the defaults
// of 100ms and 10s. Retriable errors are first retried inside the client,
// without this wait; the wait applies to failures it gives up on.
func WithRetryBackoff(minWait, maxWait time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = minWait, maxWait }
}

// target is what a producer URL names.
type target struct {
	brokers []string
	topic   string // may be ""
}

// ParseURL parses a producer URL, "kafka://host[:port][,host[:port]...][/topic]",
// as NewProducer does, and returns its brokers as host:port (DefaultPort
// where the URL names none) and its topic ("" if it names none). An error
// wraps ErrInvalidURL. A program can check a URL with it before it creates
// or touches anything.
func ParseURL(url string) (brokers []string, topic string, err error) {
	t, err := parseURL(url)
	return t.brokers, t.topic, err
}

// parseURL parses "kafka://host[:port][,host[:port]...][/topic]".
func parseURL(raw string) (target, error) {
	var t target
	bad := func(format string, args ...any) (target, error) {
		return target{}, fmt.Errorf("%w %q: %s", ErrInvalidURL, raw, fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.EqualFold(scheme, "kafka") {
		return bad("want kafka://host:port[,host:port...]/topic")
	}
	if strings.ContainsAny(rest, "?#") {
		return bad("query and fragment are not supported")
	}
	hosts, topic, _ := strings.Cut(rest, "/")
	if strings.Contains(hosts, "@") {
		return bad("credentials in the URL are not supported; use WithSASL")
	}
	if hosts == "" {
		return bad("no broker")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			return bad("empty broker address")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// A host alone gets the default port: a name or an IPv4
			// address, or an IPv6 address in one pair of brackets.
			switch inner, ok := strings.CutPrefix(h, "["); {
			case ok:
				inner, ok = strings.CutSuffix(inner, "]")
				if a, perr := netip.ParseAddr(inner); !ok || perr != nil || !a.Is6() {
					return bad("broker %q: want [IPv6 address] or [IPv6 address]:port", h)
				}
				host = inner
			case strings.ContainsAny(h, ":[]"):
				return bad("broker %q: %v", h, err)
			default:
				host = h
			}
			port = DefaultPort
		}
		if host == "" {
			return bad("broker %q has no host", h)
		}
		if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == '/' || r == '?' || r == '#' }) {
			return bad("broker %q: host has spaces or other characters no host name has", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("broker %q: port must be 1-65535", h)
		}
		t.brokers = append(t.brokers, net.JoinHostPort(host, port))
	}
	if topic != "" {
		if err := validTopic(topic); err != nil {
			return bad("%v", err)
		}
	}
	t.topic = topic
	return t, nil
}

// CheckTopic returns an error wrapping ErrInvalidTopic if Kafka refuses
// topic as a topic name, as Write does for a record's topic, and nil if
// not. A program can check a topic with it before it creates or touches
// anything.
func CheckTopic(topic string) error {
	if err := validTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTopic, err)
	}
	return nil
}

// validTopic applies Kafka's rules for topic names.
func validTopic(topic string) error {
	switch {
	case topic == "":
		return errors.New("empty topic")
	case topic == "." || topic == "..":
		return fmt.Errorf("topic %q is not allowed", topic)
	case len(topic) > maxTopicLen:
		return fmt.Errorf("topic is %d characters long, more than %d", len(topic), maxTopicLen)
	}
	for _, c := range topic {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q: only ASCII letters, digits, '.', '_' and '-' are allowed", topic)
		}
	}
	return nil
}

// validate checks every option in one place and fills in what defaults
// depend on.
func (c *config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	if c.journal == "" {
		return bad("WithJournal: empty directory")
	}
	if c.maxInFlight < 1 || c.maxInFlightLen < 1 {
		return bad("WithMaxInFlight(%d, %d): both must be positive", c.maxInFlight, c.maxInFlightLen)
	}
	if c.minBackoff <= 0 || c.maxBackoff < c.minBackoff {
		return bad("WithRetryBackoff(%v, %v): want 0 < min <= max", c.minBackoff, c.maxBackoff)
	}
	if c.saslSet {
		if c.saslUser == "" {
			return bad("WithSASL: empty user")
		}
		if _, err := c.saslMech(); err != nil {
			return bad("WithSASL: %v", err)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (c *config) saslMech() (sasl.Mechanism, error) {
	switch strings.ToUpper(c.saslMechanism) {
	case "PLAIN":
		return plain.Auth{User: c.saslUser, Pass: c.saslPass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.saslUser, Pass: c.saslPass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.saslUser, Pass: c.saslPass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.saslMechanism)
}

// clientOptions returns the producer's own client options, then the user's.
func (c *config) clientOptions(brokers []string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(c.maxInFlight),
		// A topic that does not exist yet is created where the broker
		// allows it (auto.create.topics.enable), as other clients do;
		// otherwise its records wait, retried, in the journal.
		kgo.AllowAutoTopicCreation(),
		// The client's warnings and errors (a refused SASL login, say)
		// go to the producer's logger.
		kgo.WithLogger(slogAdapter{c.logger}),
		// Tells the sender which partition each record went to.
		kgo.WithHooks(partHook{}),
	}
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls))
	}
	if c.saslSet {
		m, err := c.saslMech()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return append(opts, c.clientOpts...), nil
}

// slogAdapter logs the franz-go client's warnings and errors to a slog
// logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	a.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

// withAckFault sets a function the sender calls before each journal
// acknowledgement; an error it returns fails the acknowledgement (fault
// injection for tests).
func withAckFault(fn func() error) Option {
	return func(c *config) { c.ackFault = fn }
}

// withDeadLetterSyncFault sets a function the sender calls before each sync
// of the dead-letter log; an error it returns fails the sync, and the log
// stays usable, as after a sync whose files were synced but whose
// high-water mark found no room (fault injection for tests).
func withDeadLetterSyncFault(fn func() error) Option {
	return func(c *config) { c.dlSyncFault = fn }
}

// withAfterFull sets a function Write calls after the journal refused an
// append for room, before it looks at what the journal holds (fault
// injection for tests).
func withAfterFull(fn func()) Option {
	return func(c *config) { c.afterFull = fn }
}

// withJournalRead sets a function the sender calls with the seq of each
// record it reads back from the journal, rather than taking it from the
// handoff (tests).
func withJournalRead(fn func(seq uint64)) Option {
	return func(c *config) { c.journalRead = fn }
}

// withCommitInterval sets how long a transaction stays open under exactly
// once before it falls due by time (tests: with a long one, a transaction
// ends once it holds the in-flight window's worth of records, whatever
// the scheduling).
func withCommitInterval(d time.Duration) Option {
	return func(c *config) { c.commitInterval = d }
}

// withDeadLetterMax sets the dead-letter log's bound (tests).
func withDeadLetterMax(n int64) Option {
	return func(c *config) { c.deadLetterMax = n }
}
