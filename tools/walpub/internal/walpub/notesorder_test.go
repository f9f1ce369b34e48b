package walpub

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/walpub/walpub/internal/testutil"
)

// TestNoNoteAfterSummary: walpub waits in a read when SIGINT comes,
// stops waiting for it, and a second SIGINT ends the drain; the read
// returns lines only after walpub printed its summary. Every note comes
// before the summary (stdout and stderr go to one stream here): walpub
// waits for its reader before the summary, and one left waiting in a read
// is said to be so, what the read returns not journaled. Before, the
// reader, never joined, named the late lines as not journaled after the
// summary, which did not count them.
func TestNoNoteAfterSummary(t *testing.T) {
	before := goleak.IgnoreCurrent()
	journal := filepath.Join(t.TempDir(), "j")
	in := newStallingReader("a\nb\npar")
	var out testutil.SyncBuffer
	sigs := make(chan os.Signal, 2)
	done := make(chan int)
	go func() {
		done <- Main(context.Background(), []string{"--journal", journal, "--drain-timeout", "0", deadURL(t, "t")},
			Env{Stdin: in, Stdout: &out, Stderr: &out, Signals: sigs})
	}()
	<-in.entered
	waitUntil(t, "lines 1-2 journaled", func() bool {
		info, ok := journalInfo(t, journal)
		return ok && info.Records == 2
	})
	sigs <- os.Interrupt
	waitUntil(t, "walpub stops waiting for the read", func() bool {
		return strings.Contains(out.String(), "its line 3, 3 bytes read so far, is not journaled")
	})
	sigs <- os.Interrupt
	code := <-done
	const summary = "walpub: 2 records journaled"
	if !strings.Contains(out.String(), summary) {
		t.Fatalf("no summary:\n%s", out.String())
	}
	// The fault: the read returns after the summary, with the rest of
	// line 3 and more lines.
	in.late <- "tial\nc\nd\ne"
	// Once walpub's goroutines are gone, all it printed is there.
	if err := goleak.Find(before); err != nil {
		t.Fatalf("walpub's goroutines are not gone: %v", err)
	}
	s := out.String()
	after := s[strings.Index(s, summary):]
	if strings.Contains(after, "read after walpub stopped taking input") {
		t.Errorf("a note about lines read comes after the summary (exit %d):\n%s", code, s)
	}
	// What the read returned is not journaled, and the summary is
	// preceded by a note that says so.
	const waits = "walpub: standard input: walpub ends while a read of it waits: what that read returns is not journaled"
	if i := strings.Index(s, waits); i < 0 || i > strings.Index(s, summary) {
		t.Errorf("no note before the summary says that the waiting read is not journaled:\n%s", s)
	}
}
