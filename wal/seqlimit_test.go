package wal

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestSeqLimit: segments whose checksums are valid but whose seqs leave
// no room for the next (a header starting at 2^64-1, or a record past
// MaxSeq) are damage. Whatever Open makes of them (a corruption error, or
// a header or torn tail it may drop as a power cut could have left), the
// log it returns never reuses a seq nor wraps around: the next seq is
// above every record kept and at most MaxSeq+1.
func TestSeqLimit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		first, seq uint64
	}{
		{"header", math.MaxUint64, math.MaxUint64},
		{"record", segment.MaxSeq, segment.MaxSeq + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := make([]byte, smallSeg)
			segment.PutHeader(b, segment.Header{ID: 1, FirstSeq: tc.first, Size: smallSeg})
			n := segment.PutFrame(b[segment.HeaderSize:], tc.first, segment.FlagSumPayload, 3, []byte("abc"))
			if tc.seq != tc.first {
				segment.PutFrame(b[segment.HeaderSize+int64(n):], tc.seq, segment.FlagSumPayload, 3, []byte("def"))
			}
			if err := os.WriteFile(filepath.Join(dir, segment.Name(1)), b, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(dir, WithSegmentSize(smallSeg))
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: %v, want a corruption error", err)
				}
				t.Logf("Open: %v", err)
				return
			}
			defer l.Close()
			next := l.Stats().NextSeq
			if next > segment.MaxSeq+1 {
				t.Fatalf("Open accepted seqs up to %d: the next seq is %d", tc.seq, next)
			}
			for _, r := range pendingOf(t, l) {
				if r.Seq >= next {
					t.Fatalf("record %d kept, yet the next seq is %d", r.Seq, next)
				}
			}
			q1, err1 := l.Append([]byte("x"))
			q2, err2 := l.Append([]byte("y"))
			if err1 != nil || err2 != nil || q1 != next || q2 != next+1 {
				t.Fatalf("Appends after Open (next seq %d): %d, %v; %d, %v", next, q1, err1, q2, err2)
			}
		})
	}
}
