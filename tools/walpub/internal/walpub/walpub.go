// Package walpub implements the walpub command: publish lines or files to
// Kafka through the robust producer (adapter/kafka), which journals every
// record before sending it and resends what an earlier run left
// unconfirmed. With no broker URL it starts an embedded broker (franz-go's
// kfake) on loopback, publishes to it, and reads the topic back.
//
// Main writes to the writers of the Env it is given and returns the exit
// status, so that tests run it directly.
package walpub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/adapter/kafka/hop"
	"github.com/walpub/walpub/tools/internal/binding"
	"github.com/walpub/walpub/tools/internal/cliutil"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
)

// Exit statuses.
const (
	ExitOK          = 0 // every record confirmed by the broker
	ExitError       = 1 // an error: journal unusable, input unreadable, records refused (dead-lettered)
	ExitUsage       = 2 // bad command line
	ExitUnconfirmed = 3 // records remain unconfirmed in the journal; the next run sends them first
	// After an interrupt (SIGINT, SIGTERM) with every record read so far
	// confirmed, the status is 128 + the signal number, as a shell reports it.
)

// SASLEnv is the environment variable read for --sasl when the flag is
// not given.
const SASLEnv = "WALPUB_SASL"

// DefaultTopic is the embedded broker's topic when --topic is not given.
const DefaultTopic = "walpub"

// Env is what Main needs from its process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer // the summary
	Stderr io.Writer // progress, notes, errors
	// Getenv reads the environment; nil reads none.
	Getenv func(string) string
	// Signals delivers interrupt requests (SIGINT, SIGTERM): the first
	// stops reading input and starts the drain, the second ends the
	// drain at once. nil: no interrupts.
	Signals <-chan os.Signal
	// StderrTerminal makes progress show by default.
	StderrTerminal bool
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(k)
}

const usage = `walpub publishes lines or files to Kafka through the robust producer:
every record is journaled on disk before it is sent and acknowledged in the
journal once the broker confirms it; what a run leaves unconfirmed, the
next run with the same journal sends first.

Usage:
  walpub [flags] [kafka://[USER@]host:port[,host:port...]/topic] [FILE...]

Each line of the FILEs (standard input when there are none, or for "-")
becomes one record, without its line ending ("\n" or "\r\n"); --whole
makes each FILE one record. Every record gets a 16-byte random "_id"
header, stable across resends, for consumers to drop duplicates. A topic
that does not exist is created if the broker allows it (as kcat does).

For hop-client's consumers (SCiMMA's Hopskotch), --hop-format FORMAT marks
every record as hop does: a "_format" header (json, blob, voevent, avro,
gcntextnotice, circular, external, or a plugin's format) and a "_sender"
header with the SASL user name. Each record is checked against the format
where that can be told (json must parse, voevent must be XML with a
voe:VOEvent root, ...): at the first record that does not fit, walpub stops
reading, names the file and line, sends what it had journaled, and exits 1.
--test adds hop's "_test" header (hop's consumers skip such messages).
--header refuses hop's own headers (_format, _sender, _test) and "_id".

Without --sasl (and $WALPUB_SASL), walpub reads hop-client's credentials
($XDG_CONFIG_HOME/hop/auth.toml or ~/.config/hop/auth.toml) and uses the
one hop would use for the URL's first broker: its user and password, and
TLS unless it says SASL_PLAINTEXT. kafka://USER@host:port/topic chooses
among several, as in hop. --no-hop-auth connects without them.

With no URL, walpub starts an embedded Kafka broker (franz-go's kfake, in
memory) on 127.0.0.1 with the topic --topic, publishes to it, then reads
the topic back and reports how many records landed, and how many of them
are duplicates (a record sent again, which at least once allows; with
--exactly-once a duplicate is an error). Nothing to install:
  seq 100000 | walpub
The journal remembers where its records are bound (the URL's brokers, or
the embedded broker): the embedded broker refuses a journal holding records
for another (exit 2), which would otherwise vanish with it.

At the end of the input walpub waits for the broker's confirmations as long
as they keep coming; when none has come for --drain-timeout it gives up.
Ctrl-C (or SIGTERM) stops reading input and waits at most --drain-timeout;
a second Ctrl-C stops waiting at once (the lines already read are
journaled first). Unconfirmed records stay in the journal. walpub does not
wait for a read that the interrupt finds waiting for input (a pipe or
terminal): should it return lines after all, they are named on stderr as
not journaled, and the exit status is 1.
Progress (sent, confirmed, pending, rate) goes to stderr every second when
stderr is a terminal or with --progress; a summary line to stdout.

The journal holds the records in plain text unless --journal-key-file
names a key file: then each record is encrypted (AES-256-GCM) before it
is journaled, and the journal (its dead-letter log too) opens only with
that key from then on. walcat dump --key-file reads it back.

Exit status: 0 every record confirmed; 1 error (including records the
broker refused for good, which move to JOURNAL/dead-letter); 2 usage error;
3 records remain unconfirmed in the journal (run walpub again to send them);
130/143 interrupted by SIGINT/SIGTERM, everything read so far confirmed
(every line read is journaled; a line whose end was not read yet is not,
and is named on stderr).

Examples:
  seq 100000 | walpub                              # embedded broker
  walpub kafka://localhost:9092/events events.log  # one record per line
  walpub --whole kafka://localhost:9092/docs *.json
  walpub --key host1 --header src=syslog kafka://broker:9092/logs < /var/log/syslog
  WALPUB_SASL=SCRAM-SHA-512:alice:secret walpub --tls kafka://broker:9093/t file
  walpub --hop-format json kafka://localhost:9092/alerts alerts.jsonl
  walpub --hop-format json kafka://alice@kafka.scimma.org/alerts a.jsonl   # hop's credential for alice
  walpub kafka://localhost:9092/events </dev/null  # only resend what is journaled
  walcat stats publisher.journal                   # look inside the journal
  umask 077; openssl rand -hex 32 > journal.key    # a key file (keep it apart from the journal)
  walpub --journal-key-file journal.key kafka://localhost:9092/events events.log

Flags:
`

