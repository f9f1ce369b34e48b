package walpub

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// durableGate is an input that checks, at each read, the promise of
// --sync always: a record is on stable storage before the next is read.
// It serves what each Read asks for, and records a violation when a read
// takes a byte of a line after the first line not yet durable (the
// journal's durable high-water mark, seqs counted from 1).
type durableGate struct {
	t       *testing.T
	journal string
	input   []byte
	served  int

	mu         sync.Mutex
	violations []string
}

func (g *durableGate) Read(p []byte) (int, error) {
	if g.served == len(g.input) {
		return 0, io.EOF
	}
	durable := uint64(0)
	if v, err := wal.OpenView(g.journal); err == nil {
		durable = v.Info().HighWater.Seq
		v.Close()
	}
	n := copy(p, g.input[g.served:])
	last := 1 + bytes.Count(g.input[:g.served+n-1], []byte("\n")) // the line of the last byte served
	if uint64(last) > durable+1 {
		g.mu.Lock()
		g.violations = append(g.violations, fmt.Sprintf("a read took bytes %d-%d (up to line %d) with %d lines durable",
			g.served, g.served+n-1, last, durable))
		g.mu.Unlock()
	}
	g.served += n
	return n, nil
}

// TestSyncAlwaysReadsNoFurther: with --sync always walpub reads no byte
// of a line before every line before it is durable in the journal (it
// read 256 KiB ahead).
func TestSyncAlwaysReadsNoFurther(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	g := &durableGate{t: t, journal: journal, input: []byte(lines("line", 20))}
	var out, errOut testutil.SyncBuffer
	code := Main(context.Background(), []string{"--journal", journal, "--sync", "always"},
		Env{Stdin: g, Stdout: &out, Stderr: &errOut})
	if code != ExitOK || !strings.Contains(out.String(), "20 records journaled, 20 confirmed") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if g.served != len(g.input) {
		t.Fatalf("%d of %d bytes read", g.served, len(g.input))
	}
	if len(g.violations) > 0 {
		t.Errorf("%d reads took bytes beyond the first line not yet durable, first: %s", len(g.violations), g.violations[0])
	}
}

// TestLineBoundedPipe: a read of a pipe through lineBounded takes the
// line the pipe holds, however large the buffer, and leaves the rest in
// the pipe.
func TestLineBoundedPipe(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if _, err := pw.WriteString("a\nbb\nccc"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	in, release := lineBounded(pr, nil)
	defer release()
	var got []string
	buf := make([]byte, 1<<10)
	for range 2 {
		line := ""
		for !strings.HasSuffix(line, "\n") {
			n, err := in.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			line += string(buf[:n])
		}
		got = append(got, line)
	}
	rest, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a\n", "bb\n"}; !slices.Equal(got, want) || string(rest) != "ccc" {
		t.Errorf("lines read %q, then the pipe held %q; want %q, then \"ccc\"", got, rest, want)
	}
}
