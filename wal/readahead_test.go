package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walpub/walpub/wal/segment"
)

// readAheadLog writes a log of one 16 MiB segment holding about 8 MiB of
// records, some acknowledged and one larger than two windows in the
// middle, and reopens it.
func readAheadLog(t *testing.T) (*Log, *model, string) {
	t.Helper()
	dir := t.TempDir()
	opts := []Option{WithSegmentSize(16 << 20)}
	l := mustOpen(t, dir, opts...)
	m := newModel()
	r := rand.New(rand.NewPCG(11, 11))
	for i := 0; m.pendingBytes() < 8<<20; i++ {
		d := randRecord(r, r.IntN(5000))
		if i == 1000 {
			d = randRecord(r, 2*readWindow+100)
		}
		m.appendAck(t, l, d, r.IntN(5) == 0)
	}
	mustClose(t, l)
	l = mustOpen(t, dir, opts...)
	return l, m, dir
}

// TestPendingReadAhead: Pending reads windows ahead of the one it yields
// from, cut at record frames; it yields what was written, with a record
// larger than two windows in between (where the plan stops), and every
// read it started is over when a consumer stops or panics.
func TestPendingReadAhead(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	ignore := goleak.IgnoreCurrent()
	l, m, _ := readAheadLog(t)
	l.mu.Lock()
	s := l.segs[0]
	cuts := readAheadCuts(s.locs, segment.HeaderSize, s.tail)
	tail := s.tail
	l.mu.Unlock()
	if len(cuts) < 2 || cuts[len(cuts)-1] >= tail {
		t.Fatalf("read-ahead windows end at %v (data ends at %d): want several, stopping before the large record", cuts, tail)
	}
	m.check(t, l)

	n := 0
	for _, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 500 {
			break
		}
	}
	func() {
		defer func() {
			if r := recover(); r != "consumer" {
				t.Fatalf("recovered %v, want the consumer's panic", r)
			}
		}()
		for range l.Pending() {
			if n++; n == 1500 {
				panic("consumer")
			}
		}
	}()
	mustClose(t, l)
	goleak.VerifyNone(t, ignore)
}

// TestPendingReadAheadDamage: a frame damaged after Open (unknown flags)
// in a window read ahead ends the iteration with a *CorruptionError at
// its offset after every record before it; a file cut short under the log
// ends it with the short read, naming the file.
func TestPendingReadAheadDamage(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	l, m, _ := readAheadLog(t)
	l.mu.Lock()
	s := l.active
	path, tail := s.file.Path, s.tail
	var bad uint64
	var off int64
	for q := s.firstSeq; ; q++ {
		o, ok := s.locs.Lookup(q)
		if !ok {
			t.Fatal("no record frame past 3 MiB")
		}
		if o > 3<<20 && !m.acked[q] {
			bad, off = q, o
			break
		}
	}
	flags := s.file.Bytes()[off+12 : off+16]
	saved := binary.LittleEndian.Uint32(flags)
	binary.LittleEndian.PutUint32(flags, 1<<20)
	l.mu.Unlock()
	recs, err := collectPending(l)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Path != path || ce.Offset != off {
		t.Fatalf("Pending over a damaged frame: %v, want a *CorruptionError at %s offset %d", err, path, off)
	}
	want := 0
	for q := range m.data {
		if q < bad && !m.acked[q] {
			want++
		}
	}
	if len(recs) != want {
		t.Fatalf("Pending yielded %d records before the damage, want %d", len(recs), want)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Data, m.data[r.Seq]) {
			t.Fatalf("record %d differs", r.Seq)
		}
	}

	// The frame repaired, so that the cut is all that is wrong.
	l.mu.Lock()
	binary.LittleEndian.PutUint32(flags, saved)
	l.mu.Unlock()
	if err := os.Truncate(path, 5<<20); err != nil {
		t.Fatal(err)
	}
	if tail <= 6<<20 {
		t.Fatalf("data ends at %d: the cut at 5 MiB must leave records after it", tail)
	}
	recs, err = collectPending(l)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "read "+path) {
		t.Fatalf("Pending of a file cut short: %v, want an unexpected EOF reading %s", err, path)
	}
	if len(recs) == 0 {
		t.Fatal("no record before the cut")
	}
	l.Close() // fails or not: the log is damaged
}