// headerFlag collects repeated --header k=v.
type headerFlag []kgo.RecordHeader

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*h = append(*h, kgo.RecordHeader{Key: k, Value: []byte(v)})
	return nil
}

// config is the parsed command line.
type config struct {
	url          string // "" for the embedded broker
	files        []string
	journal      string
	topic        string
	key          *string
	keyDelim     string
	headers      headerFlag
	whole        bool
	sync         wal.SyncPolicy
	syncText     string
	sasl         string
	tls          bool
	tlsCA        string
	tlsConfig    *tls.Config // with tls: the roots of tlsCA, if given
	progress     bool
	drainTimeout time.Duration
	partitions   int
	verbose      bool
	hopFormat    string
	hopTest      bool
	noHopAuth    bool
	// The SASL credential: --sasl's (or $WALPUB_SASL's), or hop's.
	saslMech, saslUser, saslPass string
	hopAuth                      string // where hop's credential came from, for a note
	urlUser                      string // the USER of kafka://USER@host/..., to choose hop's credential
	exactlyOnce                  bool
	journalKeyFile               string
	journalKey                   []byte // read from journalKeyFile
	// recHeaders are the headers of every record: --header's, then hop's.
	recHeaders []kgo.RecordHeader
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	cliutil.PrintFlags(w, fs, func(f *flag.Flag) bool { return f.Name == "progress" })
}

