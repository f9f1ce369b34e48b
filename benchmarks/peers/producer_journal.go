package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"
)

func init() { producers[journalCeiling] = runJournaled }

// journalCeiling is the least a producer does whose written records
// survive kill -9 while its Write waits for no broker and its memory stays
// bounded, the robust producer's contract: each record is framed (length,
// xxhash64) into a shared mapping before Write returns, as mmap+xxhash
// does, and a sender reads it back from the journal, verifies it and hands
// it to a bare kgo client, which holds at most its default 10,000 records.
// It journals no acknowledgement, encodes no header or key and keeps no
// index: a ceiling for the robust producer, which does all of that too.
const journalCeiling = "kgo+journal"

// journal is kgo+journal's log: 64 MiB files, each preallocated and
// mapped shared. Positions count bytes from the start of the first file;
// file i holds positions [i*mappedSize, (i+1)*mappedSize). A zero length
// where a frame would start means the rest of that file is unused.
type journal struct {
	dir string

	mu   sync.Mutex
	maps [][]byte // by file; nil once the sender is past it

	// end and done are the writer's, waiting the sender's: each on its
	// own cache line, so that neither side's stores evict the other's.
	_       [64]byte
	end     atomic.Int64 // position after the last frame written
	done    atomic.Bool  // the writer wrote its last frame
	_       [64]byte
	waiting atomic.Bool // the sender waits for kick
	_       [64]byte
	kick    chan struct{} // capacity 1

	w   []byte // writer: the current file's mapping
	off int    // writer: next frame's offset in w
}

func openJournal(dir string) (*journal, error) {
	j := &journal{dir: dir, kick: make(chan struct{}, 1)}
	m, err := j.mapFile(0)
	if err != nil {
		return nil, err
	}
	j.w = m
	return j, nil
}

func (j *journal) mapFile(i int) ([]byte, error) {
	m, err := mapNewFile(filepath.Join(j.dir, fmt.Sprintf("journal.%d", i)))
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	j.maps = append(j.maps, m)
	j.mu.Unlock()
	return m, nil
}

// write journals p: once it returns, p is in the page cache.
func (j *journal) write(p []byte) error {
	n := bufHeader + len(p)
	if len(p) == 0 || n > mappedSize {
		return fmt.Errorf("%s: record of %d bytes", journalCeiling, len(p))
	}
	if j.off+n > mappedSize {
		m, err := j.mapFile(len(j.maps))
		if err != nil {
			return err
		}
		j.w, j.off = m, 0
	}
	d := j.w[j.off : j.off+n]
	binary.LittleEndian.PutUint64(d[4:12], xxhash.Sum64(p))
	copy(d[bufHeader:], p)
	binary.LittleEndian.PutUint32(d[0:4], uint32(len(p)))
	j.off += n
	j.publish(int64(len(j.maps)-1)*mappedSize + int64(j.off))
	return nil
}

func (j *journal) publish(end int64) {
	j.end.Store(end)
	if j.waiting.Load() && j.waiting.CompareAndSwap(true, false) {
		j.kick <- struct{}{}
	}
}

// finish tells the sender that nothing more will be written.
func (j *journal) finish() {
	j.done.Store(true)
	j.publish(j.end.Load())
}

// send reads every frame back, verifies it and produces it through cl,
// releasing each file once it is past it.
func (j *journal) send(ctx context.Context, cl *kgo.Client, cb func(*kgo.Record, error)) error {
	var pos int64
	var m []byte
	for {
		end := j.end.Load()
		if pos >= end {
			if j.done.Load() && pos >= j.end.Load() {
				return nil
			}
			j.waiting.Store(true)
			if pos < j.end.Load() || j.done.Load() {
				if !j.waiting.CompareAndSwap(true, false) {
					<-j.kick // the writer saw the flag and sends
				}
				continue
			}
			select {
			case <-j.kick:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		file, off := int(pos/mappedSize), int(pos%mappedSize)
		if m == nil {
			j.mu.Lock()
			m = j.maps[file]
			j.mu.Unlock()
		}
		var n int
		if off+bufHeader <= mappedSize {
			n = int(binary.LittleEndian.Uint32(m[off : off+4]))
		}
		if n == 0 { // the rest of this file is unused
			if err := unix.Munmap(m); err != nil {
				return err
			}
			j.mu.Lock()
			j.maps[file] = nil
			j.mu.Unlock()
			m, pos = nil, int64(file+1)*mappedSize
			continue
		}
		v := make([]byte, n)
		copy(v, m[off+bufHeader:off+bufHeader+n])
		if xxhash.Sum64(v) != binary.LittleEndian.Uint64(m[off+4:off+12]) {
			return fmt.Errorf("%s: checksum mismatch at %d", journalCeiling, pos)
		}
		cl.Produce(ctx, &kgo.Record{Value: v}, cb)
		pos += int64(bufHeader + n)
	}
}

func (j *journal) close() error {
	var errs []error
	for i, m := range j.maps {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
			j.maps[i] = nil
		}
	}
	return errors.Join(errs...)
}

// runJournaled measures kgo+journal as runKgo measures bare kgo: the timed
// part ends once every record is confirmed.
func runJournaled(ctx context.Context, brokers []string, topic, dir string, pl *payloads, n int64, maxTime time.Duration) (int64, time.Duration, error) {
	cl, err := bareClient(ctx, brokers, topic, pl)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	j, err := openJournal(dir)
	if err != nil {
		return 0, 0, err
	}
	defer j.close()
	var failed failures
	sendErr := make(chan error, 1)
	start := time.Now()
	go func() { sendErr <- j.send(ctx, cl, failed.promise) }()
	var sent int64
	deadline := start.Add(maxTime)
	var werr error
	for sent < n {
		if werr = j.write(pl.next()); werr != nil {
			break
		}
		sent++
		if sent%256 == 0 && time.Now().After(deadline) {
			break
		}
	}
	j.finish()
	if err := errors.Join(werr, <-sendErr); err != nil {
		return sent, 0, err
	}
	if err := cl.Flush(ctx); err != nil {
		return sent, 0, err
	}
	return sent, time.Since(start), failed.err()
}
