package walcat

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/segment"
)

var followCmd = &command{
	name:    "follow",
	summary: "print records as they are appended, like tail -f",
	usage: `Usage: walcat follow [flags] DIR

Prints the last records of the log (-n, default 10), then every record
appended after them, by any process, until interrupted (Ctrl-C): like
tail -f. It polls: every --interval it checks whether anything was
appended (the segment files, and the bytes past the end of the data), and
if so takes a fresh read-only look at the log (no lock, no byte changed)
and prints the records with a higher seq than the last one printed. A look
reads and verifies what is new since the one before (the last segment,
new and changed segment files), not the whole log again. A
record acknowledged and reclaimed between two looks is not shown; follow
says so on stderr. The output flags are dump's, --key-file included.

A look that meets damage is retried: a writer may be in the middle of a
frame. Damage seen on 5 looks in a row ends follow with exit status 1.
If DIR does not exist yet, follow waits for it.

Like tail -F, follow keeps following the path: a log deleted and created
anew at DIR (or in it) is shown from its first record, with a note on
stderr. A log counts as replaced when DIR is another directory, when the
log ends before the seq it ended at, or when the last record it held is
no longer the record at that seq. A log cut by "walcat repair" counts
as replaced too (its records are shown again from the first).

Examples:
  walcat follow publisher.journal
  walcat follow -n 0 --json DIR           # only records appended from now on
  walcat follow --from 1 --raw DIR        # everything, then new payloads
`,
}

func init() { followCmd.run = runFollow }

// followRetries is how many looks in a row may fail before follow gives up.
const followRetries = 5

func runFollow(ctx context.Context, c *cli, args []string) int {
	flags := c.newFlags(followCmd)
	var po printOpts
	po.register(flags)
	last := flags.Int("n", 10, "print the last `N` records first (0: none)")
	from := flags.Uint64("from", 0, "start at `seq` instead of the last N records")
	interval := flags.Duration("interval", 500*time.Millisecond, "how often to look for new records")
	dir, code, ok := c.parse(followCmd, flags, args)
	if !ok {
		return code
	}
	w := bufio.NewWriterSize(c.stdout, 64<<10)
	p, err := po.printer(w)
	if err != nil {
		c.errorf("follow: %v", err)
		return ExitUsage
	}
	if *last < 0 || *interval <= 0 {
		c.errorf("follow: -n must be 0 or more and --interval positive")
		return ExitUsage
	}
	f := follower{ctx: ctx, c: c, p: p, w: w, dir: dir, next: *from, lastN: uint64(*last)}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		if code, done := f.look(); done {
			return code
		}
		if err := w.Flush(); err != nil {
			c.errorf("follow: %v", err)
			return ExitDamaged
		}
		select {
		case <-ctx.Done():
			return ExitOK
		case <-tick.C:
		}
	}
}

type follower struct {
	ctx     context.Context // ended by an interrupt: follow ends
	c       *cli
	p       *printer
	w       *bufio.Writer
	dir     string
	next    uint64 // the next seq to print; 0 until the first look
	lastN   uint64
	shown   bool   // a record was printed, so a gap after it is news
	failed  int    // looks in a row that failed
	waiting bool   // said that DIR does not exist yet
	quiet   *quiet // what the last good look saw at the end of the log
	// prev is the last good look's view (closed): the next look reads
	// what changed since (wal.View.Reopen); nil: read the whole log.
	prev *wal.View

	// What the last good look saw of the log, to tell that it was
	// replaced (see replaced).
	dirInfo  fs.FileInfo // DIR
	seenNext uint64      // the log's NextSeq
	seenSeg  uint64      // its highest segment id
	lastData []byte      // the data of the log's last record, seq seenNext-1 (nil: not read)
}

// quiet is the end of the log as a look saw it. While the segment files
// are the same and the bytes where the next frame would go are still
// zero, nothing was appended (a frame header is never all zeros: its seq
// is not 0), so follow need not take a fresh look.
type quiet struct {
	names   []string    // the segment files, sorted
	last    string      // the last segment's path
	dataEnd int64       // where its data ended
	dir     fs.FileInfo // DIR
	// head is the start of the last segment: its header and the header
	// of its first frame, whose checksum covers the frame's payload. A
	// log created anew where one was (same path, same file names, the
	// inode numbers reused, the new data shorter than the old) differs
	// there.
	head []byte
}

// headSize is how many bytes of the last segment quiet.head keeps.
const headSize = segment.HeaderSize + segment.FrameHeaderSize

// segmentNames lists the segment files of dir, sorted.
func segmentNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, ok := segment.ParseName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// unchanged reports whether nothing was appended to the log since the
// last good look. Any doubt (an error, a file added or removed) is a
// change.
func (f *follower) unchanged() bool {
	q := f.quiet
	if q == nil {
		return false
	}
	if fi, err := os.Stat(f.dir); err != nil || !os.SameFile(fi, q.dir) {
		return false
	}
	names, err := segmentNames(f.dir)
	if err != nil || !slices.Equal(names, q.names) {
		return false
	}
	file, err := os.Open(q.last)
	if err != nil {
		return false
	}
	defer file.Close()
	var head [headSize]byte
	if _, err := file.ReadAt(head[:], 0); err != nil || !bytes.Equal(head[:], q.head) {
		return false
	}
	var b [segment.FrameHeaderSize]byte
	if _, err := file.ReadAt(b[:], q.dataEnd); err != nil {
		return false
	}
	return segment.AllZero(b[:])
}