// parseArgs parses the command line. It returns ok false with the exit
// status when Main must stop (after --help, or a usage error it printed).
func parseArgs(args []string, env Env) (cfg config, code int, ok bool) {
	fs := flag.NewFlagSet("walpub", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var key string
	fs.StringVar(&cfg.journal, "journal", kafka.DefaultJournal, "the journal `directory` (created if missing)")
	fs.StringVar(&cfg.journalKeyFile, "journal-key-file", "", "encrypt the journal (AES-256-GCM) with the key in `FILE`, "+cliutil.KeyFileHelp+"; a journal once encrypted needs it from then on")
	fs.StringVar(&cfg.topic, "topic", "", "the `topic`, overriding the URL's (embedded broker: default \""+DefaultTopic+"\")")
	fs.StringVar(&key, "key", "", "the record `key` of every record (default: no key)")
	fs.StringVar(&cfg.keyDelim, "key-delim", "", "split each line at the first `SEP`: the key before it, the value after it")
	fs.Var(&cfg.headers, "header", "add the header `KEY=VALUE` to every record (repeatable)")
	fs.BoolVar(&cfg.whole, "whole", false, "each FILE (or all of standard input) is one record")
	fs.StringVar(&cfg.syncText, "sync", "every=100ms", "journal sync `policy`: every=DURATION (a power cut loses at most about the last DURATION of records read; a killed process loses none), always (each record on stable storage before the next is read: one sync per record, slow; a pipe or terminal is read no further than the line at hand, a regular file ahead, which takes nothing from it), or never (survives a killed process, not a power cut)")
	fs.StringVar(&cfg.sasl, "sasl", "", "SASL `MECH:USER:PASSWORD`, MECH one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (default: $"+SASLEnv+" with a broker URL)")
	fs.BoolVar(&cfg.tls, "tls", false, "connect with TLS, verifying the broker with the system's roots")
	fs.StringVar(&cfg.tlsCA, "tls-ca", "", "verify the broker with the CA certificates in `FILE` (PEM); implies --tls")
	fs.BoolVar(&cfg.progress, "progress", env.StderrTerminal, "show progress on stderr (default: when stderr is a terminal)")
	fs.DurationVar(&cfg.drainTimeout, "drain-timeout", 30*time.Second, "at the end of the input: give up after this `duration` without a confirmation; after Ctrl-C: wait at most this long (0: no limit)")
	fs.IntVar(&cfg.partitions, "partitions", 1, "embedded broker only: the topic's number of partitions, `N` (at most 10000)")
	fs.BoolVar(&cfg.verbose, "v", false, "log the producer's events (retries, resends) to stderr")
	fs.StringVar(&cfg.hopFormat, "hop-format", "", "mark every record as a hop-client message of `FORMAT` (json, blob, voevent, avro, gcntextnotice, ...): the _format and _sender headers; inputs are checked against it")
	fs.BoolVar(&cfg.noHopAuth, "no-hop-auth", false, "do not read hop-client's credentials (auth.toml) when --sasl is not given")
	fs.BoolVar(&cfg.exactlyOnce, "exactly-once", false, "publish in Kafka transactions under the journal's transactional ID, so that read_committed consumers see each record once, also after a crash (see the README)")
	fs.BoolVar(&cfg.hopTest, "test", false, "mark every record as a hop test message (the _test header), which hop's consumers skip by default")

	usageErr := func(format string, a ...any) (config, int, bool) {
		fmt.Fprintf(env.Stderr, "walpub: "+format+"\n", a...)
		fmt.Fprintln(env.Stderr, `Run "walpub --help" for usage.`)
		return config{}, ExitUsage, false
	}
	// Flags may come after the URL and the files.
	pos, err := cliutil.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(env.Stdout, fs)
		return config{}, ExitOK, false
	}
	if err != nil {
		return usageErr("%v", err)
	}
	partitionsSet, keyDelimSet := false, false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "key":
			cfg.key = &key
		case "partitions":
			partitionsSet = true
		case "key-delim":
			keyDelimSet = true
		}
	})
	for _, p := range pos {
		if len(p) >= 8 && strings.EqualFold(p[:8], "kafka://") {
			if cfg.url != "" {
				return usageErr("two broker URLs: %s and %s", cfg.url, p)
			}
			cfg.url = p
			continue
		}
		cfg.files = append(cfg.files, p)
	}
	if keyDelimSet && cfg.keyDelim == "" {
		return usageErr("--key-delim \"\": want a separator of one byte or more")
	}
	if cfg.key != nil && cfg.keyDelim != "" {
		return usageErr("--key and --key-delim exclude each other")
	}
	if cfg.whole && cfg.keyDelim != "" {
		return usageErr("--key-delim splits lines; it does not go with --whole")
	}
	if cfg.sync, err = parseSync(cfg.syncText); err != nil {
		return usageErr("--sync: %v", err)
	}
	if cfg.journalKeyFile != "" {
		if cfg.journalKey, err = cliutil.ReadKeyFile(cfg.journalKeyFile); err != nil {
			return usageErr("--journal-key-file: %v", err)
		}
	}
	if cfg.sasl == "" && cfg.url != "" {
		// Not for the embedded broker, which uses no SASL: the variable
		// is the default of --sasl, exported for a real broker.
		cfg.sasl = env.getenv(SASLEnv)
	}
	if cfg.sasl != "" {
		if cfg.saslMech, cfg.saslUser, cfg.saslPass, err = parseSASL(cfg.sasl); err != nil {
			return usageErr("--sasl (or $%s): %v", SASLEnv, err)
		}
	}
	if cfg.tlsCA != "" {
		cfg.tls = true
	}
	if cfg.url != "" {
		// Checked here, as every flag is, before the journal is touched.
		user, rest, err := hop.SplitURLUser(cfg.url)
		if err != nil {
			return usageErr("%v", err)
		}
		if _, _, err := kafka.ParseURL(rest); err != nil {
			return usageErr("%v", err)
		}
		cfg.url, cfg.urlUser = rest, user
	}
	if code, ok := cfg.hopCredential(env, usageErr); !ok {
		return config{}, code, false
	}
	for _, h := range cfg.headers {
		if h.Key == hop.HeaderID {
			// One _id for every record: consumers that drop duplicates
			// by it (hop's) would keep one record.
			return usageErr("--header %s: every record gets its own, chosen at Write", h.Key)
		}
	}
	if code, ok := cfg.hopMarks(usageErr); !ok {
		return config{}, code, false
	}
	if cfg.url == "" && (cfg.sasl != "" || cfg.tls) {
		return usageErr("--sasl and --tls need a broker URL; the embedded broker uses neither")
	}
	if cfg.tls {
		cfg.tlsConfig = &tls.Config{}
		if cfg.tlsCA != "" {
			pem, err := os.ReadFile(cfg.tlsCA)
			if err != nil {
				return usageErr("--tls-ca: %v", err)
			}
			cfg.tlsConfig.RootCAs = x509.NewCertPool()
			if !cfg.tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
				return usageErr("--tls-ca: no PEM certificate in %s", cfg.tlsCA)
			}
		}
	}
	if cfg.url != "" && partitionsSet {
		return usageErr("--partitions sets the embedded broker's topic; with a broker URL the topic has the partitions the broker gave it")
	}
	if cfg.partitions < 1 || cfg.partitions > maxPartitions {
		return usageErr("--partitions %d: want 1 to %d", cfg.partitions, maxPartitions)
	}
	if cfg.drainTimeout < 0 {
		return usageErr("--drain-timeout %v: want 0 or more", cfg.drainTimeout)
	}
	if cfg.topic != "" {
		if err := kafka.CheckTopic(cfg.topic); err != nil {
			return usageErr("--topic: %v", err)
		}
	}
	if cfg.url == "" && cfg.topic == "" {
		cfg.topic = DefaultTopic
	}
	if cfg.url != "" && urlTopic(cfg.url) == "" && cfg.topic == "" {
		return usageErr("the URL %s names no topic: add /TOPIC or --topic", cfg.url)
	}
	for _, f := range cfg.files {
		if f == "-" {
			continue
		}
		if fi, err := os.Stat(f); err != nil {
			return usageErr("%v", err)
		} else if fi.IsDir() {
			return usageErr("%s is a directory", f)
		}
	}
	return cfg, ExitOK, true
}

