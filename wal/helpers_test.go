package wal

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// smallSeg is the smallest segment size, used by most tests so that a few
// hundred records span many segments.
const smallSeg = 64 << 10

func mustOpen(t testing.TB, dir string, opts ...Option) *Log {
	t.Helper()
	l, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	// Closed however the test ends (a second Close is harmless), so that
	// a failed test leaks no goroutine and its directory can be removed.
	t.Cleanup(func() { l.Close() })
	return l
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// randRecord returns a record of n bytes, compressible or not at random.
func randRecord(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	if r.IntN(2) == 0 {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	word := fmt.Sprintf("record-%d-", r.IntN(1000))
	for i := 0; i < n; i += len(word) {
		copy(b[i:], word)
	}
	return b
}

// randSize is a record size: mostly 0..20 KiB, sometimes larger than a
// 64 KiB segment.
func randSize(r *rand.Rand) int {
	switch x := r.IntN(100); {
	case x < 3:
		return 64<<10 + r.IntN(96<<10)
	case x < 10:
		return r.IntN(64)
	default:
		return r.IntN(20 << 10)
	}
}

// model is what a log should hold: every record written and which of them
// are acknowledged.
type model struct {
	data  map[uint64][]byte
	acked map[uint64]bool
}

func newModel() *model { return &model{data: map[uint64][]byte{}, acked: map[uint64]bool{}} }

func (m *model) pending() []uint64 {
	var s []uint64
	for q := range m.data {
		if !m.acked[q] {
			s = append(s, q)
		}
	}
	slices.Sort(s)
	return s
}

func (m *model) pendingBytes() int64 {
	var n int64
	for q, d := range m.data {
		if !m.acked[q] {
			n += int64(len(d))
		}
	}
	return n
}

// appendRandom appends n random records through Append and AppendBatch.
func (m *model) appendRandom(t testing.TB, l *Log, r *rand.Rand, n int) {
	t.Helper()
	for n > 0 {
		if r.IntN(3) == 0 {
			k := min(n, 1+r.IntN(8))
			batch := make([][]byte, k)
			for i := range batch {
				batch[i] = randRecord(r, randSize(r)/k)
			}
			next := l.Stats().NextSeq
			first, err := l.AppendBatch(batch)
			if err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
			if first != next {
				t.Fatalf("AppendBatch returned %d, want %d", first, next)
			}
			for i, d := range batch {
				m.data[first+uint64(i)] = d
			}
			n -= k
			continue
		}
		d := randRecord(r, randSize(r))
		next := l.Stats().NextSeq
		seq, err := l.Append(d)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq != next {
			t.Fatalf("Append returned %d, want %d", seq, next)
		}
		m.data[seq] = d
		n--
	}
}

// appendAck appends d and records it, then acknowledges it if ack.
func (m *model) appendAck(t testing.TB, l *Log, d []byte, ack bool) uint64 {
	t.Helper()
	q, err := l.Append(d)
	if err != nil {
		t.Fatal(err)
	}
	m.data[q] = d
	if ack {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		m.acked[q] = true
	}
	return q
}

// checkReopened checks the log l, open on dir with opts, against the
// model, closes it, and checks and closes it again after a reopen.
func (m *model) checkReopened(t testing.TB, l *Log, dir string, opts ...Option) {
	t.Helper()
	m.check(t, l)
	mustClose(t, l)
	l = mustOpen(t, dir, opts...)
	m.check(t, l)
	mustClose(t, l)
}

// check compares the log with the model: Pending, Get and Stats.
func (m *model) check(t testing.TB, l *Log) {
	t.Helper()
	want := m.pending()
	got := pendingOf(t, l)
	if len(got) != len(want) {
		t.Fatalf("Pending has %d records, want %d (first missing/extra: %v)", len(got), len(want), diffSeqs(got, want))
	}
	for i, q := range want {
		if got[i].Seq != q {
			t.Fatalf("Pending[%d] is seq %d, want %d", i, got[i].Seq, q)
		}
		if !bytes.Equal(got[i].Data, m.data[q]) {
			t.Fatalf("Pending seq %d: %d bytes differ from the %d written", q, len(got[i].Data), len(m.data[q]))
		}
	}
	for q, d := range m.data {
		g, err := l.Get(q)
		if m.acked[q] {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%d) of an acknowledged record: %v, want ErrNotFound", q, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get(%d): %v", q, err)
		}
		if !bytes.Equal(g, d) {
			t.Fatalf("Get(%d): %d bytes differ from the %d written", q, len(g), len(d))
		}
	}
	// GetRange, a call at a time, finds the records Pending yields.
	ranged := getRangeAll(t, l, 0, 16<<10)
	if len(ranged) != len(want) {
		t.Fatalf("GetRange found %d records, want %d (first missing/extra: %v)", len(ranged), len(want), diffSeqs(ranged, want))
	}
	for i, q := range want {
		if ranged[i].Seq != q || !bytes.Equal(ranged[i].Data, m.data[q]) {
			t.Fatalf("GetRange's record %d is seq %d (%d bytes), want seq %d (%d bytes)", i, ranged[i].Seq, len(ranged[i].Data), q, len(m.data[q]))
		}
	}
	st := l.Stats()
	if st.Pending != len(want) || st.PendingBytes != m.pendingBytes() {
		t.Fatalf("Stats: Pending %d PendingBytes %d, want %d %d", st.Pending, st.PendingBytes, len(want), m.pendingBytes())
	}
}

