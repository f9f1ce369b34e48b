package cliutil

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadKeyFileModeMessage checks that a key file refused for its mode
// is refused with a message that says what its group or others may do
// with it: a key file they may only write is not one they may read.
func TestReadKeyFileModeMessage(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		says string
	}{
		{0o640, "its group or others may read it;"},
		{0o604, "its group or others may read it;"},
		{0o620, "its group or others may write it;"},
		{0o602, "its group or others may write it;"},
		{0o610, "its group or others may execute it;"},
		{0o660, "its group or others may read or write it;"},
		{0o677, "its group or others may read, write or execute it;"},
	} {
		path := filepath.Join(t.TempDir(), "journal.key")
		if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "make it 0600") {
			t.Errorf("mode %#o: got %v, want an error saying %q", c.mode, err, c.says)
		}
	}
	path := filepath.Join(t.TempDir(), "journal.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)), 0o400); err != nil {
		t.Fatal(err)
	}
	if key, err := ReadKeyFile(path); err != nil || len(key) != 32 {
		t.Errorf("mode 0400: %d bytes, %v", len(key), err)
	}
}

// TestReadKeyFileFIFO: a key file that is a FIFO is refused at once as
// not a regular file; opening it for reading used to wait for a writer,
// for good.
func TestReadKeyFileFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadKeyFile(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("ReadKeyFile of a FIFO: %v, want an error saying it is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		// Let the goroutine go: a writer ends its wait.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("ReadKeyFile of a FIFO still waits after 10 s")
	}
}
