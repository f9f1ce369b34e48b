package wal

import (
	"path/filepath"
	"testing"
	"time"
)

// TestAckSyncAlwaysWaitsForEarlierAck: under SyncAlways, an Ack of a seq
// another goroutine's Ack has just set in memory (its ack frame not yet
// synced) must not return before that frame is durable: SyncAlways makes
// every Ack that returned durable. The first Ack's sync round is held; if
// the second Ack returns meanwhile, a power cut must find the record
// acknowledged.
func TestAckSyncAlwaysWaitsForEarlierAck(t *testing.T) {
	l, cfs, quiet := openCutSyncAlways(t)
	defer l.Close()
	seq, err := l.Append([]byte("record"))
	if err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	rounds := 0
	hook := func() {
		rounds++
		if rounds == 1 {
			close(held)
			<-release
		}
	}
	syncCapturedHook.Store(&hook)
	defer syncCapturedHook.Store(nil)

	first := make(chan error, 1)
	go func() { first <- l.Ack(seq) }() // writes the ack frame, its sync round held
	<-held
	second := make(chan error, 1)
	go func() { second <- l.Ack(seq) }()
	var secondErr error
	select {
	case secondErr = <-second:
	case <-time.After(500 * time.Millisecond):
		// It waits for the durable ack frame: the behaviour wanted.
		cfs.cut()
		close(release)
		<-first
		<-second
		return
	}
	cfs.cut() // the power goes while the first Ack's round is held
	close(release)
	<-first
	after := filepath.Join(t.TempDir(), "after")
	snapshot(cfs.image).write(t, after)
	l2 := mustOpen(t, after, WithSegmentSize(smallSeg), WithLogger(quiet))
	defer l2.Close()
	if secondErr == nil && l2.Stats().Pending != 0 {
		t.Fatalf("Ack(%d) returned nil under SyncAlways before the first Ack's frame was synced; after a power cut the record is pending again (Pending %d)", seq, l2.Stats().Pending)
	}
}
