package walpub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/adapter/kafka/hop"
	"github.com/walpub/walpub/internal/headers"
	"github.com/walpub/walpub/internal/kafkaoffsets"
	"github.com/walpub/walpub/wal"
)

// chunk is a batch of records read from the input, or the error that
// ended the input. Its records are lines line, line+1, ... of the input
// name (line 0: the record is a --whole input).
type chunk struct {
	recs []*kgo.Record
	name string
	line int64
	err  error
	// journaled, if not nil, is closed once publish has journaled recs.
	journaled chan struct{}
}

const (
	chunkRecords = 1024     // records per chunk, at most
	chunkBytes   = 64 << 10 // value bytes per chunk, about
	readBuffer   = 256 << 10
)

// handoff passes the chunks the reader makes to publish. When publish
// stops taking them (stopLocked), the two agree on that moment under mu:
// every record the reader read is then either taken by publish (and
// journaled) or refused by send and named, as is what a read returns after
// publish stopped (inputReader.Read), so that no line read goes
// unmentioned.
type handoff struct {
	ch   chan chunk
	room chan struct{} // cap 1: publish took a chunk
	done chan struct{} // closed when publish stops taking chunks

	mu      sync.Mutex
	stopped bool
	input   *inputReader // the input being read
	// notJournaled counts the complete lines (--whole: inputs) read
	// from the input and not journaled because publish had stopped.
	notJournaled int64

	// For joinReader: wake (on mu) is signalled when the reader ends
	// (readerEnded), starts a read (input.blocked) or opens an input
	// (opening: its name, while os.Open may wait, a FIFO's for a
	// writer). final: walpub ends with the reader in such a wait, and
	// no note follows the summary.
	wake        *sync.Cond
	readerEnded bool
	opening     string
	final       bool
}

func newHandoff() handoff {
	return handoff{ch: make(chan chunk, 4), room: make(chan struct{}, 1), done: make(chan struct{})}
}

// stopLocked makes the reader hand over nothing more and returns the
// chunks it handed over that publish has not taken.
func (h *handoff) stopLocked() (rest []chunk) {
	if h.stopped {
		return nil
	}
	h.stopped = true
	close(h.done)
	for {
		select {
		case c, ok := <-h.ch:
			if !ok {
				return rest
			}
			rest = append(rest, c)
		default:
			return rest
		}
	}
}

// errStopped ends a read once publish takes no more records.
var errStopped = errors.New("walpub: publish stopped taking input")

// send hands c over to publish. It returns false, c refused (counted and
// named), once publish has stopped taking chunks.
func (r *run) send(c chunk) bool {
	h := &r.hand
	for {
		h.mu.Lock()
		if h.stopped {
			r.refuseLocked(c)
			h.mu.Unlock()
			return false
		}
		select {
		case h.ch <- c:
			h.mu.Unlock()
			return true
		default:
		}
		h.mu.Unlock()
		select {
		case <-h.room:
		case <-h.done:
		}
	}
}

// refuseLocked counts and names the records of c, read from the input
// and never to be journaled.
func (r *run) refuseLocked(c chunk) {
	n := int64(len(c.recs))
	if n == 0 {
		return
	}
	r.hand.notJournaled += n
	if c.line == 0 {
		r.notef("%s, read whole, is not journaled", c.name)
		return
	}
	r.notef("%s: %s, read, %s not journaled", c.name, lineRange(c.line, n), plural(n, "is", "are"))
}

// lineRange names n lines from line first.
func lineRange(first, n int64) string {
	if n == 1 {
		return fmt.Sprintf("line %d", first)
	}
	return fmt.Sprintf("lines %d-%d", first, first+n-1)
}

