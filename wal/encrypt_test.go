package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// testKey and otherKey are two 32-byte keys.
var (
	testKey  = bytes.Repeat([]byte{0x5a}, segment.KeySize)
	otherKey = bytes.Repeat([]byte{0xa5}, segment.KeySize)
)

// marker is a byte string every test record holds, so that finding it in
// a file means a record is stored in plain text.
const marker = "PLAINTEXT-MARKER"

// markedRecord returns a record of n bytes (n >= len(marker)) holding
// marker, compressible when compressible is set.
func markedRecord(r *rand.Rand, n int, compressible bool) []byte {
	b := make([]byte, n)
	if compressible {
		for i := range b {
			b[i] = "abcd"[i%4]
		}
	} else {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	copy(b, marker)
	return b
}

// checkAllEncrypted checks that every record frame in dir's segments is
// encrypted, and that no file holds the marker.
func checkAllEncrypted(t testing.TB, dir string) {
	t.Helper()
	s := readDir(t, dir)
	for name, b := range s {
		if bytes.Contains(b, []byte(marker)) {
			t.Fatalf("%s holds a record in plain text", name)
		}
	}
	for _, name := range s.segNames() {
		b := s[name]
		sc := segment.NewScanner(b, segment.HeaderSize)
		for sc.Next() {
			if fr := sc.Frame(); !fr.IsAck() && !fr.Encrypted() {
				t.Fatalf("%s: frame of seq %d at %d is not encrypted", name, fr.Seq, fr.Offset)
			}
		}
	}
}

// nonces returns the nonce of every encrypted record frame in dir, by seq
// (a seq may have several: a leftover of a merge), and the count.
func nonces(t testing.TB, dir string) (map[uint64][][]byte, int) {
	t.Helper()
	out := map[uint64][][]byte{}
	n := 0
	for _, path := range segFiles(t, dir) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range framesOf(t, b) {
			if nc := segment.Nonce(fr); nc != nil {
				out[fr.Seq] = append(out[fr.Seq], bytes.Clone(nc))
				n++
			}
		}
	}
	return out, n
}

// TestEncryptRoundTrip appends encrypted records (single and batched,
// sizes from empty to larger than a segment, with and without zstd),
// reads them back with Get and Pending before and after a reopen, has
// compaction copy them, and checks that no record is on disk in plain
// text.
func TestEncryptRoundTrip(t *testing.T) {
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		t.Run(fmt.Sprintf("compression=%d", comp), func(t *testing.T) {
			dir := t.TempDir()
			opts := []Option{WithSegmentSize(smallSeg), WithCompression(comp), WithEncryption(testKey)}
			l := mustOpen(t, dir, opts...)
			r := rand.New(rand.NewPCG(1, uint64(comp)))
			want := map[uint64][]byte{}
			add := func(q uint64, d []byte) { want[q] = d }
			for i := range 300 {
				n := []int{16, 100, 1024, 3000, 40 << 10, 100 << 10}[i%6]
				if i%6 == 5 && i > 12 {
					n = 200 // a few oversized records only
				}
				d := markedRecord(r, n, i%2 == 0)
				if i%7 == 0 {
					batch := [][]byte{d, markedRecord(r, 50, true), markedRecord(r, 2000, false)}
					q, err := l.AppendBatch(batch)
					if err != nil {
						t.Fatal(err)
					}
					for j, b := range batch {
						add(q+uint64(j), b)
					}
					continue
				}
				q, err := l.Append(d)
				if err != nil {
					t.Fatal(err)
				}
				add(q, d)
			}
			// An empty record has no marker; it must round-trip too.
			q, err := l.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			want[q] = []byte{}
			check := func(l *Log, what string) {
				t.Helper()
				for q, d := range want {
					got, err := l.Get(q)
					if err != nil || !bytes.Equal(got, d) {
						t.Fatalf("%s: Get(%d): %d bytes, %v; want %d bytes", what, q, len(got), err, len(d))
					}
				}
				n := 0
				for rec, err := range l.Pending() {
					if err != nil {
						t.Fatalf("%s: Pending: %v", what, err)
					}
					if !bytes.Equal(rec.Data, want[rec.Seq]) {
						t.Fatalf("%s: Pending seq %d: %d bytes, want %d", what, rec.Seq, len(rec.Data), len(want[rec.Seq]))
					}
					n++
				}
				if n != len(want) {
					t.Fatalf("%s: Pending yielded %d records, want %d", what, n, len(want))
				}
			}
			check(l, "written")
			mustClose(t, l)
			checkAllEncrypted(t, dir)
			if _, err := os.Stat(filepath.Join(dir, index.EncryptionName)); err != nil {
				t.Fatalf("no encryption file: %v", err)
			}

			l = mustOpen(t, dir, opts...)
			check(l, "reopened")
			// Acknowledge most records: compaction copies the rest.
			before, _ := nonces(t, dir)
			for q := range want {
				if q%5 != 0 {
					if err := l.Ack(q); err != nil {
						t.Fatal(err)
					}
					delete(want, q)
				}
			}
			eventually(t, "a compacted segment", func() bool {
				for _, path := range segFiles(t, dir) {
					if b, err := os.ReadFile(path); err == nil {
						if h, err := segment.DecodeHeader(b); err == nil && h.Compacted() {
							return true
						}
					}
				}
				return false
			})
			check(l, "compacted")
			mustClose(t, l)
			checkAllEncrypted(t, dir)
			// Compaction copies the sealed payloads as they are: a
			// compacted record keeps its nonce, and no new one is used.
			after, _ := nonces(t, dir)
			for q := range want {
				if len(after[q]) == 0 || len(before[q]) == 0 || !bytes.Equal(after[q][0], before[q][0]) {
					t.Fatalf("seq %d: nonce %x after compaction, %x before", q, after[q], before[q])
				}
			}
			l = mustOpen(t, dir, opts...)
			check(l, "reopened after compaction")
			mustClose(t, l)
		})
	}
}

