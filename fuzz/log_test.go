package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// Modes of FuzzSegmentScan; part of the seed corpus format.
const (
	scanRaw       = 0      // the input is the whole segment file
	scanBody      = 1      // a valid header, then the input as frames
	scanFixed     = 2      // as scanBody, with every frame's checksum recomputed
	scanKind      = 3      // mask of the three above (3 acts as scanFixed)
	scanCompacted = 1 << 2 // the header says compacted
	scanNoTail    = 1 << 3 // no zero tail after the body
	scanHWM       = 1 << 4 // a superblock puts the durable high-water mark at the end of the file
)

// segmentFile builds the segment file FuzzSegmentScan opens.
func segmentFile(body []byte, mode uint8, firstSeq uint64) []byte {
	if mode&scanKind == scanRaw {
		return body
	}
	size := segment.HeaderSize + (len(body)+segment.Align-1)&^(segment.Align-1)
	if mode&scanNoTail == 0 {
		size += 64
	}
	b := make([]byte, size)
	copy(b[segment.HeaderSize:], body)
	if mode&scanKind >= scanFixed {
		for off := int64(segment.HeaderSize); off+segment.FrameHeaderSize <= int64(len(b)); {
			if segment.AllZero(b[off : off+segment.FrameHeaderSize]) {
				break
			}
			n := binary.LittleEndian.Uint32(b[off+8:])
			if n > segment.MaxPayload || off+int64(segment.FrameSize(int(n))) > int64(len(b)) {
				break
			}
			fixFrameSum(b, off)
			off += int64(segment.FrameSize(int(n)))
		}
	}
	h := segment.Header{ID: 1, FirstSeq: max(firstSeq, 1), Size: int64(size)}
	if mode&scanCompacted != 0 {
		h.Flags, h.Generation = segment.SegCompacted, 1
	}
	segment.PutHeader(b, h)
	return b
}