// hopMarks checks --hop-format and --test and sets cfg.recHeaders.
func (cfg *config) hopMarks(usageErr func(string, ...any) (config, int, bool)) (int, bool) {
	for _, h := range cfg.headers {
		// hop's own headers come from --hop-format and --test, checked:
		// given by hand, a _format is not checked against the records
		// (hop's consumer raises on a record its format does not fit),
		// and any _test, even "false", has hop's consumers skip the
		// record.
		if h.Key == hop.HeaderFormat || h.Key == hop.HeaderTest || h.Key == hop.HeaderSender {
			_, code, _ := usageErr("--header %s: walpub sets hop's headers itself (--hop-format, --test; _sender from the SASL user)", h.Key)
			return code, false
		}
	}
	cfg.recHeaders = cfg.headers
	if cfg.hopFormat == "" && !cfg.hopTest {
		return 0, true
	}
	cfg.hopFormat = strings.ToLower(cfg.hopFormat)
	if strings.ContainsFunc(cfg.hopFormat, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}) {
		_, code, _ := usageErr("--hop-format %q: want a format name such as json or blob", cfg.hopFormat)
		return code, false
	}
	if cfg.hopFormat == hop.FormatAvro && !cfg.whole {
		_, code, _ := usageErr("--hop-format avro: Avro files are binary, not lines: add --whole")
		return code, false
	}
	m := hop.Marks{Format: cfg.hopFormat, Test: cfg.hopTest, Sender: cfg.saslUser}
	cfg.recHeaders = append(slices.Clone(cfg.headers), m.Headers()...)
	return 0, true
}