func diffSeqs(got []Record, want []uint64) string {
	g := map[uint64]bool{}
	for _, r := range got {
		g[r.Seq] = true
	}
	w := map[uint64]bool{}
	for _, q := range want {
		w[q] = true
	}
	var missing, extra []uint64
	for q := range w {
		if !g[q] {
			missing = append(missing, q)
		}
	}
	for q := range g {
		if !w[q] {
			extra = append(extra, q)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("missing %v extra %v", head(missing), head(extra))
}

func head(s []uint64) []uint64 { return s[:min(len(s), 10)] }

// pendingOf returns copies of the pending records, checking that the seqs
// ascend.
func pendingOf(t testing.TB, l *Log) []Record {
	t.Helper()
	recs, err := collectPending(l)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	return recs
}

func collectPending(l *Log) ([]Record, error) {
	var recs []Record
	for r, err := range l.Pending() {
		if err != nil {
			return recs, err
		}
		if n := len(recs); n > 0 && recs[n-1].Seq >= r.Seq {
			return recs, fmt.Errorf("Pending yielded seq %d after %d", r.Seq, recs[n-1].Seq)
		}
		recs = append(recs, Record{Seq: r.Seq, Data: bytes.Clone(r.Data)})
	}
	return recs, nil
}

// snapshot is a log directory's files by name.
type snapshot map[string][]byte

// readDir reads every regular file of dir: a copy of the log as a killed
// process would leave it (the mappings are the page cache). The log's
// background work may change files while they are read, so it reads until
// two reads in a row agree: a consistent snapshot.
func readDir(t testing.TB, dir string) snapshot {
	t.Helper()
	prev := readDirOnce(t, dir)
	for range 1000 {
		s := readDirOnce(t, dir)
		if s.equal(prev) {
			return s
		}
		prev = s
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s never stopped changing", dir)
	return nil
}

func readDirOnce(t testing.TB, dir string) snapshot {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing; the next read decides
		}
		if err != nil {
			t.Fatal(err)
		}
		s[e.Name()] = b
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return maps.EqualFunc(s, o, bytes.Equal)
}

// write lays the snapshot out in a new directory and returns it.
func (s snapshot) write(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range s {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// data returns the snapshot without the lock file and temporary files,
// which hold no data.
func (s snapshot) data() snapshot {
	c := snapshot{}
	for k, v := range s {
		if k != lockName && !strings.HasSuffix(k, tmpExt) {
			c[k] = v
		}
	}
	return c
}

func (s snapshot) clone() snapshot {
	c := snapshot{}
	for k, v := range s {
		c[k] = bytes.Clone(v)
	}
	return c
}

func (s snapshot) names() []string { return slices.Sorted(maps.Keys(s)) }

// segNames returns the segment file names of the snapshot, ascending.
func (s snapshot) segNames() []string {
	var n []string
	for _, name := range s.names() {
		if strings.HasSuffix(name, segment.Ext) {
			n = append(n, name)
		}
	}
	return n
}

// copyDir copies the regular files of src into dst.
func copyDir(t testing.TB, src, dst string) string {
	t.Helper()
	return readDir(t, src).write(t, dst)
}

// segFiles returns the paths of the segment files in dir, ascending.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// readSegment reads the segment file at path and decodes its header.
func readSegment(t testing.TB, path string) ([]byte, segment.Header) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := segment.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// framesOf decodes the frames of a segment file's bytes up to the end of
// the data.
func framesOf(t testing.TB, b []byte) []segment.Frame {
	t.Helper()
	var fs []segment.Frame
	sc := segment.NewScanner(b, segment.HeaderSize)
	for sc.Next() {
		fs = append(fs, sc.Frame())
	}
	if !sc.AtEnd() {
		t.Fatalf("frame at %d: %v", sc.Offset(), sc.Err())
	}
	return fs
}

// dataEnd is the offset just past the last frame of a segment's bytes.
func dataEnd(t testing.TB, b []byte) int64 {
	fs := framesOf(t, b)
	if len(fs) == 0 {
		return segment.HeaderSize
	}
	return fs[len(fs)-1].End()
}

// asCorruption checks that err is a *CorruptionError matching ErrCorrupt
// and naming a file of dir.
func asCorruption(t testing.TB, err error, dir string) *CorruptionError {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v (%T), want a *CorruptionError", err, err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("errors.Is(%v, ErrCorrupt) is false", err)
	}
	if filepath.Dir(ce.Path) != filepath.Clean(dir) {
		t.Fatalf("CorruptionError names %s, outside %s", ce.Path, dir)
	}
	name := filepath.Base(ce.Path)
	if !strings.HasSuffix(name, segment.Ext) && name != index.CheckpointName && name != index.SuperblockName && name != index.EncryptionName {
		t.Fatalf("CorruptionError names %s, not a file of the log", ce.Path)
	}
	if ce.Offset < 0 {
		t.Fatalf("CorruptionError offset %d", ce.Offset)
	}
	if fi, err := os.Stat(ce.Path); err == nil && ce.Offset > fi.Size() {
		t.Fatalf("CorruptionError offset %d past the end of %s (%d bytes)", ce.Offset, ce.Path, fi.Size())
	}
	if ce.Error() == "" || !strings.HasPrefix(ce.Error(), "wal: ") {
		t.Fatalf("CorruptionError message %q", ce.Error())
	}
	return ce
}

// eventually polls cond until it holds or a generous deadline passes. It
// is not a timing assertion: the deadline only bounds a hung test.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// getRangeAll calls GetRange from seq from on, up to the log's next seq,
// maxBytes at a time, and returns what the calls found; each call must
// make progress and return seqs ascending, from its from up to its next.
func getRangeAll(t testing.TB, l *Log, from uint64, maxBytes int) []Record {
	t.Helper()
	var all []Record
	end := l.Stats().NextSeq
	for q := from; q < end; {
		recs, next, err := l.GetRange(nil, q, end, maxBytes)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", q, end, err)
		}
		if next <= q || next > end {
			t.Fatalf("GetRange(%d, %d) goes on from %d", q, end, next)
		}
		last := q
		for i, r := range recs {
			if r.Seq < last || i > 0 && r.Seq == last || r.Seq >= next {
				t.Fatalf("GetRange(%d, %d) returned seq %d after %d, going on from %d", q, end, r.Seq, last, next)
			}
			last = r.Seq
		}
		all = append(all, recs...)
		q = next
	}
	return all
}
