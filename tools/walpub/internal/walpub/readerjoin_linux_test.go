package walpub

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// TestReaderJoinedOnPipe: walpub reads a pipe (standard input) whose
// writer stays but sends nothing more; SIGINT comes while it waits in a
// read, it stops waiting for the read, and a second SIGINT ends the
// drain. Main returns with every goroutine it started ended, the
// reader's too: its read is cancelled (it waits for the pipe with
// poll(2), beside a pipe of walpub's own that the cancel closes), and
// what the writer sends after takes nothing from the pipe. Before, the
// read went on after Main returned, until the process ended. The pipe is
// a non-blocking one (os.Pipe, which Go's poller reads) or a blocking one
// (as a shell's pipe or terminal is), and read whole or, under --sync
// always, through tee(2) up to the end of a line.
func TestReaderJoinedOnPipe(t *testing.T) {
	for _, c := range []struct {
		sync     string
		blocking bool
	}{{"every=100ms", false}, {"every=100ms", true}, {"always", false}, {"always", true}} {
		t.Run("sync="+c.sync+",blocking="+map[bool]string{false: "no", true: "yes"}[c.blocking], func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			pr, pw := testPipe(t, c.blocking)
			defer pr.Close()
			defer pw.Close() // ends a reader left behind, for TestMain's check
			if _, err := pw.WriteString("a\nb\npar"); err != nil {
				t.Fatal(err)
			}
			waiting := make(chan struct{})
			hook := func(held int64) {
				if held == 3 { // "par": the next read waits
					close(waiting)
				}
			}
			readHook.Store(&hook)
			defer readHook.Store(nil)
			journal := filepath.Join(t.TempDir(), "j")
			w := startSignalled(pr, "--journal", journal, "--sync", c.sync, "--drain-timeout", "0", deadURL(t, "t"))
			<-waiting
			w.sigs <- os.Interrupt
			waitUntil(t, "walpub stops waiting for the read", func() bool {
				return strings.Contains(w.errOut.String(), "its line 3, 3 bytes read so far, is not journaled")
			})
			w.sigs <- os.Interrupt
			code := <-w.done
			t.Logf("exit %d\n%s%s", code, w.out.String(), w.errOut.String())
			if err := goleak.Find(before); err != nil {
				t.Fatalf("a goroutine of walpub outlives Main: %v", err)
			}
			// Nothing more is read from the pipe: what comes next stays there.
			if _, err := pw.WriteString("tial\nc\n"); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			rest, err := io.ReadAll(pr)
			if err != nil || string(rest) != "tial\nc\n" {
				t.Errorf("the pipe holds %q (%v) after walpub, want what was written after it", rest, err)
			}
			if strings.Contains(w.errOut.String(), "walpub ends while a read of it waits") {
				t.Errorf("walpub left its read waiting:\n%s", w.errOut.String())
			}
			if info, _ := journalInfo(t, journal); info.Records != 2 {
				t.Errorf("%d records journaled, want 2", info.Records)
			}
		})
	}
}

// testPipe returns a pipe; blocking: its ends are in blocking mode, as a
// shell gives its commands, so Go's poller does not read them.
func testPipe(t *testing.T, blocking bool) (r, w *os.File) {
	t.Helper()
	if !blocking {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		return r, w
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "pipe"), os.NewFile(uintptr(fds[1]), "pipe")
}