// hopCredential, without --sasl, $WALPUB_SASL and --no-hop-auth, reads
// hop-client's auth.toml and chooses the credential hop would choose for
// the URL's first broker and user (kafka://USER@host/...): its SASL user and password, and TLS unless it
// says SASL_PLAINTEXT (verified with its ssl_ca_location, unless --tls-ca
// names another CA file).
func (cfg *config) hopCredential(env Env, usageErr func(string, ...any) (config, int, bool)) (int, bool) {
	fail := func(format string, a ...any) (int, bool) {
		_, code, _ := usageErr(format, a...)
		return code, false
	}
	if cfg.url == "" {
		return 0, true
	}
	user, rest := cfg.urlUser, cfg.url
	if cfg.sasl != "" || cfg.noHopAuth {
		if user != "" {
			return fail("the URL's user %q chooses a credential from hop's auth.toml: leave it out with --sasl, $%s or --no-hop-auth", user, SASLEnv)
		}
		return 0, true
	}
	creds, path, err := hop.LoadDefaultAuth(env.getenv)
	if err != nil {
		return fail("hop-client's credentials: %v (--no-hop-auth ignores them)", err)
	}
	if creds == nil {
		if user != "" {
			return fail("the URL's user %q chooses a credential from hop's auth.toml, but there is none (%s)", user, hop.AuthPath(env.getenv))
		}
		return 0, true
	}
	hosts, _, _ := strings.Cut(rest[len("kafka://"):], "/")
	broker, _, _ := strings.Cut(hosts, ",")
	c, err := hop.SelectCredential(creds, broker, user)
	if err != nil {
		return fail("%s: %v (--sasl gives another, --no-hop-auth connects without)", path, err)
	}
	if cfg.saslMech, err = c.SASLMechanism(); err != nil {
		return fail("%s: %v; give --sasl instead", path, err)
	}
	cfg.saslUser, cfg.saslPass = c.Username, c.Password
	how := cfg.saslMech
	if c.TLS() {
		cfg.tls = true
		if cfg.tlsCA == "" {
			cfg.tlsCA = c.SSLCALocation
		}
		how += " over TLS"
	}
	cfg.hopAuth = fmt.Sprintf("hop credential %q for %s from %s (%s)", c.Username, broker, path, how)
	return 0, true
}

// urlTopic returns the topic of a kafka:// URL, "" if it names none.
func urlTopic(url string) string {
	_, topic, _ := strings.Cut(url[len("kafka://"):], "/")
	return topic
}

func parseSync(s string) (wal.SyncPolicy, error) {
	switch {
	case s == "never":
		return wal.SyncNever, nil
	case s == "always":
		return wal.SyncAlways, nil
	case strings.HasPrefix(s, "every="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "every="))
		if err != nil || d <= 0 {
			return wal.SyncPolicy{}, fmt.Errorf("%q: want every=DURATION with a positive duration, such as every=10ms", s)
		}
		return wal.SyncEvery(d), nil
	}
	return wal.SyncPolicy{}, fmt.Errorf("%q: want never, always or every=DURATION", s)
}

// parseSASL splits MECH:USER:PASSWORD; the password may contain colons.
func parseSASL(s string) (mech, user, pass string, err error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", errors.New("want MECH:USER:PASSWORD")
	}
	switch strings.ToUpper(parts[0]) {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return "", "", "", fmt.Errorf("mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", parts[0])
	}
	return parts[0], parts[1], parts[2], nil
}

// run is one walpub invocation.
type run struct {
	cfg    config
	env    Env
	start  time.Time
	broker *kfake.Cluster // the embedded broker, or nil

	keyBytes []byte       // --key
	written  atomic.Int64 // records whose Write returned
	reading  atomic.Int64 // the index in cfg.files of the file being read
	leftover int          // unconfirmed records of an earlier run, at the start

	interrupted chan struct{} // closed at the first signal
	aborted     chan struct{} // closed at the second signal
	hand        handoff       // from the reader to publish
	signal      atomic.Value  // the first os.Signal
	intrAt      atomic.Int64  // unix nanos of the first signal
}

