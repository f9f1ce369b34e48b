package wal

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// Option configures Open. Options are validated together by Open.
type Option func(*config)

// SyncPolicy says when appended data reaches stable storage.
type SyncPolicy struct {
	kind  syncKind
	every time.Duration
}

type syncKind uint8

const (
	syncNever syncKind = iota
	syncAlways
	syncEvery
)

var (
	// SyncNever leaves write-back to the operating system: the mapping is
	// the page cache, so every returned Append survives a killed process,
	// but not a power cut or kernel crash. Sync and Close still sync.
	SyncNever = SyncPolicy{kind: syncNever}
	// SyncAlways returns from Append, AppendBatch and Ack only after the
	// data is on stable storage. Concurrent callers share one sync (group
	// commit).
	SyncAlways = SyncPolicy{kind: syncAlways}
)

// SyncEvery syncs in the background at most d after an append. A power
// cut loses at most the last d of appends. d must be positive.
func SyncEvery(d time.Duration) SyncPolicy { return SyncPolicy{kind: syncEvery, every: d} }

func (p SyncPolicy) String() string {
	switch p.kind {
	case syncAlways:
		return "always"
	case syncEvery:
		return "every " + p.every.String()
	default:
		return "never"
	}
}

// Compression selects per-record compression.
type Compression int

const (
	// CompressionNone stores payloads as they are.
	CompressionNone Compression = iota
	// CompressionZstd compresses each record with zstd and keeps the
	// compressed form only when it is smaller. A log reads back whatever
	// compression it was written with, whatever it is reopened with.
	CompressionZstd
)

// DefaultSegmentSize is the size of a segment file unless WithSegmentSize
// says otherwise.
const DefaultSegmentSize = 64 << 20

type config struct {
	segmentSize int64
	sync        SyncPolicy
	compression Compression
	maxBytes    int64
	noPrefault  bool // WithPrefault(false)
	fileMode    fs.FileMode
	logger      *slog.Logger
	fs          vfs.FS
	// ticker starts the SyncEvery syncer's ticker of period d: its
	// channel and its stop function.
	ticker  func(d time.Duration) (<-chan time.Time, func())
	encrypt bool   // WithEncryption was given
	key     []byte // its key, a copy
}

func defaultConfig() config {
	return config{
		segmentSize: DefaultSegmentSize,
		sync:        SyncNever,
		fileMode:    0o600,
		logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		fs:          vfs.OS,
		ticker:      realTicker,
	}
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (c *config) validate() error {
	switch {
	case c.segmentSize < segment.MinSize || c.segmentSize > segment.MaxSize:
		return fmt.Errorf("wal: segment size %d outside [%d, %d]", c.segmentSize, segment.MinSize, int64(segment.MaxSize))
	case c.sync.kind == syncEvery && c.sync.every <= 0:
		return fmt.Errorf("wal: SyncEvery needs a positive interval, got %v", c.sync.every)
	case c.sync.kind > syncEvery:
		return fmt.Errorf("wal: unknown sync policy")
	case c.compression != CompressionNone && c.compression != CompressionZstd:
		return fmt.Errorf("wal: unknown compression %d", c.compression)
	case c.maxBytes < 0:
		return fmt.Errorf("wal: negative max bytes %d", c.maxBytes)
	case c.fileMode&^fs.ModePerm != 0:
		return fmt.Errorf("wal: file mode %v has bits other than permissions", c.fileMode)
	case c.encrypt && len(c.key) != segment.KeySize:
		return fmt.Errorf("wal: encryption key is %d bytes, want %d", len(c.key), segment.KeySize)
	}
	// Segment sizes are page multiples so that mappings line up.
	c.segmentSize = segment.PageAlign(c.segmentSize)
	return nil
}

// WithSegmentSize sets the size of new segment files (default 64 MiB, at
// least 64 KiB, rounded up to a multiple of 4 KiB). Each segment is
// allocated in full, then mapped. Existing segments keep their size. A
// record or batch larger than a segment gets a segment of its own, sized
// to fit.
func WithSegmentSize(bytes int64) Option { return func(c *config) { c.segmentSize = bytes } }

// WithSync sets the sync policy (default SyncNever).
func WithSync(p SyncPolicy) Option { return func(c *config) { c.sync = p } }

// WithCompression sets the compression of new records (default
// CompressionNone).
func WithCompression(comp Compression) Option { return func(c *config) { c.compression = comp } }

// WithMaxBytes bounds the payload bytes (uncompressed) of unacknowledged
// records: an Append that would exceed it returns ErrFull. 0, the
// default, means unlimited.
func WithMaxBytes(bytes int64) Option { return func(c *config) { c.maxBytes = bytes } }

// WithPrefault sets whether a background goroutine faults in the pages
// ahead of the writer (default true), so that an append rarely takes a
// page fault on the caller's thread: the fault's work moves to another
// core. Pre-faulting adds work of its own, though (pages faulted in for
// reading still take a write-protect fault at their first store), so where
// no core is idle (a process that keeps every core busy, such as the Kafka
// producer's journal) it costs more CPU than it saves. With false, each
// page's first store faults it in on the appending thread, and the page
// cache may hold the pages in large folios whatever the sync policy.
// The same goroutine, where the caller syncs often (SyncAlways,
// SyncEvery, or Sync every few MiB), writes zeros over the blocks ahead
// of the writer and writes them back, so that a sync finds them written
// and costs the file system no journal commit (about 40% less time per
// fdatasync of a small batch on ext4); with false it does not.
// Durability and the format are the same either way.
func WithPrefault(on bool) Option { return func(c *config) { c.noPrefault = !on } }

// WithFileMode sets the permissions of every file the log creates
// (default 0o600). A directory Open creates is 0o700.
func WithFileMode(m fs.FileMode) Option { return func(c *config) { c.fileMode = m } }

// WithLogger sets where the log reports recoveries, compactions and
// errors (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithEncryption encrypts every record appended from now on with
// AES-256-GCM under key, which must be 32 bytes (default: no encryption).
// Each record's payload (after compression) is sealed with a fresh random
// nonce; its seq, lengths and compression flag are authenticated with it.
// Checksums keep covering the stored bytes, so Verify, OpenView and Repair
// work without the key. The log keeps no reference to key.
//
// The first Open with a key writes the file "encryption" (a key check,
// which does not reveal the key): from then on Open without the key, or
// with another, fails with ErrKey before it changes anything. Records a
// log held before it was first opened with a key stay as they were,
// unencrypted and readable, until they are acknowledged and reclaimed;
// Open logs that it found some. See the README ("Encryption at rest") for
// what this protects and what it does not, and the bound of 2^32 records
// a key.
func WithEncryption(key []byte) Option {
	k := slices.Clone(key)
	return func(c *config) { c.encrypt, c.key = true, k }
}

// withFS replaces the file system, for fault injection in tests.
func withFS(fsys vfs.FS) Option { return func(c *config) { c.fs = fsys } }

// withTicker replaces the SyncEvery syncer's ticker, for tests that check
// its period and drive its ticks.
func withTicker(f func(d time.Duration) (<-chan time.Time, func())) Option {
	return func(c *config) { c.ticker = f }
}
