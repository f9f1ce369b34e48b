//go:build unix

package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

const lockDirEnv = "WALTEST_LOCK_DIR"

// TestLockChild is run by TestLock in another process: it opens the log
// and says what happened.
func TestLockChild(t *testing.T) {
	dir := os.Getenv(lockDirEnv)
	if dir == "" {
		t.Skip("run by TestLock")
	}
	l, err := Open(dir)
	switch {
	case errors.Is(err, ErrLocked):
		fmt.Println("LOCKED")
	case err != nil:
		fmt.Println("ERROR", err)
	default:
		fmt.Println("OPEN")
		l.Close()
	}
}

func openInChild(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockDirEnv+"="+dir, childGORACE())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	for _, ln := range strings.Split(string(out), "\n") {
		if ln == "LOCKED" || ln == "OPEN" || strings.HasPrefix(ln, "ERROR") {
			return ln
		}
	}
	t.Fatalf("child said nothing useful: %s", out)
	return ""
}

// TestLock: only one Log may hold a directory, in this process or any
// other; Close releases it.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	if _, err := l.Append([]byte("held")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if l2, err := Open(dir, WithSegmentSize(smallSeg)); !errors.Is(err, ErrLocked) {
			if err == nil {
				l2.Close()
			}
			t.Fatalf("second Open in this process: %v, want ErrLocked", err)
		}
	}
	if got := openInChild(t, dir); got != "LOCKED" {
		t.Fatalf("Open in another process while held: %s, want LOCKED", got)
	}
	// The refused Opens disturbed nothing.
	if g, err := l.Get(1); err != nil || string(g) != "held" {
		t.Fatalf("Get after refused Opens: %q, %v", g, err)
	}
	mustClose(t, l)
	if got := openInChild(t, dir); got != "OPEN" {
		t.Fatalf("Open in another process after Close: %s, want OPEN", got)
	}
	l = mustOpen(t, dir, WithSegmentSize(smallSeg))
	if g, err := l.Get(1); err != nil || string(g) != "held" {
		t.Fatalf("Get after reopen: %q, %v", g, err)
	}
	mustClose(t, l)
}

// TestFileModes: files are 0600 and a created directory 0700 unless
// WithFileMode says otherwise; every kind of file (lock, segments, a
// compacted segment, superblock, checkpoint) is checked.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, c := range []struct {
		opts []Option
		want fs.FileMode
	}{
		{nil, 0o600},
		{[]Option{WithFileMode(0o640)}, 0o640},
	} {
		t.Run(fmt.Sprintf("mode=%o", c.want), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new", "log")
			l := mustOpen(t, dir, append(c.opts, WithSegmentSize(smallSeg))...)
			var seqs []uint64
			for range 60 {
				q, err := l.Append(make([]byte, 3000))
				if err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs, q)
			}
			// Most of the first segment acknowledged: it is compacted.
			end := segRanges(l)[1][0]
			for _, q := range seqs[1 : end-1] {
				if err := l.Ack(q); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, "the first segment to be compacted", func() bool {
				fi, err := os.Stat(filepath.Join(dir, segment.Name(1)))
				return err == nil && fi.Size() < smallSeg
			})
			mustClose(t, l)
			for _, d := range []string{dir, filepath.Dir(dir)} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o700 {
					t.Errorf("directory %s has mode %v, want 0700", d, fi.Mode().Perm())
				}
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, e.Name())
				if fi.Mode().Perm() != c.want {
					t.Errorf("%s has mode %v, want %v", e.Name(), fi.Mode().Perm(), c.want)
				}
			}
			if len(names) < 5 {
				t.Errorf("too few files to judge: %v", names)
			}
		})
	}
}

// childGORACE keeps a race-enabled child from sleeping a second at exit
// (the race detector's atexit_sleep_ms), keeping any other GORACE option.
func childGORACE() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// TestCloseUnlocksDespiteCopies holds a duplicate of the lock file's
// descriptor across Close, as a child process forked by another goroutine
// does until it execs: Close must release the lock all the same, so that
// the directory can be opened again at once.
func TestCloseUnlocksDespiteCopies(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := syscall.Dup(int(l.lock.OS().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(dup)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close, while a copy of the lock's descriptor is open: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
}