// notef prints a note on stderr, over the progress line on a terminal.
func (r *run) notef(format string, a ...any) {
	prefix := ""
	if r.cfg.progress && r.env.StderrTerminal {
		prefix = "\r\033[K"
	}
	fmt.Fprintf(r.env.Stderr, prefix+"walpub: "+format+"\n", a...)
}

// Main runs walpub with args (without the program name) and returns the
// exit status. Cancelling ctx is like a second interrupt: walpub stops at
// once, leaving what is unconfirmed in the journal.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	env.Stderr = &lockedWriter{w: env.Stderr}
	cfg, code, ok := parseArgs(args, env)
	if !ok {
		return code
	}
	r := &run{cfg: cfg, env: env, start: time.Now(),
		interrupted: make(chan struct{}), aborted: make(chan struct{}), hand: newHandoff()}
	r.hand.wake = sync.NewCond(&r.hand.mu)
	if cfg.key != nil {
		r.keyBytes = []byte(*cfg.key)
	}
	stopSignals := r.watchSignals(ctx)
	defer stopSignals()
	return r.main()
}

// watchSignals turns env.Signals and ctx into the interrupted and aborted
// channels. The returned function stops the watcher and waits for it.
func (r *run) watchSignals(ctx context.Context) func() {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		n := 0
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				r.interrupt(nil)
				if n < 2 {
					close(r.aborted)
				}
				<-done
				return
			case s := <-r.env.Signals:
				n++
				switch n {
				case 1:
					r.interrupt(s)
				case 2:
					close(r.aborted)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

func (r *run) interrupt(s os.Signal) {
	select {
	case <-r.interrupted:
		return
	default:
	}
	if s != nil {
		r.signal.Store(s)
	}
	r.intrAt.Store(time.Now().UnixNano())
	close(r.interrupted)
	if s != nil {
		wait := "as long as it takes"
		if r.cfg.drainTimeout > 0 {
			wait = "at most " + r.cfg.drainTimeout.String()
		}
		r.notef("%v: no more input; waiting %s for confirmations (again to stop now)", s, wait)
	}
}

func (r *run) isInterrupted() bool {
	select {
	case <-r.interrupted:
		return true
	default:
		return false
	}
}

// maxPartitions bounds --partitions: the embedded broker holds each
// partition in memory.
const maxPartitions = 10000

func (r *run) main() int {
	cfg := r.cfg
	url := cfg.url
	unlock, code, ok := r.lockBinding()
	if !ok {
		return code
	}
	defer unlock()
	if code, ok := r.bindJournal(); !ok {
		return code
	}
	if url == "" {
		if code, ok := r.checkEmbeddedJournal(); !ok {
			return code
		}
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(cfg.partitions), cfg.topic),
			kfake.AllowAutoTopicCreation())
		if err != nil {
			r.notef("starting the embedded broker: %v", err)
			return ExitError
		}
		defer c.Close()
		r.broker = c
		url = "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/" + cfg.topic
		r.notef("embedded Kafka broker (kfake) on %s, topic %q", strings.Join(c.ListenAddrs(), ","), cfg.topic)
	}
	if cfg.hopAuth != "" {
		r.notef("%s", cfg.hopAuth)
	}
	p, err := kafka.NewProducer(url, r.producerOptions()...)
	if err != nil {
		return r.reportOpenError(err)
	}
	st := p.Stats()
	r.leftover = st.Queued + st.InFlight
	if r.leftover > 0 {
		r.notef("sending first the %d records an earlier run left unconfirmed in %s", r.leftover, cfg.journal)
	}
	stopProgress := r.startProgress(p)
	inputErr := r.publish(p)
	closeErr := r.drain(p)
	r.joinReader()
	stopProgress()
	return r.finish(p, inputErr, closeErr)
}