// FuzzSegmentScan opens a log directory holding one segment file made from
// the input — the whole file (mode scanRaw), or a valid header followed by
// the input as the frames, with or without their checksums recomputed,
// optionally marked compacted, optionally with a superblock placing the
// durable high-water mark at the end of the file — with wal.OpenView and
// wal.Open.
//
// Invariants:
//   - nothing panics, hangs or allocates beyond what the input declares:
//     the bytes allocated stay within fixedAlloc plus 64 per byte of the
//     file, plus twice the raw size that compressed frames declare for
//     each of the check's reads of the records (decompressing a record
//     needs its raw size; see scanReads), whatever span of seqs
//     the frames claim (issue 10 item 11: a compacted segment's
//     acknowledgement bitmap is sparse when its records are far apart);
//   - every error of Open is a *wal.CorruptionError; OpenView, asked about
//     a sample of the failures (it waits 60 ms on damage), fails too;
//   - if it opens, Pending yields ascending seqs, each the bytes of a frame
//     on disk whose checksum holds (re-verified by the harness's own
//     reading of the format); a later error is only a *wal.CorruptionError
//     (a compressed record that does not decompress); after Close,
//     OpenView opens too and its unacknowledged records are the same;
//   - Close succeeds, and opening the log again yields the same records.
func FuzzSegmentScan(f *testing.F) {
	f.Add([]byte{}, uint8(scanBody), uint64(1))
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, firstSeq uint64) {
		if len(body) > 1<<20 {
			t.Skip("input too large")
		}
		file := segmentFile(body, mode, firstSeq)
		dir := scratchDir(t)
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		if mode&scanHWM != 0 {
			sb := make([]byte, index.SuperblockSize)
			index.PutSuperblockSlot(sb[index.SuperblockSlot:], index.Superblock{Generation: 1, Segment: 1, Offset: int64(len(file))})
			if err := os.WriteFile(filepath.Join(dir, index.SuperblockName), sb, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		files := readSnapshot(t, dir)
		allowed := fixedAlloc + uint64(64*len(file))
		for _, fr := range refScan(file) {
			if fr.flags&segment.FlagZstd != 0 {
				allowed += scanReads * 2 * uint64(fr.rawLen)
			}
		}
		var err error
		if n := testutil.LeastAlloc(1, func() { err = scanCheck(dir, files) }); n > allowed {
			t.Errorf("opening a %d-byte segment allocated %d bytes (allowed %d)", len(file), n, allowed)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

func scanCheck(dir string, files snapshot) error {
	salvaged, err := salvageCheck(dir, files)
	if err != nil {
		return err
	}
	l, err := wal.Open(dir, openOpts...)
	if err != nil && errors.Is(err, wal.ErrKey) {
		// Opened without a key: only a log with an encrypted record frame
		// (its checksum holds) may refuse so.
		if !holdsEncrypted(files) {
			return fmt.Errorf("Open: ErrKey, but no checksummed frame is encrypted: %v", err)
		}
		return nil
	}
	if err != nil {
		if !isCorruption(err) {
			return fmt.Errorf("Open: error is not a *wal.CorruptionError: %T %v", err, err)
		}
		if viewSampled() {
			if v, verr := wal.OpenView(dir); verr == nil {
				v.Close()
				return fmt.Errorf("Open failed (%v) but OpenView succeeded", err)
			} else if !isCorruption(verr) {
				return fmt.Errorf("OpenView: error is not a *wal.CorruptionError: %T %v", verr, verr)
			}
		}
		return nil
	}
	got, perr := pendingOf(l)
	if cerr := l.Close(); cerr != nil {
		return fmt.Errorf("Close: %v", cerr)
	}
	if perr != nil && !isCorruption(perr) {
		return fmt.Errorf("Pending: error is not a *wal.CorruptionError: %T %v", perr, perr)
	}
	if verr := verifyAgainstFiles(files, got); verr != nil {
		return fmt.Errorf("Pending: %v", verr)
	}
	for _, r := range got {
		if !slices.ContainsFunc(salvaged, func(x rec) bool { return x.Seq == r.Seq && bytes.Equal(x.Data, r.Data) }) {
			return fmt.Errorf("Pending yields seq %d, which Salvage does not", r.Seq)
		}
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		return fmt.Errorf("Open succeeded, but OpenView after it failed: %v", err)
	}
	viewRecs, verr := viewPendingOf(v)
	v.Close()
	if verr != nil && !isCorruption(verr) {
		return fmt.Errorf("View.Records: error is not a *wal.CorruptionError: %T %v", verr, verr)
	}
	if perr == nil && verr == nil && !sameRecs(got, viewRecs) {
		err := fmt.Errorf("Pending and the View disagree:\n Pending %v\n View    %v", got, viewRecs)
		return err
	}
	l, err = wal.Open(dir, openOpts...)
	if err != nil {
		return fmt.Errorf("reopening after a successful Open and Close: %v", err)
	}
	again, perr2 := pendingOf(l)
	if cerr := l.Close(); cerr != nil {
		return fmt.Errorf("Close after reopening: %v", cerr)
	}
	if !sameRecs(again, got) || (perr == nil) != (perr2 == nil) {
		err := fmt.Errorf("reopening yields different records:\n first  %v (%v)\n second %v (%v)", got, perr, again, perr2)
		return err
	}
	return nil
}

// salvageCheck runs wal.Salvage on the log in dir (before anything opens
// it): it must not panic, report damage only as *wal.CorruptionError, and
// yield only records that the frame it names (file and offset) holds, by
// the harness's own reading of the format.
func salvageCheck(dir string, files snapshot) ([]rec, error) {
	var out []rec
	for r, err := range wal.Salvage(dir) {
		if err != nil {
			if !isCorruption(err) {
				return nil, fmt.Errorf("Salvage: error is not a *wal.CorruptionError: %T %v", err, err)
			}
			continue
		}
		fr, ok := refFrameAt(files[filepath.Base(r.Path)], r.Offset)
		if !ok || fr.seq != r.Seq || fr.flags&segment.FlagAck != 0 {
			return nil, fmt.Errorf("Salvage: seq %d at %s offset %d is not a checksummed record frame there", r.Seq, r.Path, r.Offset)
		}
		if encrypted := fr.flags&segment.FlagEncrypted != 0; encrypted || r.Encrypted {
			// Without a key its data is not revealed.
			if !encrypted || !r.Encrypted || r.Data != nil {
				return nil, fmt.Errorf("Salvage: seq %d at %s offset %d: encrypted %v, yielded as encrypted %v with %d bytes",
					r.Seq, r.Path, r.Offset, encrypted, r.Encrypted, len(r.Data))
			}
			continue
		}
		if d, err := refDecode(fr); err != nil || !bytes.Equal(d, r.Data) {
			return nil, fmt.Errorf("Salvage: seq %d at %s offset %d: data differs from the frame's (%v)", r.Seq, r.Path, r.Offset, err)
		}
		out = append(out, rec{r.Seq, bytes.Clone(r.Data)})
	}
	return out, nil
}

// scanReads is how many times scanCheck reads every record of a log that
// opens: Salvage, Pending, the View's records, and Pending again after
// reopening. Each decompresses a compressed record into a buffer of the
// raw size its frame declares (a frame of 160 bytes that declares 3 MB
// and decodes to less took 12 MB over the four).
const scanReads = 4

// fixedAlloc is what opening any log may allocate whatever its size: the
// process's zstd decoder, the log's buffers and goroutines.
const fixedAlloc = 4 << 20

// Mutations of FuzzLogDir; part of the seed corpus format. Each is 6
// bytes: the kind, a little-endian uint32 position (taken modulo the
// file's size) and a value.
const (
	mutFlip     = iota // flip bit value%8 of the byte at position
	mutSet             // set the byte at position to value
	mutTruncate        // truncate the file to position bytes
	mutAppend          // append position%4096+1 bytes of value
	mutDelete          // remove the file
	mutKinds
	mutLen = 6
)

type mutation struct {
	kind uint8
	pos  uint32
	val  uint8
}

func (m mutation) bytes() []byte {
	return []byte{m.kind, byte(m.pos), byte(m.pos >> 8), byte(m.pos >> 16), byte(m.pos >> 24), m.val}
}

// parseMutations reads at most 8 mutations from ops.
func parseMutations(ops []byte) []mutation {
	var ms []mutation
	for len(ops) >= mutLen && len(ms) < 8 {
		ms = append(ms, mutation{ops[0] % mutKinds, binary.LittleEndian.Uint32(ops[1:]), ops[5]})
		ops = ops[mutLen:]
	}
	return ms
}

// mutate applies ms to the file path.
func mutate(path string, ms []mutation) error {
	for _, m := range ms {
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		var p int
		if len(b) > 0 {
			p = int(m.pos % uint32(len(b)))
		}
		switch m.kind {
		case mutFlip:
			if len(b) > 0 {
				b[p] ^= 1 << (m.val % 8)
			}
		case mutSet:
			if len(b) > 0 {
				b[p] = m.val
			}
		case mutTruncate:
			b = b[:p]
		case mutAppend:
			for range m.pos%4096 + 1 {
				b = append(b, m.val)
			}
		case mutDelete:
			return os.Remove(path)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// FuzzLogDir damages one file of a small real log (testdata/baselog:
// three segments, two of them compacted, acknowledgements in ack frames
// and in the checkpoint, a superblock; all synced) with up to eight
// fuzzer-chosen mutations — bit flips, byte overwrites, truncation,
// garbage appended, removal — and opens it with wal.Open (and wal.OpenView).
//
// With a non-empty set, the log is instead a set of files built from it
// (see setReader: segments with gaps in ids and seqs, compacted ones whose
// records are up to index.MaxSpan seqs apart, ack frames, a checkpoint of
// every entry kind, a superblock), checksums computed, and the mutations
// damage the file named by file. Such a log has no records known in
// advance; the invariants are FuzzSegmentScan's (see scanCheck): nothing
// panics and the bytes allocated stay within fixedAlloc plus 64 per byte
// of its files, whatever spans they claim (issue 10 item 11); every error
// of Open is a *wal.CorruptionError; if it opens, Pending yields
// checksummed frames on disk in ascending seq order, OpenView and a second
// Open agree, and Salvage yields them too.
//
// Invariants of the damaged base log:
//   - nothing panics; the bytes allocated stay within fixedAlloc plus 64
//     per byte of the damaged log's files;
//   - Open either fails with a *wal.CorruptionError, or opens and yields
//     exactly the records the undamaged log holds pending: the same seqs
//     with the same bytes, no acknowledged record back, none missing;
//   - OpenView agrees (checked after every Open that succeeds, and for a
//     sample of those that fail);
//   - wal.Salvage, run first, yields only records a checksummed frame
//     holds, reports damage only as *wal.CorruptionError, and yields every
//     pending record stored in a file the mutations did not touch.
//
// Several mutations land in the same file: damage spread over two files
// (say, the superblock removed and the last record torn) may legitimately
// lose records that only the removed metadata vouched for.
func FuzzLogDir(f *testing.F) {
	f.Add(uint8(0), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, file uint8, ops []byte, set []byte) {
		if len(set) > 0 {
			checkLogSet(t, file, ops, set)
			return
		}
		bl := loadBaseLog(t)
		names := bl.files.names()
		name := names[int(file)%len(names)]
		dir := scratchDir(t)
		bl.files.restore(t, dir)
		ms := parseMutations(ops)
		if err := mutate(filepath.Join(dir, name), ms); err != nil {
			t.Fatal(err)
		}
		salvaged, err := salvageCheck(dir, readSnapshot(t, dir))
		if err != nil {
			t.Fatalf("%s damaged by %v: %v", name, ms, err)
		}
		// Salvage loses nothing that the damage did not touch: every
		// pending record stored in another file comes out.
		inDamaged := map[uint64]bool{}
		if strings.HasSuffix(name, ".seg") {
			for _, fr := range refScan(bl.files[name]) {
				inDamaged[fr.seq] = true
			}
		}
		for _, r := range bl.pending {
			if !inDamaged[r.Seq] && !slices.ContainsFunc(salvaged, func(x rec) bool { return x.Seq == r.Seq && bytes.Equal(x.Data, r.Data) }) {
				t.Fatalf("%s damaged by %v: Salvage lost pending record %d, stored in another file", name, ms, r.Seq)
			}
		}
		var size int
		for _, b := range readSnapshot(t, dir) {
			size += len(b)
		}
		allowed := fixedAlloc + 64*uint64(size)
		if n := testutil.LeastAlloc(1, func() { _, err = checkDamaged(dir, bl.pending) }); n > allowed {
			t.Errorf("%s damaged by %v: opening a log of %d bytes allocated %d bytes (allowed %d)", name, ms, size, n, allowed)
		}
		if err != nil {
			t.Fatalf("%s damaged by %v: %v", name, ms, err)
		}
	})
}

// checkLogSet is FuzzLogDir on a log set built from set (see setReader),
// damaged by ops in the file file names.
func checkLogSet(t *testing.T, file uint8, ops []byte, set []byte) {
	if len(set) > 1<<12 {
		t.Skip("input too large")
	}
	built := buildLogSet(set)
	names := built.names()
	name := names[int(file)%len(names)]
	dir := scratchDir(t)
	built.restore(t, dir)
	ms := parseMutations(ops)
	if err := mutate(filepath.Join(dir, name), ms); err != nil {
		t.Fatal(err)
	}
	files := readSnapshot(t, dir)
	var size int
	for _, b := range files {
		size += len(b)
	}
	allowed := fixedAlloc + 64*uint64(size)
	var err error
	if n := testutil.LeastAlloc(1, func() { err = scanCheck(dir, files) }); n > allowed {
		t.Errorf("log set %x, %s damaged by %v: opening %d bytes allocated %d bytes (allowed %d)", set, name, ms, size, n, allowed)
	}
	if err != nil {
		t.Fatalf("log set %x, %s damaged by %v: %v", set, name, ms, err)
	}
}
