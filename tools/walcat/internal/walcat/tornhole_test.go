package walcat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal"
)

// TestTornHeaderlessSegment: a power cut took the header of a segment file
// beyond the durable high-water mark (a rotation, or a new log, never
// synced), so the bytes it holds are a torn tail that the next Open removes
// with the file. verify and stats report them without naming an offset
// they are not at (before: "at offset -1 of" the segment before), and
// verify does not panic when no segment is left (before: index out of
// range).
func TestTornHeaderlessSegment(t *testing.T) {
	// headerless zeroes the header of the segment file at path and leaves
	// a few bytes of data after it.
	headerless := func(t *testing.T, path string, size int) {
		t.Helper()
		b := make([]byte, size)
		copy(b[100:], "half a frame")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	only := t.TempDir() // a new log whose only segment lost its header
	headerless(t, filepath.Join(only, "00000000000000000001.seg"), 4096)

	after := t.TempDir() // a second segment lost its header, nothing synced
	l := openLog(t, after)
	for i := range 30 {
		mustAppend(t, l, bigPayload(i, 3000))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"superblock", "checkpoint"} { // never synced
		if err := os.Remove(filepath.Join(after, name)); err != nil {
			t.Fatal(err)
		}
	}
	headerless(t, filepath.Join(after, "00000000000000000002.seg"), 64<<10)

	for name, dir := range map[string]string{"only": only, "after": after} {
		v, err := wal.OpenView(dir)
		if err != nil {
			t.Fatal(err)
		}
		in := v.Info()
		v.Close()
		if in.TornBytes == 0 || in.TornOffset != -1 {
			t.Fatalf("%s: the test needs a torn tail in a dropped file: %d bytes at %d", name, in.TornBytes, in.TornOffset)
		}
		for _, args := range [][]string{{"verify", dir}, {"stats", dir}} {
			r := walcat(t, args...)
			if r.code != ExitOK || strings.Contains(r.stdout, "offset -1") || !strings.Contains(r.stdout, "header") {
				t.Errorf("%s: walcat %s: exit %d, want 0 and the torn bytes in a file without a header:\n%s%s", name, args[0], r.code, r.stdout, r.stderr)
			}
		}
	}
}