// publish journals every record of the input until the input ends, an
// interrupt comes, or Write fails. After an interrupt it still journals
// the records the reader has handed over (the chunk at hand and those
// queued): they were read from the input, which may not give them again
// (a pipe), also after a second interrupt, which ends the drain: a Write
// does not wait (walpub's journal has no wal.WithMaxBytes bound), and the
// reader, which reads no more, soon hands over the rest or waits in a
// read. Whatever the reader reads after publish returned is named as not
// journaled (handoff).
func (r *run) publish(p *kafka.Producer) error {
	h := &r.hand
	// The reader ends when the input does or when it next sends after
	// publish stopped; joinReader waits for it, cancelling a read that
	// waits (a terminal that never delivers) where it can.
	go func() {
		r.read()
		h.mu.Lock()
		h.readerEnded = true
		h.wake.Broadcast()
		h.mu.Unlock()
	}()
	defer func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.stopLocked() {
			r.refuseLocked(c)
		}
	}()

	ctx := context.Background()
	journal := func(c chunk) error {
		for i, rec := range c.recs {
			if err := p.Write(ctx, rec); err != nil {
				where := c.name
				if c.line > 0 {
					where = fmt.Sprintf("%s, line %d", c.name, c.line+int64(i))
				}
				if errors.Is(err, kafka.ErrNotSynced) {
					// Journaled, and sent: counted as such.
					r.written.Add(1)
					err = fmt.Errorf("%s: %w", where, err)
				} else {
					err = fmt.Errorf("%s: not journaled: %w", where, err)
				}
				h.mu.Lock()
				r.refuseLocked(chunk{recs: c.recs[i+1:], name: c.name, line: c.line + int64(i) + 1})
				h.mu.Unlock()
				return err
			}
			r.written.Add(1)
		}
		if c.journaled != nil {
			close(c.journaled)
		}
		return c.err
	}
	take := func(c chunk) error {
		select {
		case h.room <- struct{}{}:
		default:
		}
		return journal(c)
	}
	for {
		select {
		case <-r.interrupted:
			// The reader reads no more (inputReader) but hands over the
			// lines it holds: journal them, until it is done, or waits in
			// a read with nothing left to hand over (everything it read
			// from the input is taken), or stops handing any over.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			last := time.Now()
			for {
				select {
				case c, ok := <-h.ch:
					if !ok {
						return nil
					}
					if err := take(c); err != nil {
						return err
					}
					last = time.Now()
				case now := <-tick.C:
					h.mu.Lock()
					if in := h.input; in != nil && in.blocked && len(h.ch) == 0 {
						// The read may never return: stop waiting for it,
						// naming what the reader holds of a line begun.
						h.stopLocked()
						r.noteCut(in, in.heldLine, in.heldBytes)
						h.mu.Unlock()
						return nil
					}
					if now.Sub(last) <= interruptGrace {
						h.mu.Unlock()
						continue
					}
					rest := h.stopLocked()
					h.mu.Unlock()
					for i, c := range rest {
						if err := journal(c); err != nil {
							h.mu.Lock()
							for _, c := range rest[i+1:] {
								r.refuseLocked(c)
							}
							h.mu.Unlock()
							return err
						}
					}
					return nil
				}
			}
		case c, ok := <-h.ch:
			if !ok {
				return nil
			}
			if err := take(c); err != nil {
				return err
			}
		}
	}
}

// joinReader waits for the reader to end, so that every note it prints
// comes before the summary. Publish has stopped taking input: the reader
// then ends at its next step, unless it waits in a read begun before, or
// in opening an input, which may never return (a terminal or a pipe that
// delivers nothing more, a FIFO no writer opens). A read of a file walpub
// opened or was given (standard input) is cancelled (readGate), and the
// reader ends. walpub does not wait for another (an Env.Stdin that is no
// *os.File, or on a system without readGate), nor for an open (open(2)
// of a FIFO cannot be cancelled): it says so, and what the wait returns
// goes unnamed (final).
func (r *run) joinReader() {
	h := &r.hand
	h.mu.Lock()
	defer h.mu.Unlock()
	for !h.readerEnded {
		switch in := h.input; {
		case h.opening != "":
			h.final = true
			r.notef("%s is not read: walpub ends while opening it waits", h.opening)
			return
		case in != nil && in.blocked && in.cancel != nil:
			// The read ends (errCanceled), then the reader.
			in.cancel()
			in.cancel = nil
		case in != nil && in.blocked:
			h.final = true
			r.notef("%s: walpub ends while a read of it waits: what that read returns is not journaled", in.name)
			return
		}
		h.wake.Wait()
	}
}

