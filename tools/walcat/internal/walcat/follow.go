package walcat

import (
	"bufio"
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
and prints the records with a higher seq than the last one printed. A
record acknowledged and reclaimed between two looks is not shown; follow
says so on stderr. The output flags are dump's, --key-file included.

A look that meets damage is retried: a writer may be in the middle of a
frame. Damage seen on 5 looks in a row ends follow with exit status 1.
If DIR does not exist yet, follow waits for it.

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
	f := follower{c: c, p: p, w: w, dir: dir, next: *from, lastN: uint64(*last)}
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
}

// quiet is the end of the log as a look saw it. While the segment files
// are the same and the bytes where the next frame would go are still
// zero, nothing was appended (a frame header is never all zeros: its seq
// is not 0), so follow need not take a fresh look, which verifies the
// whole log.
type quiet struct {
	names   []string // the segment files, sorted
	last    string   // the last segment's path
	dataEnd int64    // where its data ended
}

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
	names, err := segmentNames(f.dir)
	if err != nil || !slices.Equal(names, q.names) {
		return false
	}
	file, err := os.Open(q.last)
	if err != nil {
		return false
	}
	defer file.Close()
	var b [segment.FrameHeaderSize]byte
	if _, err := file.ReadAt(b[:], q.dataEnd); err != nil {
		return false
	}
	return segment.AllZero(b[:])
}

// remember records the end of the log as the view v saw it.
func (f *follower) remember(v *wal.View) {
	f.quiet = nil
	segs := v.Info().Segments
	if len(segs) == 0 {
		return
	}
	q := &quiet{last: segs[len(segs)-1].Path, dataEnd: segs[len(segs)-1].DataEnd}
	for _, s := range segs {
		q.names = append(q.names, filepath.Base(s.Path))
	}
	f.quiet = q
}

// look takes one look at the log and prints what is new. done reports
// that follow must end with code.
func (f *follower) look() (code int, done bool) {
	if fi, err := os.Stat(f.dir); errors.Is(err, fs.ErrNotExist) {
		if !f.waiting {
			f.c.errorf("follow: %s does not exist yet; waiting for it", f.dir)
			f.waiting = true
		}
		return 0, false
	} else if err == nil && !fi.IsDir() {
		f.c.errorf("follow: %s is not a directory", f.dir)
		return ExitUsage, true
	}
	if f.unchanged() {
		return 0, false
	}
	v, err := f.p.opts.openView(f.dir)
	if err == nil {
		if err = f.printNew(v); err == nil {
			f.remember(v)
		} else {
			f.quiet = nil
		}
		v.Close()
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
		next := v.Info().NextSeq
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
	}
	return nil
}

// outputError is a failure to write the output, which no retry mends.
type outputError struct{ err error }

func (e outputError) Error() string { return e.err.Error() }