// remember records the log as the view v saw it, in DIR as dirInfo
// describes it.
func (f *follower) remember(v *wal.View, dirInfo fs.FileInfo) {
	f.quiet = nil
	next := v.NextSeq()
	f.dirInfo, f.seenNext, f.seenSeg = dirInfo, next, 0
	// The last record, printed or not (-n 0), tells a log created anew
	// with as many records or more.
	f.lastData = nil
	if next > 1 {
		if data, ok := recordData(v, next-1); ok {
			f.lastData = append([]byte(nil), data...)
		}
	}
	segs := v.Segments()
	if len(segs) == 0 {
		return
	}
	f.seenSeg = segs[len(segs)-1].ID
	q := &quiet{last: segs[len(segs)-1].Path, dataEnd: segs[len(segs)-1].DataEnd, dir: dirInfo}
	for _, s := range segs {
		q.names = append(q.names, filepath.Base(s.Path))
	}
	file, err := os.Open(q.last)
	if err != nil {
		return
	}
	defer file.Close()
	q.head = make([]byte, headSize)
	if _, err := file.ReadAt(q.head, 0); err != nil {
		return
	}
	f.quiet = q
}

// replaced reports whether the log v shows in DIR (described by dirInfo)
// is not the one the last good look saw: DIR is another directory, the
// log ends before that look's end, its segment ids went back, or the
// last record that look saw is no longer the one at its seq. A log's seqs and
// segment ids only grow, and a record does not change.
func (f *follower) replaced(v *wal.View, dirInfo fs.FileInfo) bool {
	if f.dirInfo == nil {
		return false // no look saw a log yet
	}
	segs := v.Segments()
	switch {
	case !os.SameFile(dirInfo, f.dirInfo), v.NextSeq() < f.seenNext:
		return true
	case len(segs) > 0 && segs[len(segs)-1].ID < f.seenSeg:
		return true
	case f.lastData == nil:
		return false
	}
	data, ok := recordData(v, f.seenNext-1)
	return ok && !bytes.Equal(data, f.lastData) // not there: reclaimed since
}

// recordData returns the data of the record at seq (not 0) in v, if it
// is there and readable (damage is for printNew to meet; a missing key for print).
func recordData(v *wal.View, seq uint64) ([]byte, bool) {
	for r, err := range v.Records(seq, seq) {
		if err != nil || r.Seq != seq || r.Data == nil {
			break
		}
		return r.Data, true
	}
	return nil, false
}

// restart forgets the log followed until now, so that the next one at
// DIR is shown from its first record.
func (f *follower) restart() {
	f.next, f.shown, f.quiet, f.prev = 1, false, nil, nil
	f.dirInfo, f.seenNext, f.seenSeg, f.lastData = nil, 0, 0, nil
}

// look takes one look at the log and prints what is new. done reports
// that follow must end with code.
func (f *follower) look() (code int, done bool) {
	fi, err := os.Stat(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		switch {
		case f.dirInfo != nil:
			f.c.errorf("follow: %s was removed; waiting for a new log there", f.dir)
			f.restart()
		case !f.waiting:
			f.c.errorf("follow: %s does not exist yet; waiting for it", f.dir)
		}
		f.waiting = true
		return 0, false
	} else if err == nil && !fi.IsDir() {
		f.c.errorf("follow: %s is not a directory", f.dir)
		return ExitUsage, true
	}
	if err == nil && f.unchanged() {
		return 0, false
	}
	var v *wal.View
	if err == nil {
		v, err = f.p.opts.reopenView(f.prev, f.dir)
	}
	if err == nil && f.replaced(v, fi) {
		f.c.errorf("follow: the log in %s was replaced (deleted and created anew, or cut); showing the new one from its first record", f.dir)
		if f.prev != nil {
			// A new log, or one cut: nothing of the last look's is
			// taken for it.
			v.Close()
			v, err = f.p.opts.openView(f.dir)
		}
		f.restart()
	}
	if err == nil {
		if err = f.printNew(v); err == nil {
			f.remember(v, fi)
			f.prev = v
		} else {
			f.quiet = nil
		}
		v.Close()
	}
	if errors.Is(err, errInterrupted) {
		if err := f.w.Flush(); err != nil {
			f.c.errorf("follow: %v", err)
			return ExitDamaged, true
		}
		return ExitOK, true
	}
	var oe outputError
	if errors.As(err, &oe) {
		f.c.errorf("follow: %v", oe.err)
		return ExitDamaged, true
	}
	if err != nil {
		f.failed++
		if f.failed >= followRetries {
			f.w.Flush()
			return f.c.reportOpenError("follow", f.dir, err), true
		}
		return 0, false
	}
	f.failed = 0
	return 0, false
}

func (f *follower) printNew(v *wal.View) error {
	if f.next == 0 {
		next := v.NextSeq()
		f.next = 1
		if next > f.lastN {
			f.next = max(next-f.lastN, 1)
		}
	}
	for r, err := range v.Records(f.next, 0) {
		if err != nil {
			return err
		}
		if r.Seq > f.next && f.shown {
			f.c.errorf("follow: seqs %d..%d were acknowledged and reclaimed before they could be shown", f.next, r.Seq-1)
		}
		if err := f.p.print(r); err != nil {
			return outputError{err} // no retry mends a missing key either
		}
		f.next = r.Seq + 1
		f.shown = true
		if f.ctx.Err() != nil {
			// Interrupted while catching up on many records: follow
			// ends here, not once it has printed them all.
			return errInterrupted
		}
	}
	return nil
}

// errInterrupted: follow was interrupted in the middle of a look.
var errInterrupted = errors.New("interrupted")

// outputError is a failure to write the output, which no retry mends.
type outputError struct{ err error }

func (e outputError) Error() string { return e.err.Error() }
