package walcat

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// mappedNow reports whether the process maps the file at path now.
func mappedNow(t *testing.T, path string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(maps), path)
}

// probeWriter is dump's output: at each write it notes whether segment
// 1 is still mapped, before and after the output reached segment 2 —
// as a paused "walcat dump | less" would hold it while blocked there.
type probeWriter struct {
	t              *testing.T
	seg1           string // segment 1's path
	seg1Name, seg2 string // the file names of segments 1 and 2
	out            strings.Builder
	mappedBefore   bool // segment 1 was mapped at a write of its records alone
	probedAfter    bool // a write of segment 2's records came
	mappedAfter    bool // segment 1 was mapped at the first of them
}

func (w *probeWriter) Write(p []byte) (int, error) {
	switch {
	case strings.Contains(string(p), "seg="+w.seg2):
		if !w.probedAfter {
			w.probedAfter = true
			w.mappedAfter = mappedNow(w.t, w.seg1)
		}
	case strings.Contains(string(p), "seg="+w.seg1Name):
		w.mappedBefore = w.mappedBefore || mappedNow(w.t, w.seg1)
	}
	return w.out.Write(p)
}

// TestDumpReleasesPassedSegments: dump unmaps each segment once it has
// printed its records, so that a reader that pauses it (walcat dump |
// less, the pipe full) does not keep the segments the writer has
// reclaimed since allocated on disk (a removed file's space stays taken
// while it is mapped). Before, dump held every segment's mapping until
// it ended.
func TestDumpReleasesPassedSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	for i := range 40 { // 64 KiB segments: three of them
		mustAppend(t, l, bigPayload(i, 4000))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w := &probeWriter{t: t, seg1: filepath.Join(dir, segment.Name(1)), seg1Name: segment.Name(1), seg2: segment.Name(2)}
	var errOut strings.Builder
	if code := Main(context.Background(), []string{"dump", "--preview", "0", dir}, w, &errOut); code != ExitOK {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	if !w.mappedBefore || !w.probedAfter {
		t.Fatalf("the probe did not fire: segment 1 seen mapped while dump printed it: %v; a write of segment 2's records: %v",
			w.mappedBefore, w.probedAfter)
	}
	if w.mappedAfter {
		t.Errorf("dump still maps %s while it writes the records of segment 2", w.seg1)
	}
}
