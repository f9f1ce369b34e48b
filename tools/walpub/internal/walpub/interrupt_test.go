package walpub

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
)

// TestInterruptKeepsWhatWasRead: walpub has consumed lines from a pipe
// (io.Pipe's Write returns once the reader took every byte), then SIGTERM
// comes: every line it consumed is journaled, since the pipe will not give
// them again.
func TestInterruptKeepsWhatWasRead(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "j")
	pr, pw := io.Pipe()
	defer pw.Close()
	sigs := make(chan os.Signal, 2)
	var out, errOut testutil.SyncBuffer
	done := make(chan int)
	go func() {
		done <- Main(context.Background(), []string{"--journal", journal, "--drain-timeout", "1s", deadURL(t, "t")},
			Env{Stdin: pr, Stdout: &out, Stderr: &errOut, Signals: sigs})
	}()
	const n = 3000
	// io.Pipe's Write returns only once the reader has taken every byte.
	if _, err := io.WriteString(pw, lines("x", n)); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGTERM
	code := <-done
	in, _ := journalInfo(t, journal)
	t.Logf("exit %d\n%s%s", code, out.String(), errOut.String())
	if in.Records != n {
		t.Errorf("%d lines consumed from the pipe, %d journaled: %d lost; summary: %s", n, in.Records, n-in.Records, strings.TrimSpace(out.String()))
	}
}
