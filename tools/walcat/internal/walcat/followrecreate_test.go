package walcat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
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
// seen=true, a look in between finds DIR missing.
func TestFollowRecreatedLog(t *testing.T) {
	for _, c := range []struct {
		n    int
		seen bool
	}{{2, false}, {3, false}, {5, false}, {3, true}} {
		n := c.n
		t.Run(fmt.Sprintf("new=%d,seen=%v", n, c.seen), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			for i := 1; i <= 3; i++ {
				mustAppend(t, l, []byte(fmt.Sprintf("old %d", i)))
			}
			var out, errOut bytes.Buffer
			w := bufio.NewWriter(&out)
			p, err := (&printOpts{format: "auto", preview: 16}).printer(w)
			if err != nil {
				t.Fatal(err)
			}
			f := follower{ctx: context.Background(), c: &cli{stdout: &out, stderr: &errOut}, p: p, w: w, dir: dir, next: 1}
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