// interruptGrace bounds how long publish, after an interrupt, waits for a
// reader that hands over nothing and is not waiting in a read (opening a
// FIFO, say).
const interruptGrace = 2 * time.Second

// inputReader reads the input for readFile until the first interrupt:
// then it ends the input (io.EOF, cut set) instead of reading more, so
// that the lines already read are handed over, not more. Before each read
// that may wait, it hands over the lines parsed so far (flush): while it
// waits (blocked), everything read from the input is handed over but the
// start of a line (or of a --whole input) that held reports: heldLine and
// heldBytes, for publish to name them when it does not wait for the read.
// A read that returns after publish stopped taking input ends the input
// (errStopped), and what it returned is named as not journaled.
type inputReader struct {
	r     io.Reader
	run   *run
	name  string
	intr  <-chan struct{}
	flush func() bool
	held  func() (line, bytes int64) // nil: every byte read is held (--whole)
	read  int64                      // bytes read so far
	// cancel ends a read that waits (readGate), making the reader
	// end; nil if reads of this input cannot be cancelled.
	cancel func()
	cut    atomic.Bool
	noted  atomic.Bool // the bytes cut have been named

	// Guarded by run.hand.mu.
	blocked             bool
	heldLine, heldBytes int64
}

// readHook, if set (by tests), runs before each read of the input that
// may wait, with the bytes held of the line begun.
var readHook atomic.Pointer[func(held int64)]

func (in *inputReader) Read(p []byte) (int, error) {
	if in.interrupted() {
		return 0, io.EOF
	}
	if in.flush != nil && !in.flush() {
		return 0, errStopped
	}
	if in.interrupted() {
		return 0, io.EOF
	}
	line, held := int64(0), in.read
	if in.held != nil {
		line, held = in.held()
	}
	h := &in.run.hand
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return 0, errStopped
	}
	in.heldLine, in.heldBytes, in.blocked = line, held, true
	h.wake.Broadcast()
	h.mu.Unlock()
	if hook := readHook.Load(); hook != nil {
		(*hook)(held)
	}
	n, err := in.r.Read(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	in.blocked = false
	if h.stopped {
		in.noteLateLocked(p[:n], line)
		return 0, errStopped
	}
	in.read += int64(n)
	return n, err
}

// noteLateLocked counts and names the bytes a read returned after publish
// stopped taking input: the end of line and the lines after it (line 0:
// more of a --whole input).
func (in *inputReader) noteLateLocked(late []byte, line int64) {
	r := in.run
	if len(late) == 0 || r.hand.final {
		// final: after the summary, which said that what this read
		// returns is not journaled (joinReader).
		return
	}
	if line == 0 {
		r.notef("%s: %d more bytes, read after walpub stopped taking input, are not journaled", in.name, len(late))
		return
	}
	n := int64(bytes.Count(late, []byte("\n")))
	tail := len(late) - (bytes.LastIndexByte(late, '\n') + 1)
	r.hand.notJournaled += n
	switch {
	case n == 0:
		r.notef("%s: %d bytes of line %d, read after walpub stopped taking input, are not journaled", in.name, tail, line)
	case tail == 0:
		r.notef("%s: %s, read after walpub stopped taking input, %s not journaled", in.name, lineRange(line, n), plural(n, "is", "are"))
	default:
		r.notef("%s: %s and %d bytes of line %d, read after walpub stopped taking input, are not journaled",
			in.name, lineRange(line, n), tail, line+n)
	}
}

// noteCut names, once, the bytes of in that an interrupt left read but
// not journaled: the start of line (0: of a --whole input).
func (r *run) noteCut(in *inputReader, line, bytes int64) {
	if bytes == 0 || in.noted.Swap(true) {
		return
	}
	if line == 0 {
		r.notef("interrupted while reading %s: its %d bytes read so far are not journaled", in.name, bytes)
		return
	}
	r.notef("interrupted while reading %s: its line %d, %d bytes read so far, is not journaled", in.name, line, bytes)
}

