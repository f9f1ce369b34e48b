package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// The physical baselines: what the hardware and the page cache allow,
// with the least code that still frames and checksums each record.

func init() {
	register(&Impl{
		Name:   "bufio+xxhash",
		Kind:   "baseline",
		Module: "github.com/cespare/xxhash/v2",
		Note: "one file, bufio.Writer with a 256 KiB buffer; each record is a 4-byte length, " +
			"an 8-byte xxhash64 of the payload, the payload (one that does not fit in the buffer " +
			"is written with its own write(2), not copied through it). Sync = Flush + fdatasync. " +
			"Replay reads the file through a 1 MiB bufio.Reader and checks every hash.",
		Open:   openBuffered,
		Replay: replayBuffered,
	})
	register(&Impl{
		Name:   "bufio+xxhash/2pass",
		Kind:   "baseline",
		Module: "github.com/cespare/xxhash/v2",
		Note: "bufio+xxhash's log replayed with every record verified twice, as walpub's Open and then Pending " +
			"each verify it: two passes of bufio+xxhash's replay run side by side, one goroutine each (a core each " +
			"on two cores), and one of them hands the records out. Whatever order two verifying passes run in, " +
			"on two cores they take at least this long: a ceiling for walpub's replay. Replay only.",
		Open:   openBuffered,
		Replay: replayBufferedTwice,
		Only:   []string{"replay-1KiB", "replay-100B"},
	})
	register(&Impl{
		Name: "raw-write",
		Kind: "baseline",
		Note: "one write(2) per 1 MiB record into one file, no framing, no checksum.",
		Open: openRaw,
		Only: []string{"append-1MiB"},
	})
	register(&Impl{
		Name:   "bufio+xxhash/batch",
		Kind:   "baseline",
		Module: "github.com/cespare/xxhash/v2",
		Note: "bufio+xxhash with a Flush at the end of every batch: one write(2) of the framed batch, so that, " +
			"as with walpub's AppendBatch, the batch is in the page cache (safe from kill -9) when the call returns. Batch workloads without sync only.",
		Open: openBufferedPerBatch,
		Only: []string{"batch100-100B", "batch100-1KiB"},
	})
	register(&Impl{
		Name:   "bufio+xxhash/sealed",
		Kind:   "baseline",
		Module: "github.com/cespare/xxhash/v2",
		Note: "bufio+xxhash in files of 64 MiB, walpub's segment size: each full file is written back to the device " +
			"by a background goroutine while the writer goes on (sync_file_range 2 MiB at a time, at most 4 in flight, " +
			"then fdatasync and a sync of the directory), as " +
			"walpub's SyncNever syncs each sealed segment, which bounds what a power cut can take. It does the " +
			"device writes that bound costs, which bufio+xxhash leaves to the kernel after its run; its buffer is " +
			"lost to kill -9 as bufio+xxhash's is. Writes without sync only.",
		Open: openSealed,
		Only: []string{"append-100B", "batch100-100B", "append-1KiB", "batch100-1KiB", "append-1MiB"},
	})
	register(&Impl{
		Name:   "mmap+xxhash",
		Kind:   "baseline",
		Module: "github.com/cespare/xxhash/v2",
		Note: "the least an appender that survives kill -9 without a system call per record does: " +
			"64 MiB files preallocated with fallocate and mapped shared; each record is stored into the mapping " +
			"as the buffered file frames it (length, xxhash64 of the payload, payload); the stores fault the " +
			"pages in themselves (nothing pre-faults ahead), one writer, no lock, no index. Writes only.",
		Open: openMapped,
		Only: []string{"append-100B", "batch100-100B", "append-1KiB", "batch100-1KiB"},
	})
}

// mappedSize is the size of each of mmap+xxhash's files.
const mappedSize = 64 << 20

type mappedLog struct {
	dir string
	n   int    // files made
	m   []byte // the current file's mapping
	off int
}

func openMapped(dir string, _ openOpts) (Log, error) {
	l := &mappedLog{dir: dir}
	return l, l.next()
}

// next unmaps the current file and maps a new, preallocated one.
func (l *mappedLog) next() error {
	if l.m != nil {
		if err := unix.Munmap(l.m); err != nil {
			return err
		}
		l.m = nil
	}
	l.n++
	m, err := mapNewFile(filepath.Join(l.dir, fmt.Sprintf("log.%d", l.n)))
	if err != nil {
		return err
	}
	l.m, l.off = m, 0
	return nil
}