// TestEncryptKeyRefused checks that an encrypted log refuses Open without
// its key and with another key (ErrKey), changing nothing on disk, and
// that OpenView and Verify work without the key.
func TestEncryptKeyRefused(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithEncryption(testKey))
	r := rand.New(rand.NewPCG(2, 2))
	for range 50 {
		if _, err := l.Append(markedRecord(r, 500, false)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	// A leftover temporary file, which an Open that goes ahead removes.
	if err := os.WriteFile(filepath.Join(dir, "next-9.seg"+tmpExt), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := readDir(t, dir)
	for name, opts := range map[string][]Option{
		"no key":    nil,
		"other key": {WithEncryption(otherKey)},
	} {
		l, err := Open(dir, opts...)
		if !errors.Is(err, ErrKey) {
			if err == nil {
				l.Close()
			}
			t.Fatalf("%s: Open: %v, want ErrKey", name, err)
		}
		if after := readDir(t, dir); !after.data().equal(before.data()) || after[lockName] == nil && before[lockName] != nil {
			t.Fatalf("%s: a refused Open changed the directory", name)
		}
		if _, ok := readDir(t, dir)["next-9.seg"+tmpExt]; !ok {
			t.Fatalf("%s: a refused Open removed a temporary file", name)
		}
	}
	if l, err := Open(dir, WithEncryption(testKey[:16])); err == nil || errors.Is(err, ErrKey) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("Open with a 16-byte key: %v, want a key size error", err)
	}
	// Without the key: verified and described, data not revealed.
	if err := Verify(dir); err != nil {
		t.Fatalf("Verify without the key: %v", err)
	}
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	in := v.Info()
	if !in.Encrypted || in.EncryptedRecords != 50 || in.Records != 50 {
		t.Fatalf("Info: encrypted %v, %d of %d records encrypted; want all 50", in.Encrypted, in.EncryptedRecords, in.Records)
	}
	for rec, err := range v.Records(0, 0) {
		if err != nil || !rec.Encrypted || rec.Data != nil {
			t.Fatalf("Records without the key: seq %d encrypted %v, %d bytes of data, %v", rec.Seq, rec.Encrypted, len(rec.Data), err)
		}
	}
	if err := v.SetKey(otherKey); !errors.Is(err, ErrKey) {
		t.Fatalf("SetKey(other key): %v, want ErrKey", err)
	}
	if err := v.SetKey(testKey); err != nil {
		t.Fatal(err)
	}
	n := 0
	for rec, err := range v.Records(0, 0) {
		if err != nil || !bytes.HasPrefix(rec.Data, []byte(marker)) {
			t.Fatalf("Records with the key: seq %d: %q..., %v", rec.Seq, rec.Data[:min(len(rec.Data), 16)], err)
		}
		n++
	}
	if n != 50 {
		t.Fatalf("Records with the key yielded %d records, want 50", n)
	}
	// The encryption file reveals nothing of the key.
	if b := readDir(t, dir)[index.EncryptionName]; bytes.Contains(b, testKey[:8]) {
		t.Fatalf("the encryption file holds the key")
	}
}

// TestEncryptPlainLogGetsKey opens an unencrypted log with a key: its
// records stay readable (and unencrypted), new ones are encrypted, and
// from then on the log needs the key.
func TestEncryptPlainLogGetsKey(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	old, err := l.Append([]byte(marker + " old"))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	var logged bytes.Buffer
	l = mustOpen(t, dir, WithSegmentSize(smallSeg), WithEncryption(testKey), WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if !strings.Contains(logged.String(), "unencrypted records") {
		t.Fatalf("Open did not say the log holds unencrypted records: %q", logged.String())
	}
	nw, err := l.Append([]byte("new secret"))
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[uint64]string{old: marker + " old", nw: "new secret"} {
		if d, err := l.Get(q); err != nil || string(d) != want {
			t.Fatalf("Get(%d) = %q, %v", q, d, err)
		}
	}
	mustClose(t, l)
	if l, err := Open(dir); !errors.Is(err, ErrKey) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("Open without the key after a keyed Open: %v, want ErrKey", err)
	}
	v, err := OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if in := v.Info(); !in.Encrypted || in.Records != 2 || in.EncryptedRecords != 1 {
		t.Fatalf("Info: encrypted %v, %d of %d records encrypted; want 1 of 2", in.Encrypted, in.EncryptedRecords, in.Records)
	}
	if s := readDir(t, dir); bytes.Contains(s.data()[segment.Name(1)], []byte("new secret")) {
		t.Fatal("the new record is stored in plain text")
	}
}

// TestEncryptFileLost checks that an encrypted log whose encryption file
// is gone (moved aside by Repair, say) still needs its key: Open without
// a key or with another fails with ErrKey; with the key it opens (the key
// checked against a record) and writes the file again.
func TestEncryptFileLost(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithEncryption(testKey))
	if _, err := l.Append([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	path := filepath.Join(dir, index.EncryptionName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]Option{nil, {WithEncryption(otherKey)}} {
		if l, err := Open(dir, opts...); !errors.Is(err, ErrKey) {
			if err == nil {
				l.Close()
			}
			t.Fatalf("Open(%d options) without the encryption file: %v, want ErrKey", len(opts), err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused Open wrote the encryption file: %v", err)
		}
	}
	l = mustOpen(t, dir, WithEncryption(testKey))
	if d, err := l.Get(1); err != nil || string(d) != "secret" {
		t.Fatalf("Get(1) = %q, %v", d, err)
	}
	mustClose(t, l)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the encryption file was not written again: %v", err)
	}
	// A damaged encryption file is corruption of that file.
	b, _ := os.ReadFile(path)
	b[20] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, WithEncryption(testKey))
	if ce := asCorruption(t, err, dir); ce.Path != path || ce.Fix() != FixMoveAside {
		t.Fatalf("damaged encryption file: %v (fix %v)", err, ce.Fix())
	}
}

// sealedFrame returns the path and offset of the frame of seq in dir.
func sealedFrame(t *testing.T, dir string, seq uint64) (string, segment.Frame) {
	t.Helper()
	for _, path := range segFiles(t, dir) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range framesOf(t, b) {
			if !fr.IsAck() && fr.Seq == seq {
				return path, fr
			}
		}
	}
	t.Fatalf("no frame of seq %d", seq)
	return "", segment.Frame{}
}