func (in *inputReader) interrupted() bool {
	select {
	case <-in.intr:
		in.cut.Store(true)
		return true
	default:
		return false
	}
}

// read sends the input's records to publish in chunks and closes the
// handoff's channel at the end of the input.
func (r *run) read() {
	defer close(r.hand.ch)
	files := r.cfg.files
	if len(files) == 0 {
		files = []string{"-"}
	}
	for i, name := range files {
		r.reading.Store(int64(i))
		if !r.readFile(name) {
			return
		}
	}
}

// handOver hands c over to publish (send) and, under --sync always, waits
// until publish has journaled it, so that no more of the input is read
// before its records are durable. It returns false once publish has
// stopped taking chunks.
func (r *run) handOver(c chunk) bool {
	if !r.syncAlways() {
		return r.send(c)
	}
	c.journaled = make(chan struct{})
	if !r.send(c) {
		return false
	}
	select {
	case <-c.journaled:
	case <-r.hand.done:
	}
	return true
}

func (r *run) syncAlways() bool { return r.cfg.sync == wal.SyncAlways }

// readFile reads one input file ("-": standard input); it returns false
// when reading must stop.
func (r *run) readFile(name string) bool {
	var in io.Reader = r.env.Stdin
	if name != "-" {
		h := &r.hand
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			return false
		}
		h.opening = name
		h.wake.Broadcast()
		h.mu.Unlock()
		f, err := os.Open(name)
		h.mu.Lock()
		h.opening = ""
		h.mu.Unlock()
		if err != nil {
			r.send(chunk{err: err})
			return false
		}
		defer f.Close()
		in = f
	} else {
		name = "standard input"
	}
	// A read of a pipe or a terminal may wait forever: through a gate,
	// joinReader can end it.
	var gate *readGate
	if f, ok := in.(*os.File); ok && !isRegular(f) {
		gate = newReadGate()
		defer gate.close()
	}
	if r.syncAlways() && !r.cfg.whole && !isRegular(in) {
		// A line is durable before the next is read: from a pipe or a
		// terminal, which does not give back what was read ahead, no
		// read may go past the line's end. A regular file is read
		// ahead: what is read from it stays there.
		var release func()
		in, release = lineBounded(in, gate)
		defer release()
	} else if f, ok := in.(*os.File); ok {
		in = gated(f, gate)
	}
	ir := &inputReader{r: in, run: r, name: name, intr: r.interrupted}
	if gate != nil {
		ir.cancel = gate.cancel
	}
	r.hand.mu.Lock()
	r.hand.input = ir
	r.hand.mu.Unlock()
	in = ir
	if r.cfg.whole {
		data, err := io.ReadAll(in)
		if errors.Is(err, errStopped) {
			return false
		}
		if err != nil {
			r.send(chunk{err: fmt.Errorf("reading %s: %w", name, err)})
			return false
		}
		if ir.cut.Load() {
			r.noteCut(ir, 0, int64(len(data)))
			return false
		}
		rec := r.record(data)
		if err := r.check(rec.Value); err != nil {
			r.send(chunk{err: fmt.Errorf("%s: %w", name, err)})
			return false
		}
		return r.handOver(chunk{recs: []*kgo.Record{rec}, name: name})
	}
	br := bufio.NewReaderSize(in, readBuffer)
	var recs []*kgo.Record
	arena := make([]byte, 0, chunkBytes)
	lineNo := int64(1)
	first := lineNo // the line of recs[0]
	flush := func() bool {
		if len(recs) == 0 {
			return true
		}
		ok := r.handOver(chunk{recs: recs, name: name, line: first})
		recs, arena = nil, make([]byte, 0, chunkBytes)
		return ok
	}
	ir.flush = flush
	var long []byte // a line longer than br's buffer, so far
	// Before a read, br holds only the start of a line: ReadSlice reads
	// when it finds no '\n'.
	ir.held = func() (int64, int64) { return lineNo, int64(len(long) + br.Buffered()) }
	for ; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line, long = long, nil
		}
		if errors.Is(err, errStopped) {
			// Named: the lines read (send, noteLateLocked), the line
			// begun (noteCut).
			return false
		}
		if len(line) > 0 && err == io.EOF && ir.cut.Load() {
			// The rest of this line was never read: not a record.
			r.noteCut(ir, lineNo, int64(len(line)))
			line = nil
		}
		if len(line) > 0 {
			if l, ok := bytes.CutSuffix(line, []byte("\n")); ok {
				// "\r" alone, at the end of the input, is no line ending.
				line = bytes.TrimSuffix(l, []byte("\r"))
			}
			start := len(arena)
			arena = append(arena, line...)
			rec := r.record(arena[start:len(arena):len(arena)])
			if cerr := r.check(rec.Value); cerr != nil {
				// The lines before it are journaled and sent; the
				// input stops here.
				if flush() {
					r.send(chunk{err: fmt.Errorf("%s, line %d: %w", name, lineNo, cerr)})
				}
				return false
			}
			if len(recs) == 0 {
				first = lineNo
			}
			recs = append(recs, rec)
		}
		if err == io.EOF {
			return flush() && !ir.cut.Load()
		}
		if err != nil {
			flush()
			r.send(chunk{err: fmt.Errorf("reading %s: %w", name, err)})
			return false
		}
		// Hand over what there is when the input pauses, so that an
		// interactive line is published at once.
		if len(recs) >= chunkRecords || len(arena) >= chunkBytes || br.Buffered() == 0 {
			if !flush() {
				return false
			}
		}
	}
}

