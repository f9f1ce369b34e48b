package walcat

import (
	"context"
	"fmt"
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