// TestEncryptTamperDetected alters an encrypted frame — its nonce,
// ciphertext, tag, and the header fields bound to it (raw length, the
// zstd flag) — and fixes up its xxhash64, so that only authentication
// can tell: Get and Pending must fail with a *CorruptionError caused by
// ErrAuth and return no data.
func TestEncryptTamperDetected(t *testing.T) {
	src := t.TempDir()
	l := mustOpen(t, src, WithEncryption(testKey), WithCompression(CompressionZstd))
	plain, err := l.Append([]byte(marker + " plain, not compressible"))
	if err != nil {
		t.Fatal(err)
	}
	zst, err := l.Append(bytes.Repeat([]byte(marker), 40))
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	snap := readDir(t, src)
	cases := []struct {
		name string
		seq  uint64
		edit func(b []byte, fr segment.Frame) // b is the frame's bytes
	}{
		{"nonce", plain, func(b []byte, fr segment.Frame) { b[32] ^= 1 }},
		{"ciphertext", plain, func(b []byte, fr segment.Frame) { b[32+segment.NonceSize+3] ^= 0x80 }},
		{"tag", plain, func(b []byte, fr segment.Frame) { b[32+len(fr.Payload)-1] ^= 1 }},
		{"zstd flag", plain, func(b []byte, fr segment.Frame) {
			binary.LittleEndian.PutUint32(b[12:], fr.Flags|segment.FlagZstd)
		}},
		{"raw length", zst, func(b []byte, fr segment.Frame) {
			binary.LittleEndian.PutUint32(b[24:], fr.RawLen+1)
		}},
		{"compressed ciphertext", zst, func(b []byte, fr segment.Frame) { b[32+segment.NonceSize] ^= 4 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := snap.write(t, t.TempDir())
			path, fr := sealedFrame(t, dir, c.seq)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !fr.Encrypted() {
				t.Fatalf("seq %d is not encrypted", c.seq)
			}
			fb := b[fr.Offset:]
			c.edit(fb, fr)
			end := segment.FrameHeaderSize + int(binary.LittleEndian.Uint32(fb[8:]))
			binary.LittleEndian.PutUint64(fb, segment.Checksum(fb, end))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			// Without the key nothing can tell: the checksum holds.
			if err := Verify(dir); err != nil {
				t.Fatalf("Verify: %v (the xxhash was fixed up)", err)
			}
			l := mustOpen(t, dir, WithEncryption(testKey))
			d, err := l.Get(c.seq)
			if ce := asCorruption(t, err, dir); !errors.Is(err, ErrAuth) || d != nil || ce.Seq != c.seq || ce.Offset != fr.Offset {
				t.Fatalf("Get(%d) of a tampered record: %q, %v", c.seq, d, err)
			}
			for rec, err := range l.Pending() {
				if err == nil {
					if rec.Seq == c.seq {
						t.Fatalf("Pending yielded the tampered record: %q", rec.Data)
					}
					continue
				}
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("Pending: %v, want ErrAuth", err)
				}
			}
			// The record the tampering did not touch still reads.
			other := plain + zst - c.seq
			if d, err := l.Get(other); err != nil || !bytes.HasPrefix(d, []byte(marker)) {
				t.Fatalf("Get(%d), untouched: %v", other, err)
			}
			mustClose(t, l)
		})
	}
}

