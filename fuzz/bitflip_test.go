package fuzz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/segment"
)

// flipCounts tallies the outcomes of the flips in one file.
type flipCounts struct{ flips, detected, harmless, failed int }

// TestExhaustiveBitFlips flips, one at a time, every bit of the base log
// (testdata/baselog: three segments, two compacted, a checkpoint and a
// superblock, all synced, written in segment format version 1), and then
// of one built the same way by this version's writer (format version 2,
// whose frames carry the folded checksum): every bit of each segment's header and data and
// of a sample of its zero tail (64 bytes spread over it, one bit each),
// and every bit of the superblock and the checkpoint. After each flip the
// log is opened with wal.Open: it must fail with a *wal.CorruptionError
// (detected) or yield exactly the original pending records (harmless) —
// never different data, never a panic; wal.OpenView must agree (checked
// for every harmless flip and a sample of the detected ones). The
// directory is restored after each flip.
//
// Under the race detector it flips every 8th bit (a different one in each
// byte) unless WALPUB_BITFLIP=full; -short flips every 64th. It checks
// that it made as many flips as it set out to (with WALPUB_BITFLIP=full,
// one for every bit of the data): .ci/run's fuzz stage runs it so.
func TestExhaustiveBitFlips(t *testing.T) {
	flipEveryBit(t, "version 1", loadBaseLog(t))
	wdir := scratchDir(t)
	pending := buildBaseLog(t, wdir)
	written := &baseLog{files: readSnapshot(t, wdir), pending: pending}
	if !hasFoldedFrames(written.files) {
		t.Fatal("the base log written now has no frame with the payload sum flag")
	}
	flipEveryBit(t, "version 2", written)
}

// flipEveryBit is TestExhaustiveBitFlips over bl; label names it in the
// log.
func flipEveryBit(t *testing.T, label string, bl *baseLog) {
	dir := scratchDir(t)
	bl.files.restore(t, dir)
	if out, err := checkDamaged(dir, bl.pending); err != nil || out != harmless {
		t.Fatalf("the undamaged base log (%s): %s %v", label, out, err)
	}
	bl.files.restore(t, dir)

	full := os.Getenv("WALPUB_BITFLIP") == "full"
	stride := 1
	if !full {
		if raceEnabled {
			stride = 8
		}
		if testing.Short() {
			stride = 64
		}
	}
	start := time.Now()
	var total flipCounts
	failures := 0
	for _, name := range bl.files.names() {
		orig := bl.files[name]
		var c flipCounts
		path := filepath.Join(dir, name)
		flip := func(off int, bit uint) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt([]byte{orig[off] ^ 1<<bit}, int64(off))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			out, err := checkDamaged(dir, bl.pending)
			c.flips++
			switch {
			case err != nil:
				c.failed++
				if failures++; failures <= 20 {
					t.Errorf("%s %s: bit %d of byte %d flipped: %v", label, name, bit, off, err)
				}
			case out == detected:
				c.detected++
			default:
				c.harmless++
			}
			bl.files.restore(t, dir)
		}
		end := len(orig)
		if strings.HasSuffix(name, ".seg") {
			end = dataEnd(orig)
		}
		n := 0
		for off := range end {
			for bit := range uint(8) {
				if n++; (n-1)%stride == 0 {
					flip(off, (bit+uint(off))%8)
				}
			}
		}
		samples := min(64, len(orig)-end)
		for i := range samples {
			off := end + i*(len(orig)-end)/samples
			flip(off, uint(i)%8)
		}
		// The flips made are the bits promised: every stride-th of the
		// data (every one with WALPUB_BITFLIP=full, as CI's fuzz stage
		// runs it), and the tail's samples.
		want := (8*end+stride-1)/stride + samples
		if full {
			want = 8*end + samples
		}
		if c.flips != want {
			t.Errorf("%s %s: %d flips, want %d (%d data bytes, every %s bit, %d tail samples)", label, name, c.flips, want, end, ordinal(stride), samples)
		}
		t.Logf("%s %-26s %6d bytes (data %6d): %6d flips, %6d detected, %6d harmless, %d failed",
			label, name, len(orig), end, c.flips, c.detected, c.harmless, c.failed)
		total.flips += c.flips
		total.detected += c.detected
		total.harmless += c.harmless
		total.failed += c.failed
	}
	t.Logf("%-26s %s: %6d flips, %6d detected, %6d harmless, %d failed (every %s bit, %v)",
		"total", label, total.flips, total.detected, total.harmless, total.failed, ordinal(stride), time.Since(start).Round(time.Millisecond))
}

func ordinal(n int) string {
	if n == 1 {
		return "single"
	}
	return fmt.Sprintf("%dth", n)
}

// hasFoldedFrames reports whether a segment of files holds a frame with
// the payload sum flag.
func hasFoldedFrames(files snapshot) bool {
	for name, b := range files {
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		for sc := segment.NewScanner(b, segment.HeaderSize); sc.Next(); {
			if sc.Current().Flags&segment.FlagSumPayload != 0 {
				return true
			}
		}
	}
	return false
}
