package walcat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walpub/walpub/wal"
)

// cancelOnWrite is an output that interrupts (cancels) the command the
// first time it is written to, as a user's Ctrl-C while the output flows.
type cancelOnWrite struct {
	strings.Builder
	cancel context.CancelFunc
	writes atomic.Int32
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	if w.writes.Add(1) == 1 {
		w.cancel()
	}
	return w.Builder.Write(p)
}

// TestFollowInterruptedWhileCatchingUp: an interrupt while follow prints
// the records it is catching up on (follow --from 1 on a large log) ends
// follow at the next record, with what it printed flushed whole: exit 0,
// every line complete. Before, follow looked at its context only between
// looks: it went on printing the whole backlog, however long that took,
// and walcat's main, whose grace after the first signal is 2 s, killed
// it with the signal, the last up to 64 KiB of output left in its buffer
// and the last line cut short.
func TestFollowInterruptedWhileCatchingUp(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, wal.WithSegmentSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000 // about 1.4 MB of output: many times the 64 KiB buffer
	for i := range n {
		if _, err := l.Append(fmt.Appendf(nil, "record %05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	var errOut strings.Builder
	code := Main(ctx, []string{"follow", "--from", "1", "--interval", "1h", dir}, out, &errOut)
	if out.writes.Load() == 0 {
		t.Fatal("follow wrote nothing: no interrupt")
	}
	if code != ExitOK {
		t.Errorf("follow exit %d: %s", code, errOut.String())
	}
	s := out.String()
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("the output ends in the middle of a line: %q", s[max(len(s)-80, 0):])
	}
	if lines := strings.Count(s, "\n"); lines >= n {
		t.Errorf("follow printed all %d records after the interrupt that came once it had printed some", lines)
	}
}

// TestFollowLogReplaced: a log replaced by a new one in the same
// directory (removed and created again, its seqs starting over) is
// followed from the new log's first record, and follow says so: whether
// follow saw the directory gone, or only a log whose seqs end below those
// it saw before; whether it printed records of the old log (--from 1) or
// none (-n 0). Before, follow went on waiting for the seq after the last
// one of the old log: it printed nothing of the new one until the new one
// reached that seq, and then only the records from there on, without a
// word.
func TestFollowLogReplaced(t *testing.T) {
	for _, tc := range []struct {
		gone bool   // a look sees the directory gone
		from uint64 // follower.next: 1 for --from 1, 0 with lastN 0 for -n 0
	}{{false, 1}, {true, 1}, {false, 0}, {true, 0}} {
		t.Run(fmt.Sprintf("gone=%v/from=%d", tc.gone, tc.from), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			for i := range 5 {
				mustAppend(t, l, fmt.Appendf(nil, "old %d", i+1))
			}
			var out, errOut strings.Builder
			w := bufio.NewWriter(&out)
			p, err := (&printOpts{format: "auto", preview: 16}).printer(w)
			if err != nil {
				t.Fatal(err)
			}
			f := follower{ctx: context.Background(), c: &cli{stdout: &out, stderr: &errOut}, p: p, w: w, dir: dir, next: tc.from}
			look := func() {
				t.Helper()
				if code, done := f.look(); done {
					t.Fatalf("look ended follow with %d: %s", code, errOut.String())
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			look()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if tc.gone {
				look()
			}
			l = openLog(t, dir)
			defer l.Close()
			for i := range 3 { // longer records: they reach past the old log's end
				mustAppend(t, l, fmt.Appendf(nil, "new %d %s", i+1, strings.Repeat(".", 100)))
			}
			look()
			for i := range 3 {
				if !strings.Contains(out.String(), fmt.Sprintf(`seq=%d pending seg=00000000000000000001.seg off=%d size=106`, i+1, 64+144*i)) {
					t.Errorf("record %d of the new log not printed", i+1)
				}
			}
			if e := errOut.String(); !strings.Contains(e, "was replaced") && !strings.Contains(e, "waiting for a new log") {
				t.Errorf("follow did not say it follows a new log: %q", errOut.String())
			}
			if t.Failed() {
				t.Logf("stdout:\n%sstderr:\n%s", out.String(), errOut.String())
			}
		})
	}
}
