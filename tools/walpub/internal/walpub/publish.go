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
)

// chunk is a batch of records read from the input, or the error that
// ended the input.
type chunk struct {
	recs []*kgo.Record
	err  error
}

const (
	chunkRecords = 1024     // records per chunk, at most
	chunkBytes   = 64 << 10 // value bytes per chunk, about
	readBuffer   = 256 << 10
)

// publish journals every record of the input until the input ends, an
// interrupt comes, or Write fails. After an interrupt it still journals
// the records the reader has handed over (the chunk at hand and those
// queued): they were read from the input, which may not give them again
// (a pipe), also after a second interrupt, which ends the drain: a Write
// does not wait (walpub's journal has no wal.WithMaxBytes bound), and the
// reader, which reads no more, soon hands over the rest or waits in a
// read.
func (r *run) publish(p *kafka.Producer) error {
	chunks := make(chan chunk, 4)
	stop := make(chan struct{})
	// The reader ends when the input does or when it next sends after
	// stop; a read blocked on a terminal that never delivers ends with
	// the process.
	go r.read(chunks, stop)
	defer close(stop)

	ctx := context.Background()
	journal := func(c chunk) error {
		for _, rec := range c.recs {
			if err := p.Write(ctx, rec); err != nil {
				return fmt.Errorf("journaling a record: %w", err)
			}
			r.written.Add(1)
		}
		return c.err
	}
	for {
		select {
		case <-r.interrupted:
			// The reader reads no more (inputReader) but hands over the
			// lines it holds: journal them, until it is done, or waits in
			// a read with nothing left to hand over (everything it read
			// from the input is in chunks), or stops handing any over.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			last := time.Now()
			for {
				select {
				case c, ok := <-chunks:
					if !ok {
						return nil
					}
					if err := journal(c); err != nil {
						return err
					}
					last = time.Now()
				case now := <-tick.C:
					if in := r.input.Load(); in != nil && in.blocked.Load() && len(chunks) == 0 {
						// The read may never return: name what the
						// reader holds of a line begun.
						r.noteCut(in, in.heldLine.Load(), in.heldBytes.Load())
						return nil
					}
					if now.Sub(last) > interruptGrace {
						return nil
					}
				}
			}
		case c, ok := <-chunks:
			if !ok {
				return nil
			}
			if err := journal(c); err != nil {
				return err
			}
		}
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
type inputReader struct {
	r       io.Reader
	name    string
	intr    <-chan struct{}
	flush   func() bool
	held    func() (line, bytes int64) // nil: every byte read is held (--whole)
	read    int64                      // bytes read so far
	blocked atomic.Bool
	cut     atomic.Bool
	noted   atomic.Bool // the bytes cut have been named

	heldLine, heldBytes atomic.Int64
}

func (in *inputReader) Read(p []byte) (int, error) {
	if in.interrupted() {
		return 0, io.EOF
	}
	if in.flush != nil {
		in.flush()
	}
	if in.interrupted() {
		return 0, io.EOF
	}
	line, held := int64(0), in.read
	if in.held != nil {
		line, held = in.held()
	}
	in.heldLine.Store(line)
	in.heldBytes.Store(held)
	in.blocked.Store(true)
	n, err := in.r.Read(p)
	in.read += int64(n)
	in.blocked.Store(false)
	return n, err
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

// read sends the input's records to out in chunks and closes out at the
// end of the input.
func (r *run) read(out chan<- chunk, stop <-chan struct{}) {
	defer close(out)
	send := func(c chunk) bool {
		select {
		case out <- c:
			return true
		case <-stop:
			return false
		}
	}
	files := r.cfg.files
	if len(files) == 0 {
		files = []string{"-"}
	}
	for i, name := range files {
		r.reading.Store(int64(i))
		if !r.readFile(name, send) {
			return
		}
	}
}

// readFile reads one input file ("-": standard input); it returns false
// when reading must stop.
func (r *run) readFile(name string, send func(chunk) bool) bool {
	var in io.Reader = r.env.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			send(chunk{err: err})
			return false
		}
		defer f.Close()
		in = f
	} else {
		name = "standard input"
	}
	ir := &inputReader{r: in, name: name, intr: r.interrupted}
	r.input.Store(ir)
	in = ir
	if r.cfg.whole {
		data, err := io.ReadAll(in)
		if err != nil {
			send(chunk{err: fmt.Errorf("reading %s: %w", name, err)})
			return false
		}
		if ir.cut.Load() {
			r.noteCut(ir, 0, int64(len(data)))
			return false
		}
		rec := r.record(data)
		if err := r.check(rec.Value); err != nil {
			send(chunk{err: fmt.Errorf("%s: %w", name, err)})
			return false
		}
		return send(chunk{recs: []*kgo.Record{rec}})
	}
	br := bufio.NewReaderSize(in, readBuffer)
	var recs []*kgo.Record
	arena := make([]byte, 0, chunkBytes)
	flush := func() bool {
		if len(recs) == 0 {
			return true
		}
		ok := send(chunk{recs: recs})
		recs, arena = nil, make([]byte, 0, chunkBytes)
		return ok
	}
	ir.flush = flush
	lineNo := 1
	var long []byte // a line longer than br's buffer, so far
	// Before a read, br holds only the start of a line: ReadSlice reads
	// when it finds no '\n'.
	ir.held = func() (int64, int64) { return int64(lineNo), int64(len(long) + br.Buffered()) }
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
		if len(line) > 0 && err == io.EOF && ir.cut.Load() {
			// The rest of this line was never read: not a record.
			r.noteCut(ir, int64(lineNo), int64(len(line)))
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
					send(chunk{err: fmt.Errorf("%s, line %d: %w", name, lineNo, cerr)})
				}
				return false
			}
			recs = append(recs, rec)
		}
		if err == io.EOF {
			return flush() && !ir.cut.Load()
		}
		if err != nil {
			flush()
			send(chunk{err: fmt.Errorf("reading %s: %w", name, err)})
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
