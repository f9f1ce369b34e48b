package kafka

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestHandoffBounds fills the handoff by count and by bytes: a record that
// does not fit makes it refuse every record, room or not, until the sender
// has caught up.
func TestHandoffBounds(t *testing.T) {
	h := newHandoff(4*handoffShare, 1000*handoffShare)
	for i := range 4 {
		if !h.reserve(10) {
			t.Fatalf("reservation %d of 4 refused", i+1)
		}
		h.put(uint64(i+1), make([]byte, 10))
	}
	if h.reserve(10) {
		t.Fatal("a fifth record got into a handoff of 4")
	}
	if b, ok := h.take(1); !ok || len(b) != 10 {
		t.Fatalf("take(1) = %d bytes, %v", len(b), ok)
	}
	if h.reserve(10) {
		t.Fatal("the handoff took a record after one missed it, before the sender caught up")
	}
	h.caughtUp()
	if !h.reserve(10) {
		t.Fatal("the handoff refused a record after the sender caught up")
	}
	h.release(10)
	for seq := uint64(2); seq <= 4; seq++ {
		if _, ok := h.take(seq); !ok {
			t.Fatalf("record %d was not handed off", seq)
		}
	}
	if _, ok := h.take(5); ok {
		t.Fatal("take found a record never put")
	}
	if h.n != 0 || h.bytes != 0 || h.held.Load() != 0 {
		t.Fatalf("empty handoff counts %d records, %d bytes, %d held", h.n, h.bytes, h.held.Load())
	}
	if !h.reserve(1000) || h.reserve(1) {
		t.Fatal("the byte bound is not 1000")
	}
}

// TestHandoffBurst writes a burst far larger than the in-flight window and
// the handoff while the broker holds every produce request: the handoff
// holds at most its bound and then takes nothing (the rest is read back
// from the journal), and once the broker answers, every record lands once,
// in order per key, and the handoff takes records again.
func TestHandoffBurst(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(3, "t"))
	release := holdProduces(c)
	const window, n = 40, 500
	var reads atomic.Int64
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(window, 1<<20),
		withJournalRead(func(uint64) { reads.Add(1) }))
	ctx := ctxTimeout(t, 60*time.Second)
	writeRecords(t, ctx, p, n, 5, 100)
	h := &p.hand
	h.mu.Lock()
	held, reserved := len(h.m), h.n
	h.mu.Unlock()
	if !h.full.Load() || held > h.maxN || reserved > h.maxN {
		t.Fatalf("after %d records with %d in flight at most: handoff full %v, holding %d, reserved %d (bound %d)",
			n, window, h.full.Load(), held, reserved, h.maxN)
	}
	close(release)
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for h.full.Load() {
		if ctx.Err() != nil {
			t.Fatal("the handoff stayed full after every record was delivered")
		}
		time.Sleep(time.Millisecond)
	}
	if st := p.Stats(); st.Delivered != n {
		t.Fatalf("delivered %d, want %d (%+v)", st.Delivered, n, st)
	}
	// Before the release the sender read at most a window, and the
	// handoff took at most those and its bound: the rest was read back.
	if r, least := reads.Load(), int64(n-window-h.maxN); r < least || r > n {
		t.Fatalf("%d records read back from the journal, want %d to %d", r, least, n)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	parts := readTopic(t, c.ListenAddrs(), "t")
	checkOrder(t, parts)
	if tl := countIDs(t, parts); len(tl.copies) != n {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), n)
	}
}

// TestHandoffServesPacedWriter writes rounds of records smaller than the
// handoff, each confirmed (Flush) before the next, as a writer slower than
// the broker does: the sender takes every record from the handoff and
// reads none back from the journal.
func TestHandoffServesPacedWriter(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(3, "t"))
	const window, rounds = 40, 30
	const round = window / handoffShare // the handoff's bound
	var reads atomic.Int64
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(window, 1<<20),
		withJournalRead(func(uint64) { reads.Add(1) }))
	ctx := ctxTimeout(t, 60*time.Second)
	for r := range rounds {
		for i := range round {
			if err := p.Write(ctx, testRecord(r*round+i, 5, 100)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r := reads.Load(); r != 0 {
		t.Fatalf("%d of %d records read back from the journal: the handoff was bypassed", r, round*rounds)
	}
	if h := &p.hand; h.full.Load() || h.held.Load() != 0 {
		t.Fatalf("handoff full %v, holding %d after every record was delivered", h.full.Load(), h.held.Load())
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Delivered != round*rounds {
		t.Fatalf("delivered %d, want %d (%+v)", st.Delivered, round*rounds, st)
	}
	parts := readTopic(t, c.ListenAddrs(), "t")
	checkOrder(t, parts)
	if tl := countIDs(t, parts); len(tl.copies) != round*rounds {
		t.Fatalf("%d distinct records on the topic, want %d", len(tl.copies), round*rounds)
	}
}
