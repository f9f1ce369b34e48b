package main

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/walpub/walpub/wal"
)

// TestMain runs walcat's main instead of the tests when the environment
// says so, so that a test can run walcat as a process and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("WALCAT_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSignalEndsBlockedOutput: dump and follow writing to a pipe nobody
// reads (a pager that stopped reading) end on one SIGTERM. Before, walcat
// caught the signal, cancelled a context that the write it was stuck in
// never looked at, and went on catching every later signal: it could only
// be killed with SIGKILL.
func TestSignalEndsBlockedOutput(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, wal.WithSegmentSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 { // 300 KB: more than a pipe and walcat's buffer hold
		if _, err := l.Append(bytes.Repeat([]byte("x"), 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"follow", "--from", "1", "--preview", "0", dir},
		{"dump", "--preview", "0", dir},
	} {
		t.Run(args[0], func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			var stderr bytes.Buffer
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "WALCAT_TEST_MAIN=1")
			cmd.Stdout, cmd.Stderr = pw, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			// Once it has written, it soon fills the pipe and waits.
			if _, err := pr.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				t.Logf("walcat %s ended: %v", args[0], err)
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("walcat %s, its output blocked, still ran 10 s after SIGTERM\nstderr: %s", args[0], stderr.String())
			}
		})
	}
}