// repairAdvice says what mends the damage ce in the journal.
func (r *run) repairAdvice(ce *wal.CorruptionError) string {
	j := r.cfg.journal
	key := ""
	// The key only for a journal that is encrypted: walcat repair refuses
	// one for a journal that is not (--journal-key-file would have
	// encrypted it from now on, but the damage came first). Its
	// encryption file tells; a journal that lost it (a repair moved it
	// aside) gets the advice without, and walcat asks for the key where
	// it needs it.
	if _, err := os.Stat(filepath.Join(j, index.EncryptionName)); err == nil && r.cfg.journalKeyFile != "" {
		key = "--key-file " + r.cfg.journalKeyFile + " "
	}
	switch ce.Fix() {
	case wal.FixByHand:
		return fmt.Sprintf("move %s out of the journal's directory, or put the file itself there: walcat repair does not change it", ce.Path)
	case wal.FixCut:
		return fmt.Sprintf(`"walcat verify %s" shows the damage; "walcat repair %s--requeue %s" cuts the journal there and appends again every record after the damage that still reads whole (the next run sends them; the damaged record is lost), keeping the cut bytes in a side file`, j, key, j)
	}
	return fmt.Sprintf(`"walcat verify %s" shows the damage; "walcat repair %s%s" mends it, keeping what it moves in a side file (records already confirmed may be sent again, none is lost)`, j, key, j)
}

func (r *run) reportOpenError(err error) int {
	var ce *wal.CorruptionError
	switch {
	case errors.As(err, &ce):
		r.notef("the journal %s is damaged: %s at offset %d: %s", r.cfg.journal, ce.Path, ce.Offset, ce.Reason)
		r.notef("%s", r.repairAdvice(ce))
	case errors.Is(err, wal.ErrLocked):
		r.notef("the journal %s is in use by another process (another walpub?); wait for it or use --journal", r.cfg.journal)
	case errors.Is(err, wal.ErrKey) && r.cfg.journalKey == nil:
		r.notef("the journal %s is encrypted: give its key with --journal-key-file FILE", r.cfg.journal)
	case errors.Is(err, wal.ErrKey):
		r.notef("the journal %s is encrypted under another key than the one in %s", r.cfg.journal, r.cfg.journalKeyFile)
	case errors.Is(err, kafka.ErrInvalidURL):
		r.notef("%v", err)
		return ExitUsage
	default:
		r.notef("%v", err)
	}
	return ExitError
}

func (r *run) producerOptions() []kafka.Option {
	cfg := r.cfg
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(r.env.Stderr, &slog.HandlerOptions{Level: level}))
	opts := []kafka.Option{
		kafka.WithJournal(cfg.journal),
		kafka.WithWAL(wal.WithSync(cfg.sync)),
		kafka.WithLogger(logger),
		// Like kcat: a missing topic is created if the broker allows it
		// (auto.create.topics.enable); otherwise records wait, retried.
		kafka.WithClient(kgo.AllowAutoTopicCreation()),
	}
	if cfg.saslUser != "" {
		opts = append(opts, kafka.WithSASL(cfg.saslMech, cfg.saslUser, cfg.saslPass))
	}
	if cfg.tls {
		opts = append(opts, kafka.WithTLS(cfg.tlsConfig))
	}
	if cfg.exactlyOnce {
		opts = append(opts, kafka.WithExactlyOnce(""))
	}
	if cfg.journalKey != nil {
		opts = append(opts, kafka.WithWAL(wal.WithEncryption(cfg.journalKey)))
	}
	if cfg.verbose {
		opts = append(opts, kafka.WithClient(kgo.WithLogger(kgo.BasicLogger(r.env.Stderr, kgo.LogLevelInfo, nil))))
	}
	return opts
}

// boundTo returns what a run with cfg binds its records to (see package
// binding).
func (c *config) boundTo() string {
	if c.url == "" {
		return binding.Embedded
	}
	_, rest, _ := strings.Cut(c.url, "://")
	hosts, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hosts, '@'); i >= 0 {
		hosts = hosts[i+1:] // hop's USER@
	}
	list := strings.Split(hosts, ",")
	slices.Sort(list)
	return strings.Join(list, ",")
}

// lockBinding takes, for the whole run, an exclusive lock of the
// journal's binding (binding.Lock): a run that would find the journal in
// use must not read or rewrite its binding first, or a run for the
// embedded broker could rebind records another run is journaling for a
// real one (and swallow them later).
func (r *run) lockBinding() (unlock func(), code int, ok bool) {
	unlock, err := binding.Lock(r.cfg.journal)
	switch {
	case errors.Is(err, binding.ErrBusy):
		return nil, r.reportOpenError(wal.ErrLocked), false
	case err != nil:
		r.notef("locking the journal's binding: %v", err)
		return nil, ExitError, false
	}
	return unlock, 0, true
}

