package walcat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFollowRecreatedLog: like tail -F, follow shows the records of a log
// deleted and created anew at the same path, from its first record, and
// says so on stderr. Before, it kept waiting for the seq after the last
// one it had printed of the old log, so it showed nothing of a new log
// until that log passed the old one's seqs, and then only its later
// records. Each case replaces the log between two looks, the new one
// with fewer, as many or more records than the old one had; with
// seen=true, a look in between finds DIR missing; from=0 is -n 0 (no
// record of the old log printed).
func TestFollowRecreatedLog(t *testing.T) {
	for _, c := range []struct {
		n    int
		seen bool
		from uint64 // follower.next: 1 for --from 1, 0 (lastN 0) for -n 0
	}{{2, false, 1}, {3, false, 1}, {5, false, 1}, {3, true, 1}, {5, false, 0}, {5, true, 0}} {
		n := c.n
		t.Run(fmt.Sprintf("new=%d,seen=%v,from=%d", n, c.seen, c.from), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			for i := 1; i <= 3; i++ {
				mustAppend(t, l, []byte(fmt.Sprintf("old %d", i)))
			}
			f, out, errOut := newTestFollower(t, dir, c.from)
			look := func() { t.Helper(); f.mustLook(t) }
			look()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// Unseen, the log is replaced inside DIR, which stays the
			// same directory: only the log's records can tell.
			gone := dir
			if !c.seen {
				gone = filepath.Join(dir, "*")
			}
			names, err := filepath.Glob(gone)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				if err := os.RemoveAll(name); err != nil {
					t.Fatal(err)
				}
			}
			want := "replaced"
			if c.seen {
				look()
				want = "was removed; waiting"
			}
			l = openLog(t, dir)
			defer l.Close()
			for i := 1; i <= n; i++ {
				mustAppend(t, l, []byte(fmt.Sprintf("new %d", i)))
			}
			look()
			for i := 1; i <= n; i++ {
				if want := fmt.Sprintf(`data="new %d"`, i); !strings.Contains(out.String(), want) {
					t.Errorf("no %s in the output:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errOut.String(), want) {
				t.Errorf("stderr does not say %q: %q", want, errOut.String())
			}
			// Later appends to the new log are shown once each.
			mustAppend(t, l, []byte("new later"))
			look()
			look()
			if c := strings.Count(out.String(), `data="new later"`); c != 1 {
				t.Errorf("the record appended later was printed %d times:\n%s", c, out.String())
			}
		})
	}
}

// newTestFollower returns a follower of dir from seq next (0: -n 0),
// printing to out and errOut.
func newTestFollower(t *testing.T, dir string, next uint64) (f *follower, out, errOut *bytes.Buffer) {
	t.Helper()
	out, errOut = new(bytes.Buffer), new(bytes.Buffer)
	w := bufio.NewWriter(out)
	p, err := (&printOpts{format: "auto", preview: 16}).printer(w)
	if err != nil {
		t.Fatal(err)
	}
	return &follower{ctx: context.Background(), c: &cli{stdout: out, stderr: errOut}, p: p, w: w, dir: dir, next: next}, out, errOut
}

// mustLook takes a look, fails the test if it ended follow, and flushes
// what it printed.
func (f *follower) mustLook(t *testing.T) {
	t.Helper()
	if code, done := f.look(); done {
		t.Fatalf("look ended follow with %d: %s", code, f.c.stderr)
	}
	if err := f.w.Flush(); err != nil {
		t.Fatal(err)
	}
}