// TestEncryptRepairThenAppendNonces damages an encrypted log, repairs it
// (without the key: Repair never needs it), appends again — the seqs the
// cut took are handed out again — and checks that no nonce was used
// twice: not for the reused seqs, not anywhere.
func TestEncryptRepairThenAppendNonces(t *testing.T) {
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(smallSeg), WithEncryption(testKey)}
	l := mustOpen(t, dir, opts...)
	r := rand.New(rand.NewPCG(3, 3))
	var want [][]byte
	for range 200 {
		d := markedRecord(r, 700, false)
		if _, err := l.Append(d); err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	// Acknowledged records do not come back after the repair.
	mustClose(t, l)
	before, n0 := nonces(t, dir)
	if n0 != 200 {
		t.Fatalf("%d encrypted frames, want 200", n0)
	}
	// Damage record 120's frame (checksum not fixed): Repair cuts there.
	path, fr := sealedFrame(t, dir, 120)
	b, _ := os.ReadFile(path)
	b[fr.Offset+40] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, opts...); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged log: %v", err)
	}
	rep, err := Repair(dir)
	if err != nil || rep.Moved == 0 {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	l = mustOpen(t, dir, opts...)
	next := l.Stats().NextSeq
	if next != 120 {
		t.Fatalf("NextSeq after the repair %d, want 120", next)
	}
	// The same data again, for the same seqs.
	for q := next; q <= 200; q++ {
		if got, err := l.Append(want[q-1]); err != nil || got != q {
			t.Fatalf("Append: seq %d, %v; want %d", got, err, q)
		}
	}
	for q := uint64(1); q <= 200; q++ {
		if d, err := l.Get(q); err != nil || !bytes.Equal(d, want[q-1]) {
			t.Fatalf("Get(%d) after the repair: %v", q, err)
		}
	}
	mustClose(t, l)
	after, n1 := nonces(t, dir)
	if n1 != 200 {
		t.Fatalf("%d encrypted frames after the repair, want 200", n1)
	}
	seen := map[string]uint64{}
	for _, m := range []map[uint64][][]byte{before, after} {
		for q, ns := range m {
			for _, nc := range ns {
				if p, dup := seen[string(nc)]; dup && !(p == q && q < 120 && bytes.Equal(before[q][0], nc)) {
					t.Fatalf("nonce %x used for seq %d and seq %d", nc, p, q)
				}
				seen[string(nc)] = q
			}
		}
	}
	reused := 0
	for q := uint64(120); q <= 200; q++ {
		if bytes.Equal(before[q][0], after[q][0]) {
			t.Fatalf("seq %d, written again after the repair, has its old nonce", q)
		}
		reused++
	}
	if reused != 81 || len(seen) != 200+81 {
		t.Fatalf("%d seqs written again, %d distinct nonces; want 81 and 281", reused, len(seen))
	}
}
