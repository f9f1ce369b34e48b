package fuzz

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/index"
)

// Known issues: inputs that trigger bugs reported but not fixed yet (they
// are outside the decoders this package may fix). A target skips such an
// input, naming the issue, so that fuzzing goes on past it; the regression
// seeds under testdata/fuzz/*/regression-known-* reproduce each one. When a
// bug is fixed, delete its check here and rename its seeds regression-*:
// they then guard the fix (as regression-compacted-seq-span,
// regression-ack-range-loop, regression-compacted-torn-tail and
// regression-compacted-last-segment do, fixed in wal since they were
// found).

// knownSpan is the most seqs the checkpoint check below lets through
// per entry without words.
const knownSpan = 1 << 20

// knownCheckpointIssue reports whether a checkpoint hits a known issue of
// index.DecodeCheckpoint: an entry flagged "no seq" or "every seq"
// acknowledged carries no words, yet the decoder allocates its bitmap in
// full — up to index.MaxSpan bits (32 MiB) for 24 bytes, and entries are
// not bounded in number — so that the allocation is not bounded by the
// input (a few KiB of checkpoint can ask for gigabytes). It returns the
// bytes such bitmaps take, which FuzzCheckpoint allows on top of its
// bound, and a reason to skip the input when they are too many.
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
		if bits > index.MaxSpan || field>>62 == 3 {
			return 0, "" // the decoder rejects the entry
		}
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
