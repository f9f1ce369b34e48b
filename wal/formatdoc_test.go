package wal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// docTable is one "offset size field" table of a doc.go: the documented
// offset and size of each field, by the field's description.
type docTable []struct {
	off, size int
	field     string
}

// docRow is a table row of a doc.go: "//\t<offset> <size> <field>".
// A size of "..." (the rest, or a variable length) reads as -1.
var docRow = regexp.MustCompile(`^//\t(\d+)\s+(\d+|\.\.\.)\s+(\S.*)$`)

// docTables returns the tables of the doc.go at path, by the heading
// ("# ..." line) or the sentence they follow.
func docTables(t *testing.T, path string) map[string]docTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tables := map[string]docTable{}
	var title string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		if m := docRow.FindStringSubmatch(line); m != nil {
			off, _ := strconv.Atoi(m[1])
			size := -1
			if m[2] != "..." {
				size, _ = strconv.Atoi(m[2])
			}
			tables[title] = append(tables[title], struct {
				off, size int
				field     string
			}{off, size, m[3]})
			continue
		}
		if text, ok := strings.CutPrefix(line, "// "); ok && !strings.HasPrefix(text, " ") && text != "" {
			if strings.HasPrefix(text, "# ") {
				title = text
			} else if strings.HasSuffix(text, ":") {
				title = text
			}
		}
	}
	return tables
}

// docVersion checks the version a table's version row names, "(N" or
// "(N;", against the code's.
func (tb docTable) docVersion(t *testing.T, name string, want int) {
	t.Helper()
	for _, r := range tb {
		if strings.HasPrefix(r.field, name) {
			m := regexp.MustCompile(`\((\d+)[;)]`).FindStringSubmatch(r.field)
			if m == nil || m[1] != strconv.Itoa(want) {
				t.Errorf("documented %q: %q names version %v, the code writes %d", name, r.field, m, want)
			}
			return
		}
	}
	t.Errorf("no documented field %q", name)
}

// docText returns the text of the doc.go at path.
func docText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// field returns the documented bytes of the field whose description
// starts with name, read from b (a structure starting at b[0]).
func (tb docTable) field(t *testing.T, b []byte, name string) []byte {
	t.Helper()
	for _, r := range tb {
		if strings.HasPrefix(r.field, name) {
			if r.size < 0 {
				return b[r.off:]
			}
			if r.off+r.size > len(b) {
				t.Fatalf("field %q at %d+%d is past the %d bytes", name, r.off, r.size, len(b))
			}
			return b[r.off : r.off+r.size]
		}
	}
	t.Fatalf("no documented field %q in %v", name, tb)
	return nil
}

// uint reads a documented little-endian integer field.
func (tb docTable) uint(t *testing.T, b []byte, name string) uint64 {
	t.Helper()
	v := tb.field(t, b, name)
	switch len(v) {
	case 2:
		return uint64(binary.LittleEndian.Uint16(v))
	case 4:
		return uint64(binary.LittleEndian.Uint32(v))
	case 8:
		return binary.LittleEndian.Uint64(v)
	}
	t.Fatalf("field %q has size %d", name, len(v))
	return 0
}

func (tb docTable) want(t *testing.T, b []byte, name string, want uint64) {
	t.Helper()
	if got := tb.uint(t, b, name); got != want {
		t.Errorf("documented field %q reads %d from the file, the decoder says %d", name, got, want)
	}
}