// check checks a record's value against --hop-format.
func (r *run) check(value []byte) error {
	if r.cfg.hopFormat == "" {
		return nil
	}
	return hop.Check(r.cfg.hopFormat, value)
}

// record makes the record for one line or file. Records share the key
// and header slices: Write neither keeps nor modifies them.
func (r *run) record(value []byte) *kgo.Record {
	rec := &kgo.Record{Topic: r.cfg.topic, Value: value, Headers: r.cfg.recHeaders}
	switch {
	case r.cfg.key != nil:
		rec.Key = r.keyBytes
	case r.cfg.keyDelim != "":
		if k, v, ok := bytes.Cut(value, []byte(r.cfg.keyDelim)); ok {
			rec.Key, rec.Value = k, v
		}
	}
	return rec
}

// drain closes the producer, waiting for confirmations as long as they
// keep coming (at most --drain-timeout without one), and after an
// interrupt at most --drain-timeout; a second interrupt ends it at once.
func (r *run) drain(p *kafka.Producer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := p.Stats().Delivered, time.Now()
	limit := r.cfg.drainTimeout
	for {
		select {
		case err := <-closed:
			return err
		case <-r.aborted:
			cancel()
		case now := <-tick.C:
			if d := p.Stats().Delivered; d != last {
				last, lastAt = d, now
			}
			if limit == 0 {
				continue
			}
			stalled := now.Sub(lastAt) >= limit
			late := r.isInterrupted() && now.Sub(time.Unix(0, r.intrAt.Load())) >= limit
			if stalled || late {
				cancel()
			}
		}
	}
}

// readBack consumes the embedded broker's topic read_committed and counts
// its records and their distinct _id headers.
func (r *run) readBack() (records, distinct int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := map[[16]byte]struct{}{}
	n, err := kafkaoffsets.Consume(ctx, []kgo.Opt{kgo.SeedBrokers(r.broker.ListenAddrs()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, r.cfg.topic,
		func(rec *kgo.Record) {
			if id, _ := headers.Value(rec, "_id"); len(id) == 16 {
				ids[[16]byte(id)] = struct{}{}
			}
		})
	return int(n), len(ids), err
}

// lockedWriter serialises the writes of the goroutines that share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
