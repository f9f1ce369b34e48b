package walpub

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stallingReader is an input whose first Read returns first and whose
// second Read waits (entered is closed once it does) until the test sends
// the bytes it returns on late; later Reads return io.EOF.
type stallingReader struct {
	first   string
	entered chan struct{}
	late    chan string
	reads   int
}

func newStallingReader(first string) *stallingReader {
	return &stallingReader{first: first, entered: make(chan struct{}), late: make(chan string)}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	s.reads++
	switch s.reads {
	case 1:
		return copy(p, s.first), nil
	case 2:
		close(s.entered)
		return copy(p, <-s.late), nil
	}
	return 0, io.EOF
}

// TestInterruptReadReturnsLate: walpub waits in a read when SIGINT comes,
// stops waiting for it (naming the line begun), and then the read returns
// after all, with the rest of that line and two more: these complete
// lines were read from the input, which will not give them again; they
// are not journaled, so they are named as such, and the exit status is
// not 130 ("every line read is journaled").
func TestInterruptReadReturnsLate(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	in := newStallingReader("a\nb\npar")
	w := startSignalled(in, "--journal", journal, "--drain-timeout", "0", deadURL(t, "t"))
	<-in.entered
	waitUntil(t, "lines 1-2 journaled", func() bool {
		info, ok := journalInfo(t, journal)
		return ok && info.Records == 2
	})
	w.sigs <- os.Interrupt
	// The fault: the read returns once walpub has stopped waiting for it.
	waitUntil(t, "walpub stops waiting for the read", func() bool {
		return strings.Contains(w.errOut.String(), "its line 3, 3 bytes read so far, is not journaled")
	})
	in.late <- "tial\nc\nd\ne"
	const want = "standard input: lines 3-5 and 1 bytes of line 6, read after walpub stopped taking input, are not journaled"
	waitUntil(t, "the late lines named", func() bool { return strings.Contains(w.errOut.String(), want) })
	w.sigs <- os.Interrupt
	code := <-w.done
	info, _ := journalInfo(t, journal)
	t.Logf("exit %d\n%s%s", code, w.out.String(), w.errOut.String())
	if code != ExitError || info.Records != 2 ||
		!strings.Contains(w.errOut.String(), "3 lines read from the input are not journaled") {
		t.Errorf("exit %d, %d records journaled:\n%s%s", code, info.Records, w.out.String(), w.errOut.String())
	}
}