// mapNewFile creates the file at path, preallocates mappedSize bytes and
// maps them shared, read and write.
func mapNewFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping keeps the file
	if err := unix.Fallocate(int(f.Fd()), 0, 0, mappedSize); err != nil {
		return nil, err
	}
	return unix.Mmap(int(f.Fd()), 0, mappedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

func (l *mappedLog) Append(p []byte) error {
	n := bufHeader + len(p)
	if l.off+n > len(l.m) {
		if n > mappedSize {
			return fmt.Errorf("mmap+xxhash: record of %d bytes: larger than a file", len(p))
		}
		if err := l.next(); err != nil {
			return err
		}
	}
	d := l.m[l.off : l.off+n]
	binary.LittleEndian.PutUint32(d[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint64(d[4:12], xxhash.Sum64(p))
	copy(d[bufHeader:], p)
	l.off += n
	return nil
}

func (l *mappedLog) AppendBatch(ps [][]byte) error { return appendEach(l, ps) }

func (l *mappedLog) Flush() error { return nil } // the mapping is the page cache

func (l *mappedLog) Sync() error {
	return unix.Msync(l.m[:l.off], unix.MS_SYNC)
}

func (l *mappedLog) Close() error {
	if l.m == nil {
		return nil
	}
	err := unix.Munmap(l.m)
	l.m = nil
	return err
}

const bufHeader = 12 // u32 length, u64 xxhash64

// bufSize is the baseline's write buffer: 256 KiB, the buffer of the
// baseline issue 16 was measured with. It stays in a core's L2 cache while
// it is filled and copied into the page cache even where L2 is 512 KiB
// (the EPYC of RESULTS.md), which a 1 MiB buffer does not.
const bufSize = 256 << 10

type bufferedLog struct {
	f   *os.File
	w   *bufio.Writer
	hdr [bufHeader]byte
}

func openBuffered(dir string, _ openOpts) (Log, error) {
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &bufferedLog{f: f, w: bufio.NewWriterSize(f, bufSize)}, nil
}

func (l *bufferedLog) Append(p []byte) error {
	binary.LittleEndian.PutUint32(l.hdr[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint64(l.hdr[4:12], xxhash.Sum64(p))
	l.w.Write(l.hdr[:]) // bufio errors are sticky: the next Flush reports them
	if len(p) > l.w.Available() && len(p) >= l.w.Size() {
		// A record larger than the buffer: bufio would copy it through
		// the buffer (the header before it keeps it from writing it
		// directly), a second copy no buffered writer needs.
		if err := l.w.Flush(); err != nil {
			return err
		}
		_, err := l.f.Write(p)
		return err
	}
	_, err := l.w.Write(p)
	return err
}

func (l *bufferedLog) AppendBatch(ps [][]byte) error { return appendEach(l, ps) }

// perBatchLog is bufferedLog writing every batch out when it ends.
type perBatchLog struct{ *bufferedLog }

func openBufferedPerBatch(dir string, o openOpts) (Log, error) {
	l, err := openBuffered(dir, o)
	if err != nil {
		return nil, err
	}
	return perBatchLog{l.(*bufferedLog)}, nil
}

func (l perBatchLog) AppendBatch(ps [][]byte) error {
	if err := appendEach(l.bufferedLog, ps); err != nil {
		return err
	}
	return l.w.Flush()
}

func (l *bufferedLog) Flush() error { return l.w.Flush() }

func (l *bufferedLog) Sync() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	return unix.Fdatasync(int(l.f.Fd()))
}

func (l *bufferedLog) Close() error {
	return errors.Join(l.w.Flush(), l.f.Close())
}

// sealedLog is bufferedLog in files of mappedSize bytes, each written
// back by a background goroutine once full (bufio+xxhash/sealed).
type sealedLog struct {
	*bufferedLog
	dir  string
	n    int   // files made
	size int64 // framed bytes written to the current file
	full chan *os.File
	done chan error // the syncer's first error, when it ends
}

func openSealed(dir string, _ openOpts) (Log, error) {
	l := &sealedLog{dir: dir, full: make(chan *os.File, 1024), done: make(chan error, 1)}
	if err := l.next(); err != nil {
		return nil, err
	}
	go l.syncer()
	return l, nil
}

// next makes the next file and writes into it.
func (l *sealedLog) next() error {
	l.n++
	f, err := os.OpenFile(filepath.Join(l.dir, fmt.Sprintf("log.%d", l.n)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if l.bufferedLog == nil {
		l.bufferedLog = &bufferedLog{f: f, w: bufio.NewWriterSize(f, bufSize)}
	} else {
		l.f = f
		l.w.Reset(f)
	}
	l.size = 0
	return nil
}

// syncer writes back each full file, then the directory (which holds the
// names of the files made so far), and closes the file. It starts a
// file's writeback sealedChunk at a time, with at most sealedDepth chunks
// in flight, as walpub does its sealed segments': started whole (one
// fdatasync), the file's writes queue on the device ahead of the file
// system's journal commits, and the writer's next write(2), waiting for
// one, stalled for tens of milliseconds (the runs of this baseline ranged
// from 1221 to 3107 MB/s for 1 KiB batches).
func (l *sealedLog) syncer() {
	var first error
	for f := range l.full {
		err := writeBackChunks(f)
		if err == nil {
			err = unix.Fdatasync(int(f.Fd()))
		}
		if err == nil {
			err = syncDir(l.dir)
		}
		err = errors.Join(err, f.Close())
		if first == nil {
			first = err
		}
	}
	l.done <- first
}

// sealedChunk and sealedDepth: bufio+xxhash/sealed's syncer starts the
// writeback of a full file sealedChunk at a time, with at most
// sealedDepth chunks in flight (walpub's figures).
const (
	sealedChunk = 2 << 20
	sealedDepth = 4
)

// writeBackChunks writes f back to the device sealedChunk at a time, the
// writeback of a chunk started once the one sealedDepth before it is
// done, and waits for the last ones.
func writeBackChunks(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	wait := func(off int64) error {
		return unix.SyncFileRange(fd, off, sealedChunk, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
	}
	var started []int64
	for off := int64(0); off < fi.Size(); off += sealedChunk {
		if len(started) == sealedDepth {
			if err := wait(started[0]); err != nil {
				return err
			}
			started = started[1:]
		}
		if err := unix.SyncFileRange(fd, off, sealedChunk, unix.SYNC_FILE_RANGE_WRITE); err != nil {
			return err
		}
		started = append(started, off)
	}
	for _, off := range started {
		if err := wait(off); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func (l *sealedLog) Append(p []byte) error {
	n := int64(bufHeader + len(p))
	if l.size > 0 && l.size+n > mappedSize {
		if err := l.w.Flush(); err != nil {
			return err
		}
		l.full <- l.f
		if err := l.next(); err != nil {
			return err
		}
	}
	l.size += n
	return l.bufferedLog.Append(p)
}

func (l *sealedLog) AppendBatch(ps [][]byte) error { return appendEach(l, ps) }

// Close writes out the buffer and waits for the syncer; the last file
// is not synced (Close does not sync, as bufio+xxhash's does not).
func (l *sealedLog) Close() error {
	err := l.bufferedLog.Close()
	close(l.full)
	return errors.Join(err, <-l.done)
}

func replayBuffered(dir string, fn func([]byte) bool) (int64, error) {
	f, err := os.Open(filepath.Join(dir, "log"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var n int64
	var big []byte
	for {
		hdr, err := r.Peek(bufHeader)
		if err == io.EOF && len(hdr) == 0 {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("record %d: header: %w", n, err)
		}
		size := int(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint64(hdr[4:12])
		var p []byte
		if bufHeader+size <= r.Size() {
			rec, err := r.Peek(bufHeader + size)
			if err != nil {
				return n, fmt.Errorf("record %d: %w", n, err)
			}
			p = rec[bufHeader:]
			if xxhash.Sum64(p) != sum {
				return n, fmt.Errorf("record %d: checksum mismatch", n)
			}
			more := fn(p)
			r.Discard(bufHeader + size)
			if !more {
				return n + 1, nil
			}
		} else {
			r.Discard(bufHeader)
			if cap(big) < size {
				big = make([]byte, size)
			}
			p = big[:size]
			if _, err := io.ReadFull(r, p); err != nil {
				return n, fmt.Errorf("record %d: %w", n, err)
			}
			if xxhash.Sum64(p) != sum {
				return n, fmt.Errorf("record %d: checksum mismatch", n)
			}
			if !fn(p) {
				return n + 1, nil
			}
		}
		n++
	}
}

// replayBufferedTwice is replayBuffered with a second pass beside it that
// verifies every record too and hands none out; it returns once both are
// done (the second stops early when the first does).
func replayBufferedTwice(dir string, fn func([]byte) bool) (int64, error) {
	var stop atomic.Bool
	var verifyErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, verifyErr = replayBuffered(dir, func([]byte) bool { return !stop.Load() })
	}()
	n, err := replayBuffered(dir, fn)
	stop.Store(true)
	<-done
	return n, errors.Join(err, verifyErr)
}

type rawLog struct{ f *os.File }

func openRaw(dir string, _ openOpts) (Log, error) {
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &rawLog{f: f}, nil
}

func (l *rawLog) Append(p []byte) error         { _, err := l.f.Write(p); return err }
func (l *rawLog) AppendBatch(ps [][]byte) error { return appendEach(l, ps) }
func (l *rawLog) Flush() error                  { return nil }
func (l *rawLog) Sync() error                   { return unix.Fdatasync(int(l.f.Fd())) }
func (l *rawLog) Close() error                  { return l.f.Close() }
