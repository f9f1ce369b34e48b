package walcat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/tools/internal/logtest"
	"github.com/walpub/walpub/wal"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files with the current output")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is what one walcat run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// walcat runs Main with args.
func walcat(t *testing.T, args ...string) result {
	t.Helper()
	return walcatCtx(t, context.Background(), args...)
}

func walcatCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(ctx, args, &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

// normalize replaces the test's directories in output with stable names
// and the side file's time stamp with a placeholder.
var sideFileTime = regexp.MustCompile(`repair-\d{8}T\d{6}\.\d{9}Z\.cut`)

func normalize(s string, dirs map[string]string) string {
	for dir, name := range dirs {
		s = strings.ReplaceAll(s, dir, name)
	}
	return sideFileTime.ReplaceAllString(s, "repair-TIME.cut")
}

// golden compares got with testdata/name.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// openLog opens a wal.Log with 64 KiB segments.
func openLog(t *testing.T, dir string, opts ...wal.Option) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, append([]wal.Option{wal.WithSegmentSize(64 << 10)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAppend(t *testing.T, l *wal.Log, data []byte) uint64 {
	t.Helper()
	seq, err := l.Append(data)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// bigPayload is n bytes of "record NN " repeated.
func bigPayload(i, n int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("record %02d ", i)), n/10+1)[:n]
}

// buildPlainLog writes a deterministic log of two segments: short text,
// binary and empty payloads, a batch, UTF-8, and 3000-byte records that
// make the log rotate; seqs 1, 2, 3 and 10 are acknowledged.
func buildPlainLog(t *testing.T, dir string) {
	t.Helper()
	l := openLog(t, dir)
	mustAppend(t, l, []byte("hello"))
	mustAppend(t, l, []byte("world"))
	mustAppend(t, l, []byte{0x00, 0x01, 0xfe, 0xff})
	mustAppend(t, l, []byte{})
	if _, err := l.AppendBatch([][]byte{[]byte("b1"), []byte("b2"), []byte("b3")}); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, []byte("héllo wörld ✓"))
	for i := 9; i < 9+24; i++ {
		mustAppend(t, l, bigPayload(i, 3000))
	}
	if err := l.Ack(1, 2, 3, 10); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// buildCompressedLog writes a zstd log: compressible records (stored
// compressed) and incompressible ones (stored as they are).
func buildCompressedLog(t *testing.T, dir string) {
	t.Helper()
	l := openLog(t, dir, wal.WithCompression(wal.CompressionZstd))
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 300)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	mustAppend(t, l, bytes.Repeat([]byte("abc"), 1000))
	mustAppend(t, l, []byte("hi"))
	mustAppend(t, l, noise)
	mustAppend(t, l, bigPayload(4, 5000))
	if _, err := l.AppendBatch([][]byte{bytes.Repeat([]byte("x"), 500), []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Ack(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// recordAt returns where seq is stored.
func recordAt(t *testing.T, dir string, seq uint64) wal.RecordInfo {
	return logtest.RecordAt(t, dir, seq)
}

// buildDamagedLog is the plain log with one payload byte of seq 5 (in the
// first, sealed segment) flipped.
func buildDamagedLog(t *testing.T, dir string) {
	t.Helper()
	buildPlainLog(t, dir)
	r := recordAt(t, dir, 5)
	testutil.FlipByte(t, r.Path, r.Offset+32)
}

// buildLostCheckpointLog writes a log of three segments whose second one,
// which held the ack frame of seq 1, was reclaimed once its own records
// were all acknowledged; then it removes the checkpoint, the only record
// left of seq 1's acknowledgement.
func buildLostCheckpointLog(t *testing.T, dir string) {
	t.Helper()
	l := openLog(t, dir)
	i := 0
	var opened uint64 // the record that opened the current segment
	appendUntil := func(segs int) (seqs []uint64) {
		if opened != 0 {
			seqs = append(seqs, opened)
		}
		for l.Stats().Segments < segs {
			i++
			seqs = append(seqs, mustAppend(t, l, bigPayload(i, 3000)))
		}
		opened = seqs[len(seqs)-1]
		return seqs[:len(seqs)-1] // the records of the segment just sealed
	}
	appendUntil(2)
	if err := l.Ack(1); err != nil { // the ack frame lands in segment 2
		t.Fatal(err)
	}
	seg2 := appendUntil(3)
	if err := l.Ack(seg2...); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "00000000000000000002.seg")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("segment 2 was not reclaimed")
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "checkpoint")); err != nil {
		t.Fatal(err)
	}
}

// buildTornLog is the plain log with garbage after the end of the data
// of its last segment, as a write cut short by a crash leaves it.
func buildTornLog(t *testing.T, dir string) {
	t.Helper()
	buildPlainLog(t, dir)
	v, err := wal.OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := v.Info()
	v.Close()
	last := in.Segments[len(in.Segments)-1]
	f, err := os.OpenFile(last.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("half a frame..."), last.DataEnd); err != nil {
		t.Fatal(err)
	}
}

// fileState is what the read-only guarantee compares: content, size,
// modification time and mode of every file under a directory.
type fileState struct {
	sum   [32]byte
	size  int64
	mtime time.Time
	mode  fs.FileMode
}

func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			st.sum = sha256.Sum256(b)
		}
		m[path] = st
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compareSnapshots(t *testing.T, what string, before, after map[string]fileState) {
	t.Helper()
	for path, b := range before {
		a, ok := after[path]
		switch {
		case !ok:
			t.Errorf("%s removed %s", what, path)
		case a != b:
			t.Errorf("%s changed %s: before %+v, after %+v", what, path, b, a)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s created %s", what, path)
		}
	}
}

// keyFiles writes two key files into dir: keyFile holds key, other
// another key.
func keyFiles(t *testing.T, dir string) (key []byte, keyFile, other string) {
	t.Helper()
	key = bytes.Repeat([]byte{3}, 32)
	keyFile, other = filepath.Join(dir, "k"), filepath.Join(dir, "other")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("03", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(strings.Repeat("04", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, keyFile, other
}

// pendingRecords decodes the pending records of the producer journal in
// dir; a record that does not decode fails the test.
func pendingRecords(t *testing.T, dir string, opts ...wal.Option) []*kgo.Record {
	t.Helper()
	l := openLog(t, dir, opts...)
	defer l.Close()
	var recs []*kgo.Record
	for rec, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		r, err := kafka.DecodeRecord(rec.Data)
		if err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		recs = append(recs, r)
	}
	return recs
}
