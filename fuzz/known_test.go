package fuzz

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// Known issues: inputs that trigger bugs reported but not fixed yet (they
// are outside the decoders this package may fix). A target skips such an
// input, naming the issue, so that fuzzing goes on past it; the regression
// seeds under testdata/fuzz/*/regression-known-* reproduce each one. When a
// bug is fixed, delete its check here and the seed starts guarding the fix.

// knownIssue is an error that names a known issue.
type knownIssue string

func (k knownIssue) Error() string { return "known issue: " + string(k) }

// knownCompactedTornTail returns a knownIssue if err, from opening a log
// again after a first Open succeeded, is the known bug: a compacted
// segment that is the last one, with damage after its data, passes as a
// torn tail, but Open does not cut it (it cuts only an active segment's
// tail) and starts a new segment after it; from then on the damage is in
// a sealed segment and every Open fails. (Damage in a compacted segment,
// which compaction writes and syncs whole before renaming it into place,
// cannot be a torn tail.)
func knownCompactedTornTail(files snapshot, err error) error {
	if !isCorruption(err) {
		return nil
	}
	for name, b := range files {
		if h, herr := segment.DecodeHeader(b); herr == nil && h.Compacted() && strings.HasSuffix(name, ".seg") {
			return knownIssue(fmt.Sprintf("a last, compacted segment with a torn tail opens once, then never again: %v", err))
		}
	}
	return nil
}

// knownSpan is the largest seq span the checks below let through: the
// log allocates a bit and spends a loop step per seq of it.
const knownSpan = 1 << 20

// knownScanIssue reports whether a segment file hits a known bug of
// wal.Open:
//
//   - a compacted segment whose record seqs span far more than the file
//     could hold makes load allocate an acknowledgement bitmap of a bit
//     per seq of the span (index.NewAcks in wal/state.go): a 4 KiB file
//     with seqs 1 and 2^40 asks for 128 GiB and the process dies of "out
//     of memory";
//   - an ack frame acknowledging a range of 2^59 seqs (its seq field, which
//     only bounds the range, is not checked against the records before it)
//     makes setAcked (wal/state.go) loop once per seq: Open never returns.
func knownScanIssue(file []byte) string {
	h, err := segment.DecodeHeader(file)
	if err != nil {
		return ""
	}
	for _, fr := range refScan(file) {
		if fr.flags&segment.FlagAck != 0 {
			var total uint64
			index.DecodeAckPayload(fr.payload, func(start, n uint64) { total += min(n, knownSpan+1) })
			if total > knownSpan {
				return fmt.Sprintf("known issue: an ack frame acknowledging %d+ seqs makes wal.Open loop per seq", total)
			}
			continue
		}
		if h.Compacted() && fr.seq >= h.FirstSeq && fr.seq-h.FirstSeq > knownSpan {
			return fmt.Sprintf("known issue: a compacted segment spanning seqs %d..%d makes wal.Open allocate a bitmap for the span", h.FirstSeq, fr.seq)
		}
	}
	return ""
}

// knownCheckpointIssue reports whether a checkpoint hits a known bug of
// index.DecodeCheckpoint: an entry flagged "no seq" or "every seq"
// acknowledged carries no words, yet the decoder allocates its bitmap in
// full — up to 2^40 bits (128 GiB) from 24 bytes — so that the allocation
// is not bounded by the input (with "every seq" it also fills it). It
// returns the bytes such bitmaps take, which FuzzCheckpoint allows on top
// of its bound, and a reason to skip the input when they are too many.
func knownCheckpointIssue(b []byte) (extra uint64, why string) {
	off := len(checkpointHeader(0))
	if len(b) < off+8 {
		return 0, ""
	}
	body := b[:len(b)-8]
	n := binary.LittleEndian.Uint32(body[12:])
	var total uint64
	for range n {
		if len(body)-off < 24 {
			break
		}
		field := binary.LittleEndian.Uint64(body[off+16:])
		bits := field & (1<<62 - 1)
		if field>>62 == 0 {
			off += 24 + 8*int(min((bits+63)/64, uint64(len(body))))
			continue
		}
		off += 24
		if bits > knownSpan {
			return 0, fmt.Sprintf("known issue: a checkpoint entry with no bitmap words claims %d bits, which DecodeCheckpoint allocates", bits)
		}
		total += bits
		extra += (bits+63)/64*8 + 64
	}
	if total > 4*knownSpan {
		return 0, fmt.Sprintf("known issue: checkpoint entries with no bitmap words claim %d bits, which DecodeCheckpoint allocates", total)
	}
	return extra, ""
}

// TestKnownIssueDeletedCheckpoint: compaction drops a segment's ack frames,
// including those that acknowledged records of an earlier segment still on
// disk; from then on only the checkpoint remembers those acknowledgements.
// A log whose checkpoint file is removed opens without complaint and the
// acknowledged records are pending again (at-least-once, not a loss, but
// silent). The test skips, describing the issue, while that is so.
func TestKnownIssueDeletedCheckpoint(t *testing.T) {
	dir := scratchDir(t)
	w := newLogWriter(t, dir)
	for w.l.Stats().Segments < 2 {
		w.step()
	}
	w.ack(3, 4, 5) // records of segment 1, ack frame in segment 2
	w.ackSegmentBut(2)
	for w.l.Stats().Segments < 3 {
		w.step()
	}
	w.ackSegmentBut(2) // segment 2 becomes worth compacting
	w.close()
	seg2 := filepath.Join(dir, "00000000000000000002.seg")
	waitCompacted(t, dir, func() bool {
		fi, err := os.Stat(seg2)
		return err == nil && fi.Size() < segSize || os.IsNotExist(err)
	})
	want := w.pending()
	if out, err := checkDamaged(dir, want); err != nil || out != harmless {
		t.Fatalf("undamaged log: %s %v", out, err)
	}
	if err := os.Remove(filepath.Join(dir, index.CheckpointName)); err != nil {
		t.Fatal(err)
	}
	if _, err := checkDamaged(dir, want); err != nil {
		t.Skipf("known issue: with the checkpoint removed, acknowledged records reappear: %.300s", err)
	}
}