// TestFormatDocsMatchFiles reads the files of a log written by the code at
// the offsets the doc.go tables of wal/segment and wal/index give, and
// checks every field against what the decoders return: the docs and the
// encoder cannot drift apart.
func TestFormatDocsMatchFiles(t *testing.T) {
	segDoc := docTables(t, filepath.Join("segment", "doc.go"))
	idxDoc := docTables(t, filepath.Join("index", "doc.go"))

	// A log with compacted segments (merged through and generation set),
	// reclaimed segments (a checkpoint with a sealed end) and a mark.
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	rec := make([]byte, 3000)
	var seqs []uint64
	for i := range 300 {
		rec[0] = byte(i)
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	if err := l.Ack(seqs[:40]...); err != nil { // whole segments: reclaimed
		t.Fatal(err)
	}
	for _, q := range seqs[40:250] {
		if q%5 != 0 { // most of each segment: compacted
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Many small records of which a few stay pending: merged, they make a
	// segment whose range is many times its records, a sparse entry.
	var small []uint64
	for i := range 6000 {
		q, err := l.Append([]byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		if i%1000 != 0 {
			small = append(small, q)
		}
	}
	if err := l.Ack(small...); err != nil {
		t.Fatal(err)
	}
	// Compaction runs in the background: wait for a merged segment and for
	// a checkpoint written after whole segments were reclaimed, with a
	// sparse entry.
	eventually(t, "a merged compacted segment and a checkpoint with a sealed end and a sparse entry", func() bool {
		merged := false
		for _, path := range segFiles(t, dir) {
			b, err := os.ReadFile(path)
			if err != nil {
				return false // replaced or removed meanwhile
			}
			if h, err := segment.DecodeHeader(b); err == nil && h.MergedThrough > h.ID {
				merged = true
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, index.CheckpointName))
		if err != nil {
			return false
		}
		ck, err := index.DecodeCheckpoint(b)
		return merged && err == nil && ck.SealedEnd > 0 && slices.ContainsFunc(ck.Segments, func(e index.SegmentAcks) bool { return e.Acks.Sparse() })
	})
	mustClose(t, l)

	hdr := segDoc["# Segment file"]
	hdr.docVersion(t, "format version", segment.Version)
	frm := segDoc["# Frame"]
	var compacted, frames int
	for _, path := range segFiles(t, dir) {
		b, h := readSegment(t, path)
		if got := string(hdr.field(t, b, "magic")); got != segment.Magic {
			t.Errorf("%s: documented magic reads %q", path, got)
		}
		hdr.want(t, b, "format version", segment.Version)
		hdr.want(t, b, "flags", uint64(h.Flags))
		hdr.want(t, b, "reserved", 0)
		hdr.want(t, b, "segment id", h.ID)
		hdr.want(t, b, "first seq", h.FirstSeq)
		hdr.want(t, b, "size", uint64(h.Size))
		hdr.want(t, b, "generation", h.Generation)
		hdr.want(t, b, "merged through", h.MergedThrough)
		hdr.want(t, b, "xxhash64", xxhash.Sum64(b[:56]))
		if h.Compacted() && h.Generation > 0 && h.MergedThrough > h.ID {
			compacted++
		}
		for _, fr := range framesOf(t, b) {
			fb := b[fr.Offset:]
			frm.want(t, fb, "stored length", uint64(len(fr.Payload)))
			frm.want(t, fb, "flags", uint64(fr.Flags))
			frm.want(t, fb, "seq", fr.Seq)
			frm.want(t, fb, "raw length", uint64(fr.RawLen))
			frm.want(t, fb, "reserved", 0)
			frm.want(t, fb, "checksum", docFrameChecksum(fb, len(fr.Payload)))
			if fr.Flags&(1<<5) == 0 {
				t.Errorf("%s: frame at %d without the payload sum flag", path, fr.Offset)
			}
			frames++
		}
	}
	if compacted == 0 || frames == 0 {
		t.Fatalf("%d merged compacted segments, %d frames: the log did not exercise every header field", compacted, frames)
	}

	ckb, err := os.ReadFile(filepath.Join(dir, index.CheckpointName))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := index.DecodeCheckpoint(ckb)
	if err != nil {
		t.Fatal(err)
	}
	if ck.SealedEnd == 0 || len(ck.Segments) == 0 {
		t.Fatalf("checkpoint %+v: no sealed end or no entries", ck)
	}
	ckt := idxDoc[`# Checkpoint file "checkpoint"`]
	if got := string(ckt.field(t, ckb, "magic")); got != index.CheckpointMagic {
		t.Errorf("checkpoint: documented magic reads %q", got)
	}
	ckt.want(t, ckb, "version", index.CheckpointVersion) // it has a sparse entry
	ckt.want(t, ckb, "reserved", 0)
	ckt.want(t, ckb, "number of segment entries", uint64(len(ck.Segments)))
	ckt.want(t, ckb, "through", ck.Through)
	ckt.want(t, ckb, "next seq", ck.NextSeq)
	ckt.want(t, ckb, "sealed end", ck.SealedEnd)
	ent := idxDoc["An entry is three u64s, then its bitmap words if it has any:"]
	spe := idxDoc["After its three u64s, a sparse entry holds:"]
	eb := ckt.field(t, ckb, "entries")
	kinds := map[string]int{}
	for _, e := range ck.Segments {
		ent.want(t, eb, "segment id", e.ID)
		ent.want(t, eb, "first seq", e.Acks.Base())
		bits := ent.uint(t, eb, "bits")
		if n := bits & (1<<62 - 1); n != e.Acks.Len() {
			t.Errorf("checkpoint entry: documented count reads %d, the decoder says %d", n, e.Acks.Len())
		}
		none, all := bits&(1<<63) != 0, bits&(1<<62) != 0
		if c := uint64(e.Acks.Count()); !e.Acks.Sparse() && (none != (c == 0) || all != (c == e.Acks.Len())) {
			t.Errorf("checkpoint entry: flags none=%v all=%v for %d of %d acknowledged", none, all, c, e.Acks.Len())
		}
		words := ent.field(t, eb, "with neither flag")
		switch {
		case none && all:
			kinds["sparse"]++
			if !e.Acks.Sparse() {
				t.Errorf("checkpoint entry: both flags (sparse) but the decoder says not sparse")
			}
			count := spe.uint(t, eb, "count")
			if want := e.Acks.Len() - uint64(e.Acks.Count()); count != want {
				t.Errorf("checkpoint sparse entry: documented count reads %d, the decoder says %d unacknowledged", count, want)
			}
			list := spe.field(t, eb, "count u64 seqs")
			for i := range count {
				q := binary.LittleEndian.Uint64(list[8*i:])
				if q < e.Acks.Base() || q >= e.Acks.Base()+e.Acks.Len() || e.Acks.Has(q) {
					t.Fatalf("checkpoint sparse entry: documented seq %d is not an unacknowledged seq of the entry", q)
				}
			}
			words = list[8*count:]
		case none:
			kinds["none"]++
		case all:
			kinds["all"]++
		default:
			kinds["bitmap"]++
			for i := range e.Acks.Len() {
				if set := words[i/8]>>(i%8)&1 == 1; set != e.Acks.Has(e.Acks.Base()+i) {
					t.Fatalf("checkpoint entry: documented bit of seq %d is %v, the decoder says %v", e.Acks.Base()+i, set, !set)
				}
			}
			words = words[(e.Acks.Len()+63)/64*8:]
		}
		eb = words
	}
	if len(eb) != 8 || kinds["bitmap"] == 0 || kinds["sparse"] == 0 {
		t.Errorf("checkpoint entries %v: %d bytes left after them (want the 8 of the checksum)", kinds, len(eb))
	}
	// The checkpoint ends with its checksum.
	if got := binary.LittleEndian.Uint64(ckb[len(ckb)-8:]); got != xxhash.Sum64(ckb[:len(ckb)-8]) {
		t.Errorf("checkpoint: documented checksum at end-8 does not match")
	}

	sbb, err := os.ReadFile(filepath.Join(dir, index.SuperblockName))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := index.DecodeSuperblock(sbb)
	if err != nil {
		t.Fatal(err)
	}
	// The slots are where the doc's prose puts them.
	at := regexp.MustCompile(`slots at offsets 0 and (\d+)`).FindStringSubmatch(docText(t, filepath.Join("index", "doc.go")))
	if at == nil || at[1] != strconv.Itoa(index.SuperblockSlot) {
		t.Fatalf("index/doc.go gives the superblock's second slot at %v, the code at %d", at, index.SuperblockSlot)
	}
	slot := sbb[int(sb.Generation%2)*index.SuperblockSlot:]
	sbt := idxDoc[`# Superblock file "superblock"`]
	reserved := 0
	for _, r := range sbt {
		if strings.HasPrefix(r.field, "reserved") {
			reserved++
			if !segment.AllZero(slot[r.off : r.off+r.size]) {
				t.Errorf("superblock: documented reserved bytes %d..%d are not zero", r.off, r.off+r.size)
			}
		}
	}
	if reserved != 2 {
		t.Errorf("superblock: %d documented reserved fields, want 2", reserved)
	}
	if got := string(sbt.field(t, slot, "magic")); got != index.SuperblockMagic {
		t.Errorf("superblock: documented magic reads %q", got)
	}
	sbt.want(t, slot, "version", index.Version)
	sbt.docVersion(t, "version", index.Version)
	sbt.want(t, slot, "generation", sb.Generation)
	sbt.want(t, slot, "durable high-water mark: segment id", sb.Segment)
	sbt.want(t, slot, "durable high-water mark: offset", uint64(sb.Offset))
	sbt.want(t, slot, "durable high-water mark: last record seq", sb.Seq)
	sbt.want(t, slot, "xxhash64", xxhash.Sum64(slot[:56]))
	if sb.Seq == 0 || sb.Segment == 0 {
		t.Fatalf("superblock %+v: no mark", sb)
	}
}

// TestFormatDocsEncryption reads the encryption file and an encrypted
// frame of a real log at the documented offsets, and follows the
// documented derivations with the standard library alone: the key check
// and the frame key from the key, the associated data from the header.
// Opening the frame that way must give the record back.
func TestFormatDocsEncryption(t *testing.T) {
	segDoc := docTables(t, filepath.Join("segment", "doc.go"))
	idxDoc := docTables(t, filepath.Join("index", "doc.go"))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithEncryption(testKey))
	rec := []byte("documented, and sealed")
	if _, err := l.AppendBatch([][]byte{rec, rec}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)

	eb, err := os.ReadFile(filepath.Join(dir, index.EncryptionName))
	if err != nil {
		t.Fatal(err)
	}
	e, err := index.DecodeEncryption(eb)
	if err != nil {
		t.Fatal(err)
	}
	et := idxDoc[`# Encryption file "encryption"`]
	if got := string(et.field(t, eb, "magic")); got != index.EncryptionMagic {
		t.Errorf("encryption file: documented magic reads %q", got)
	}
	et.want(t, eb, "version", index.EncryptionVersion)
	et.docVersion(t, "version", index.EncryptionVersion)
	et.want(t, eb, "cipher", uint64(e.Cipher))
	et.want(t, eb, "from seq", 1) // a fresh log: from its first record on
	if e.FromSeq != 1 {
		t.Errorf("encryption file: the decoder says from seq %d, want 1", e.FromSeq)
	}
	et.want(t, eb, "reserved", 0)
	et.want(t, eb, "xxhash64", xxhash.Sum64(eb[:56]))
	salt := et.field(t, eb, "salt")
	if !bytes.Equal(salt, e.Salt[:]) {
		t.Errorf("encryption file: documented salt %x, the decoder says %x", salt, e.Salt)
	}
	ck, err := hkdf.Key(sha256.New, testKey, nil, "walpub key check v1", sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, ck)
	m.Write(salt)
	m.Write(binary.LittleEndian.AppendUint64(nil, e.FromSeq))
	if check := et.field(t, eb, "key check"); !bytes.Equal(check, m.Sum(nil)[:16]) || !bytes.Equal(check, e.Check[:]) {
		t.Errorf("encryption file: documented key check %x does not follow the documented derivation", check)
	}

	fk, err := hkdf.Key(sha256.New, testKey, nil, "walpub frame key v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(fk)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	frm, sealed := segDoc["# Frame"], segDoc["stored as:"]
	b, err := os.ReadFile(segFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for _, fr := range framesOf(t, b) {
		fb := b[fr.Offset:]
		flags := frm.uint(t, fb, "flags")
		if flags&(1<<4) == 0 || flags&(1<<1) == 0 {
			t.Fatalf("frame flags %#x: not documented encrypted and batched", flags)
		}
		stored := frm.uint(t, fb, "stored length")
		if raw := frm.uint(t, fb, "raw length"); stored != raw+28 {
			t.Errorf("stored length %d, raw length %d: not 28 apart", stored, raw)
		}
		payload := fb[segment.FrameHeaderSize : segment.FrameHeaderSize+stored]
		nonce := sealed.field(t, payload, "nonce")
		ad := bytes.Clone(fb[8:28])
		binary.LittleEndian.PutUint32(ad[4:], uint32(flags)&(1<<0|1<<4))
		got, err := gcm.Open(nil, nonce, payload[12:], ad)
		if err != nil || !bytes.Equal(got, rec) {
			t.Fatalf("the frame opened as documented: %q, %v", got, err)
		}
		frames++
	}
	if frames != 2 {
		t.Fatalf("%d frames, want 2", frames)
	}
}

// docFrameChecksum computes the checksum of the frame at the start of fb,
// with n payload bytes, as segment/doc.go describes it ("# Checksum"),
// without the segment package.
func docFrameChecksum(fb []byte, n int) uint64 {
	le := binary.LittleEndian
	if le.Uint32(fb[12:])&(1<<5) == 0 {
		return xxhash.Sum64(fb[8 : 32+n])
	}
	const (
		p1 uint64 = 11400714785074694791
		p2 uint64 = 14029467366897019727
		p3 uint64 = 1609587929392839161
		p4 uint64 = 9650029242287828579
	)
	rotl := func(x uint64, r uint) uint64 { return x<<r | x>>(64-r) }
	return xxhash.Sum64(fb[32:32+n]) ^ rotl(le.Uint64(fb[8:])*p2, 31)*p1 ^
		rotl(le.Uint64(fb[16:])*p3, 29)*p2 ^ rotl(le.Uint64(fb[24:])*p4, 27)*p1
}

// TestFormatDocsAckFrames reads the ack frames of a real log as
// index/doc.go ("Ack frame payload") and segment/doc.go (the ack flag)
// describe them, with encoding/binary alone: a uvarint number of ranges,
// then each range's start delta from one past the previous range's last
// seq (the first from 0) and its length minus one. The ranges must be the
// seqs acknowledged, and each frame's seq the last record seq before it.
func TestFormatDocsAckFrames(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	var seqs []uint64
	for i := range 300 {
		q, err := l.Append([]byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, q)
	}
	want := map[uint64]bool{}
	ack := func(qs ...uint64) {
		t.Helper()
		if err := l.Ack(qs...); err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			want[q] = true
		}
	}
	ack(seqs[0])                                         // seq 1: a first delta of 1
	ack(seqs[5], seqs[6], seqs[7], seqs[9])              // a run, then one after a gap of one
	ack(seqs[64:129]...)                                 // a run of 65
	ack(seqs[200], seqs[202], seqs[204])                 // single seqs
	if _, err := l.Append([]byte("after")); err != nil { // an ack frame after a later record
		t.Fatal(err)
	}
	ack(seqs[250:260]...)
	mustClose(t, l) // seqs[299] is pending: the segment stays

	got := map[uint64]bool{}
	acks := 0
	for _, path := range segFiles(t, dir) {
		b, _ := readSegment(t, path)
		var lastRecord uint64
		for _, fr := range framesOf(t, b) {
			if fr.Flags&(1<<3) == 0 { // documented: bit 3 = ack
				lastRecord = fr.Seq
				continue
			}
			acks++
			if fr.Seq != lastRecord {
				t.Errorf("ack frame at %d: seq %d, want the last record seq before it, %d", fr.Offset, fr.Seq, lastRecord)
			}
			if int(fr.RawLen) != len(fr.Payload) {
				t.Errorf("ack frame at %d: raw length %d, stored %d", fr.Offset, fr.RawLen, len(fr.Payload))
			}
			p := fr.Payload
			next := func() uint64 {
				v, k := binary.Uvarint(p)
				if k <= 0 {
					t.Fatalf("ack frame at %d: payload %x is not the documented uvarints", fr.Offset, fr.Payload)
				}
				p = p[k:]
				return v
			}
			n := next()
			if n < 1 || n > 1<<20 {
				t.Fatalf("ack frame at %d: %d ranges", fr.Offset, n)
			}
			var end uint64 // one past the previous range's last seq
			for range n {
				start := end + next()
				length := next() + 1
				for q := start; q < start+length; q++ {
					got[q] = true
				}
				end = start + length
			}
			if len(p) != 0 {
				t.Errorf("ack frame at %d: %d bytes after the documented ranges", fr.Offset, len(p))
			}
		}
	}
	if acks == 0 {
		t.Fatal("no ack frame")
	}
	if !maps.Equal(got, want) {
		t.Fatalf("ack frames read as documented give %d seqs, want the %d acknowledged: %v", len(got), len(want), slices.Sorted(maps.Keys(got)))
	}
}