// TestPendingReadAheadStopsAtEnd: records appended during an iteration
// are not yielded, also where they land in a window read ahead: the
// second segment's data, read when the iteration reaches it, holds
// records appended while the first was yielded, after two windows of
// records written before the call.
func TestPendingReadAheadStopsAtEnd(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	l := mustOpen(t, t.TempDir(), WithSegmentSize(4<<20))
	defer mustClose(t, l)
	rec := make([]byte, 1000)
	var last uint64
	for {
		q, err := l.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		last = q
		l.mu.Lock()
		segs, tail := len(l.segs), l.active.tail
		l.mu.Unlock()
		if segs == 2 && tail > 3*readWindow {
			break
		}
	}
	n := 0
	for r, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 1 {
			for range 100 {
				if _, err := l.Append(rec); err != nil {
					t.Fatal(err)
				}
			}
		}
		if r.Seq > last {
			t.Fatalf("Pending yielded record %d, appended during the iteration (the last before it: %d)", r.Seq, last)
		}
	}
	if n != int(last) {
		t.Fatalf("Pending yielded %d records, want %d", n, last)
	}
}

// TestPendingReadAheadSeesAcks: a record acknowledged during the
// iteration is not yielded after, though the window holding it was read
// (and its records listed) before the Ack.
func TestPendingReadAheadSeesAcks(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	l, m, _ := readAheadLog(t)
	defer mustClose(t, l)
	pending := m.pending()
	at := map[uint64]int{}
	for i, q := range pending {
		at[q] = i
	}
	acked := map[uint64]bool{}
	n := 0
	for r, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if acked[r.Seq] {
			t.Fatalf("Pending yielded record %d, acknowledged during the iteration", r.Seq)
		}
		if i := at[r.Seq]; n%100 == 0 && i+3 < len(pending) {
			q := pending[i+3] // a few records on: in the window yielded from
			if err := l.Ack(q); err != nil {
				t.Fatal(err)
			}
			acked[q] = true
		}
		n++
	}
	if want := len(pending) - len(acked); n != want || len(acked) < 10 {
		t.Fatalf("Pending yielded %d records, want %d (%d acknowledged during the iteration)", n, want, len(acked))
	}
}

// TestPendingReadAheadJoined: a consumer that stops early gets control
// back only once every window read ahead is done with, so that nothing
// reads the file after Pending returns (a segment the caller then lets go
// of, or a Close, may unmap it). The windows after the first are held up
// a while: Pending must wait for them. The first waits until one of them
// has begun (on the other goroutine reading), so that the consumer cannot
// be done before any is read ahead.
func TestPendingReadAheadJoined(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	l, _, _ := readAheadLog(t)
	defer mustClose(t, l)
	var started, done, held atomic.Int32
	gate := make(chan struct{})
	hold := func(window int) {
		started.Add(1)
		defer done.Add(1)
		if window > 0 {
			held.Add(1)
			<-gate
			return
		}
		for deadline := time.Now().Add(5 * time.Second); held.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	readAheadHook.Store(&hold)
	defer readAheadHook.Store(nil)
	timer := time.AfterFunc(100*time.Millisecond, func() { close(gate) })
	defer timer.Stop()
	for _, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if s, d := started.Load(), done.Load(); s != d {
		t.Fatalf("Pending returned with %d of %d read-ahead goroutines still reading", s-d, s)
	}
	if held.Load() == 0 {
		t.Fatal("no window after the first was read ahead: the test held nothing up")
	}
}

// TestPendingReadsPastSlowWindow: while the window Pending yields next is
// still being read, the windows after it are read meanwhile, by the other
// goroutine (the caller's or the one reading ahead, whichever did not take
// the slow one), up to the windows Pending may hold; with one goroutine
// reading ahead on two cores, a caller that only waited would read none.
func TestPendingReadsPastSlowWindow(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(16<<20))
	m := newModel()
	r := rand.New(rand.NewPCG(12, 12))
	for n := 0; n < 8*readWindow; n += 1000 {
		d := randRecord(r, 1000)
		q, err := l.Append(d)
		if err != nil {
			t.Fatal(err)
		}
		m.data[q] = d
	}
	mustClose(t, l)
	l = mustOpen(t, dir, WithSegmentSize(16<<20))
	defer mustClose(t, l)
	var started, seen atomic.Int32
	hold := func(window int) {
		started.Add(1)
		if window != 0 {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for started.Load() < aheadSlots && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		seen.Store(started.Load())
	}
	readAheadHook.Store(&hold)
	defer readAheadHook.Store(nil)
	n := 0
	for r, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Data, m.data[r.Seq]) {
			t.Fatalf("seq %d: wrong data", r.Seq)
		}
		n++
	}
	if seen.Load() < aheadSlots {
		t.Fatalf("while window 0 was read, %d windows were started, want %d", seen.Load(), aheadSlots)
	}
	if n != len(m.data) {
		t.Fatalf("Pending yielded %d records, want %d", n, len(m.data))
	}
}
