package wal

import (
	"bytes"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/segment"
)

// TestReaderUnpinsWithoutLock: a reader lets go of a segment file without
// taking the log's lock, which an appender may hold meanwhile (the Kafka
// producer's sender waited for its writer there after every GetRange); a
// file that a reclaim retired while a reader held it stays mapped until
// that reader lets go, and closes then.
func TestReaderUnpinsWithoutLock(t *testing.T) {
	l := mustOpen(t, t.TempDir(), WithSegmentSize(smallSeg))
	rec := bytes.Repeat([]byte("r"), 1000)
	for l.Stats().Segments < 3 {
		if _, err := l.Append(rec); err != nil {
			t.Fatal(err)
		}
	}

	// Pin the oldest segment's file as GetRange does.
	l.mu.Lock()
	first := l.segs[0]
	f, lo, hi := first.file, first.firstSeq, l.segs[1].firstSeq
	f.pin()
	l.mu.Unlock()

	// Acknowledge its records and reclaim it: the log retires the file
	// while the reader holds it.
	for q := lo; q < hi; q++ {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
	}
	l.reclaimNow()
	l.mu.Lock()
	gone := l.segs[0] != first && f.retired
	l.mu.Unlock()
	if !gone {
		t.Fatal("the pinned segment was not reclaimed: the fault did not fire")
	}
	fr, err := segment.DecodeFrame(f.Bytes(), segment.HeaderSize)
	if err != nil || fr.Seq != lo || !bytes.Equal(fr.Payload, rec) {
		t.Fatalf("retired file while pinned: frame %+v, %v; want seq %d readable", fr.Seq, err, lo)
	}

	// The reader lets go while an appender holds the lock.
	done := make(chan struct{})
	l.mu.Lock()
	go func() {
		defer close(done)
		f.unpin()
	}()
	select {
	case <-done:
		l.mu.Unlock()
	case <-time.After(10 * time.Second):
		l.mu.Unlock()
		<-done
		t.Fatal("unpin waited for the log's lock")
	}
	if f.Size() != 0 {
		t.Fatalf("retired file still mapped (%d bytes) after its last reader let go", f.Size())
	}
}