// bindJournal records where this run's records are bound before any is
// journaled, and refuses to let the embedded broker take records an earlier
// run journaled for another cluster (or for a place the journal does not
// name): the in-memory broker would confirm them, the journal would forget
// them, and they would be gone when walpub exits.
func (r *run) bindJournal() (int, bool) {
	dir := r.cfg.journal
	want := r.cfg.boundTo()
	had, err := binding.Read(dir)
	if err != nil {
		r.notef("reading the journal's binding: %v", err)
		return ExitError, false
	}
	if had == want {
		return 0, true
	}
	if want == binding.Embedded || had == binding.Embedded {
		v, err := wal.OpenView(dir) // the directory exists: lockBinding made it
		if err != nil {
			return r.reportOpenError(err), false
		}
		pending := v.Info().Pending
		v.Close()
		if pending > 0 && had == binding.Embedded {
			// Left by a run on the embedded broker (a trial, say): sent
			// to a real cluster they would land where nobody meant them.
			r.notef("the journal %s holds %d records journaled for the embedded broker; they are not sent to %s", dir, pending, want)
			r.notef("drop them (walpub --journal %s </dev/null lets the embedded broker take them, with the earlier run's --topic if it had one) or use another --journal", dir)
			return ExitUsage, false
		}
		if pending > 0 && want == binding.Embedded {
			where := "a broker the journal does not name (it was written by another program or an older walpub)"
			if had != "" {
				where = "the brokers " + had
			}
			r.notef("the journal %s holds %d records journaled for %s; the embedded broker would swallow them", dir, pending, where)
			r.notef("send them there (walpub kafka://HOST:PORT/TOPIC </dev/null) or use another --journal")
			return ExitUsage, false
		}
	}
	if err := binding.Write(dir, want); err != nil {
		r.notef("recording the journal's binding: %v", err)
		return ExitError, false
	}
	return 0, true
}

// checkEmbeddedJournal refuses to hand an in-memory broker the records an
// earlier run left for another topic: the embedded broker would confirm
// them and the journal would forget them, and the read-back would not see
// them. They are for the embedded broker (bindJournal refused others): a
// run with their --topic takes them.
func (r *run) checkEmbeddedJournal() (int, bool) {
	if _, err := os.Stat(r.cfg.journal); err != nil {
		return 0, true // a new journal; NewProducer reports other trouble
	}
	v, err := wal.OpenView(r.cfg.journal)
	if err != nil {
		return r.reportOpenError(err), false
	}
	defer v.Close()
	if v.Info().Encrypted {
		err := wal.ErrKey
		if r.cfg.journalKey != nil {
			err = v.SetKey(r.cfg.journalKey)
		}
		if err != nil {
			return r.reportOpenError(err), false
		}
	}
	others := map[string]int{}
	for rec, err := range v.Records(0, 0) {
		if err != nil {
			return r.reportOpenError(err), false
		}
		if rec.Acked {
			continue
		}
		k, err := kafka.DecodeRecord(rec.Data)
		if err != nil {
			others["(not a journal record)"]++
			continue
		}
		if k.Topic != r.cfg.topic {
			others[k.Topic]++
		}
	}
	if len(others) == 0 {
		return 0, true
	}
	var list []string
	for t, n := range others {
		list = append(list, fmt.Sprintf("%d for %q", n, t))
	}
	slices.Sort(list)
	r.notef("the journal %s holds records an earlier run left unconfirmed (%s); the embedded broker would swallow them",
		r.cfg.journal, strings.Join(list, ", "))
	if _, bad := others["(not a journal record)"]; len(others) == 1 && !bad {
		for t := range others {
			r.notef("walpub --journal %s --topic %s </dev/null lets the embedded broker take them; or use another --journal", r.cfg.journal, t)
		}
	} else {
		r.notef("use another --journal")
	}
	return ExitError, false
}

// signalCode is the exit status after an interrupt with nothing left.
func (r *run) signalCode() int {
	if s, ok := r.signal.Load().(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}
