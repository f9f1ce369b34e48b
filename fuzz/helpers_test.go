package fuzz

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/segment"
)

// segSize is the segment size of every log the tests write: the smallest
// the log allows.
const segSize = 64 << 10

// openOpts are the options every test opens a log with, so that the
// prepared next segment is small.
var openOpts = []wal.Option{wal.WithSegmentSize(segSize)}

// scratchDir returns a new empty directory, on tmpfs where there is one
// (the log syncs a lot, and the tests open thousands of logs), removed
// when the test ends.
func scratchDir(tb testing.TB) string {
	tb.Helper()
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "walpub-fuzz-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// rec is a record as Pending yields it.
type rec struct {
	Seq  uint64
	Data []byte
}

func (r rec) String() string { return fmt.Sprintf("%d:%x", r.Seq, xxhash.Sum64(r.Data)) }

// pendingOf collects l.Pending. It returns the records read before an
// error, and the error.
func pendingOf(l *wal.Log) ([]rec, error) {
	var out []rec
	for r, err := range l.Pending() {
		if err != nil {
			return out, err
		}
		out = append(out, rec{r.Seq, slices.Clone(r.Data)})
	}
	return out, nil
}

// viewPendingOf collects the unacknowledged records of a View.
func viewPendingOf(v *wal.View) ([]rec, error) {
	var out []rec
	for r, err := range v.Records(0, 0) {
		if err != nil {
			return out, err
		}
		if !r.Acked {
			out = append(out, rec{r.Seq, slices.Clone(r.Data)})
		}
	}
	return out, nil
}

func sameRecs(a, b []rec) bool {
	return slices.EqualFunc(a, b, func(x, y rec) bool { return x.Seq == y.Seq && bytes.Equal(x.Data, y.Data) })
}

func isCorruption(err error) bool {
	var ce *wal.CorruptionError
	return errors.As(err, &ce) && errors.Is(err, wal.ErrCorrupt)
}

// Outcomes of opening a damaged log.
const (
	detected = "detected" // a *wal.CorruptionError
	harmless = "harmless" // opened with exactly the original records
)

// viewCalls counts the damaged logs checked, to sample which failures
// OpenView is asked about too.
var viewCalls int

// viewSampled reports whether this failure of Open is checked with
// OpenView as well. OpenView looks at damage again a few times, 20 ms
// apart, before it reports it (a live writer may be finishing a frame), so
// it is asked about one failure in 64.
func viewSampled() bool {
	viewCalls++
	return viewCalls%64 == 1
}

// checkDamaged opens the log in dir with wal.Open and returns detected or
// harmless, or an error describing how the invariant broke: Open must fail
// with a *wal.CorruptionError or open and yield exactly want. When Open
// succeeds, wal.OpenView (after Close) must yield the same records; when
// it fails, OpenView (asked about a sample of failures, see viewSampled)
// must fail with a *wal.CorruptionError too.
func checkDamaged(dir string, want []rec) (outcome string, err error) {
	l, err := wal.Open(dir, openOpts...)
	if err != nil {
		if !isCorruption(err) {
			return "", fmt.Errorf("Open: error is not a *wal.CorruptionError: %T %v", err, err)
		}
		if viewSampled() {
			if v, verr := wal.OpenView(dir); verr == nil {
				v.Close()
				return "", fmt.Errorf("Open failed (%v) but OpenView succeeded", err)
			} else if !isCorruption(verr) {
				return "", fmt.Errorf("OpenView: error is not a *wal.CorruptionError: %T %v", verr, verr)
			}
		}
		return detected, nil
	}
	got, perr := pendingOf(l)
	cerr := l.Close()
	switch {
	case perr != nil:
		return "", fmt.Errorf("Open succeeded but Pending failed after %d records: %v", len(got), perr)
	case !sameRecs(got, want):
		return "", fmt.Errorf("Open: different records:\n got  %v\n want %v", got, want)
	case cerr != nil:
		return "", fmt.Errorf("Close: %v", cerr)
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		return "", fmt.Errorf("Open succeeded, but OpenView after it failed: %v", err)
	}
	viewRecs, verr := viewPendingOf(v)
	v.Close()
	if verr != nil || !sameRecs(viewRecs, want) {
		return "", fmt.Errorf("OpenView after Open: different records (%v):\n got  %v\n want %v", verr, viewRecs, want)
	}
	return harmless, nil
}

// snapshot is the content of a log directory: file name to bytes.
type snapshot map[string][]byte

func readSnapshot(tb testing.TB, dir string) snapshot {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	s := snapshot{}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		s[e.Name()] = b
	}
	return s
}

