package wal

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// TestRotationAllocatesNoFullBitmap rotates a 64 MiB segment that holds
// a thousand records, with the next segment and its index prepared (as
// the preparer leaves them), and counts the bytes the rotation allocates
// under the log's lock. Sealing the old segment copied its whole
// acknowledgement bitmap (256 KiB: a bit for every record the file could
// hold) and then copied again the words the records need; it now copies
// those words alone.
func TestRotationAllocatesNoFullBitmap(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	for range 1000 {
		if _, err := l.Append(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the next segment prepared and the first checkpoint", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.prepared != nil && l.ckptEpoch == l.ackEpoch
	})
	// The background goroutines wait for the lock while it is held: what
	// is allocated meanwhile is the rotation's.
	l.mu.Lock()
	old := l.active
	full := old.acks.Len() / 8 // the bitmap's bytes
	// The next segment's index, as the preparer makes it (prepareStep).
	if l.prepIndex == nil {
		ix := newSegIndex(l.prepared.Size())
		ix.reserve(l.expectRecordsLocked(l.prepared.Size()))
		l.prepIndex = ix
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := l.rotateLocked(l.cfg.segmentSize)
	runtime.ReadMemStats(&after)
	sealed := old.acks.Len()
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if sealed != 1000 {
		t.Fatalf("the sealed segment's bitmap covers %d seqs, want 1000", sealed)
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("the rotation allocated %d bytes under the lock", got)
	if got > full/8 {
		t.Errorf("the rotation allocated %d bytes under the lock; the full bitmap is %d", got, full)
	}
}