func (s snapshot) names() []string {
	var n []string
	for k := range s {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// restore makes dir hold exactly the files of s (LOCK aside), rewriting
// only the files that differ.
func (s snapshot) restore(tb testing.TB, dir string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if name == "LOCK" {
			continue
		}
		path := filepath.Join(dir, name)
		want, ok := s[name]
		if !ok || !e.Type().IsRegular() {
			if err := os.RemoveAll(path); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		seen[name] = true
		if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, want) {
			continue
		}
		if err := os.WriteFile(path, want, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	for name, b := range s {
		if !seen[name] {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// refFrame is a frame as refScan found it.
type refFrame struct {
	off     int64
	seq     uint64
	flags   uint32
	rawLen  uint32
	payload []byte
}

// refScan walks the frames of a segment file with its own reading of the
// format (package segment's doc), independent of segment.DecodeFrame: it
// stops at a zero header or the first frame whose checksum fails.
func refScan(b []byte) []refFrame {
	var out []refFrame
	for off := int64(segment.HeaderSize); ; {
		fr, ok := refFrameAt(b, off)
		if !ok {
			return out
		}
		out = append(out, fr)
		off += 32 + (int64(len(fr.payload))+7)&^7
	}
}

// refFrameAt reads the frame at off in b, if there is one whose checksum
// holds there.
func refFrameAt(b []byte, off int64) (refFrame, bool) {
	if off < segment.HeaderSize || off+32 > int64(len(b)) {
		return refFrame{}, false
	}
	h := b[off : off+32]
	if segment.AllZero(h) {
		return refFrame{}, false
	}
	n := int64(binary.LittleEndian.Uint32(h[8:]))
	if off+32+n > int64(len(b)) || binary.LittleEndian.Uint64(h) != segment.Checksum(b[off:], int(32+n)) {
		return refFrame{}, false
	}
	return refFrame{off: off, seq: binary.LittleEndian.Uint64(h[16:]),
		flags: binary.LittleEndian.Uint32(h[12:]), rawLen: binary.LittleEndian.Uint32(h[24:]),
		payload: b[off+32 : off+32+n]}, true
}

var (
	refDecOnce sync.Once
	refDec     *zstd.Decoder
)

// refDecode returns a frame's record bytes, decompressing with a decoder of
// its own.
func refDecode(fr refFrame) ([]byte, error) {
	if fr.flags&segment.FlagZstd == 0 {
		return fr.payload, nil
	}
	refDecOnce.Do(func() {
		refDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	})
	out, err := refDec.DecodeAll(fr.payload, nil)
	if err != nil {
		return nil, err
	}
	if len(out) != int(fr.rawLen) {
		return nil, fmt.Errorf("decodes to %d bytes, not %d", len(out), fr.rawLen)
	}
	return out, nil
}

// holdsEncrypted reports whether a segment file of files holds an
// encrypted record frame whose checksum holds (refScan).
func holdsEncrypted(files snapshot) bool {
	for name, b := range files {
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		for _, fr := range refScan(b) {
			if fr.flags&segment.FlagEncrypted != 0 && fr.flags&segment.FlagAck == 0 {
				return true
			}
		}
	}
	return false
}

// verifyAgainstFiles checks that every record of recs is a frame of one of
// the segment files in files (taken before the log was opened) whose
// checksum holds and whose bytes are the record's, and that the seqs
// ascend.
func verifyAgainstFiles(files snapshot, recs []rec) error {
	bySeq := map[uint64][]refFrame{}
	for name, b := range files {
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		for _, fr := range refScan(b) {
			if fr.flags&segment.FlagAck == 0 {
				bySeq[fr.seq] = append(bySeq[fr.seq], fr)
			}
		}
	}
	var prev uint64
	for i, r := range recs {
		if i > 0 && r.Seq <= prev {
			return fmt.Errorf("record %d: seq %d after %d", i, r.Seq, prev)
		}
		prev = r.Seq
		ok := false
		for _, fr := range bySeq[r.Seq] {
			if d, err := refDecode(fr); err == nil && bytes.Equal(d, r.Data) {
				ok = true
				break
			}
		}
		if !ok {
			return fmt.Errorf("record seq %d (%d bytes) matches no checksummed frame on disk", r.Seq, len(r.Data))
		}
	}
	return nil
}

// baseLog is testdata/baselog: a small real log (three segments, two of
// them compacted, acknowledgements in frames and in the checkpoint, a
// superblock) and the records it holds pending. TestGenerateSeeds writes
// it; it is committed so that FuzzLogDir's inputs, which name positions in
// its files, keep their meaning.
type baseLog struct {
	files   snapshot
	pending []rec
}

var (
	baseOnce sync.Once
	base     *baseLog
	baseErr  error
)

const baseLogDir = "testdata/baselog"

func loadBaseLog(tb testing.TB) *baseLog {
	tb.Helper()
	baseOnce.Do(func() { base, baseErr = readBaseLog(baseLogDir) })
	if baseErr != nil {
		tb.Fatalf("%v (regenerate with: go test ./fuzz -run TestGenerateSeeds -args -gen)", baseErr)
	}
	return base
}

// readBaseLog reads a log stored as its files with trailing zeros trimmed
// and a manifest giving each file's size and the pending records.
func readBaseLog(dir string) (*baseLog, error) {
	f, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bl := &baseLog{files: snapshot{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 0 || strings.HasPrefix(fs[0], "#"):
		case fs[0] == "file" && len(fs) == 3:
			size, err := strconv.Atoi(fs[2])
			if err != nil {
				return nil, err
			}
			b, err := os.ReadFile(filepath.Join(dir, fs[1]))
			if err != nil {
				return nil, err
			}
			if len(b) > size {
				return nil, fmt.Errorf("%s: %d bytes, manifest says %d", fs[1], len(b), size)
			}
			full := make([]byte, size)
			copy(full, b)
			bl.files[fs[1]] = full
		case fs[0] == "pending" && len(fs) == 3:
			seq, err := strconv.ParseUint(fs[1], 10, 64)
			if err != nil {
				return nil, err
			}
			d, err := hex.DecodeString(fs[2])
			if err != nil {
				return nil, err
			}
			bl.pending = append(bl.pending, rec{seq, d})
		default:
			return nil, fmt.Errorf("MANIFEST: bad line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(bl.files) == 0 {
		return nil, fmt.Errorf("%s: no files", dir)
	}
	return bl, nil
}

// writeBaseLog stores the log in src and its pending records in dir.
func writeBaseLog(dir string, files snapshot, pending []rec) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var m bytes.Buffer
	m.WriteString("# The base log of FuzzLogDir and TestExhaustiveBitFlips, written by\n")
	m.WriteString("# TestGenerateSeeds: each file with its trailing zeros trimmed, its full size,\n")
	m.WriteString("# and the records it holds pending (seq, hex bytes).\n")
	for _, name := range files.names() {
		b := files[name]
		fmt.Fprintf(&m, "file %s %d\n", name, len(b))
		if err := os.WriteFile(filepath.Join(dir, name), bytes.TrimRight(b, "\x00"), 0o644); err != nil {
			return err
		}
	}
	for _, r := range pending {
		fmt.Fprintf(&m, "pending %d %x\n", r.Seq, r.Data)
	}
	return os.WriteFile(filepath.Join(dir, "MANIFEST"), m.Bytes(), 0o644)
}

// dataEnd returns the offset just past the last non-zero byte of a
// segment file, rounded up to the frame alignment.
func dataEnd(b []byte) int {
	n := int(segment.LastNonZero(b, 0))
	return (n + segment.Align - 1) &^ (segment.Align - 1)
}
