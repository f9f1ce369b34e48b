package walcat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readChars returns the bytes this process has read through read(2)
// and its kin (rchar in /proc/self/io): a log's verification reads its
// segments a window at a time with pread(2).
func readChars(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no rchar in /proc/self/io:\n%s", b)
	return 0
}

// TestFollowLookReadsOnlyNew: a look of follow at a live log after a
// record was appended reads about the same bytes whether the log holds
// 2 sealed segments or 10: it verifies what is new (wal.View.Reopen), not
// the whole log again. Before, every look that found a change read and
// verified every segment: a 64 KiB segment more for each in the history.
func TestFollowLookReadsOnlyNew(t *testing.T) {
	read := map[int]int64{}
	for _, sealed := range []int{2, 10} {
		dir := t.TempDir()
		l := openLog(t, dir) // 64 KiB segments
		for l.Stats().Segments <= sealed {
			mustAppend(t, l, bigPayload(0, 4000))
		}
		f, out, _ := newTestFollower(t, dir, 0) // -n 0
		f.mustLook(t)
		mustAppend(t, l, []byte("new"))
		before := readChars(t)
		f.mustLook(t)
		read[sealed] = readChars(t) - before
		if !bytes.Contains(out.Bytes(), []byte(`data="new"`)) {
			t.Fatalf("%d sealed segments: the look did not print the record appended:\n%s", sealed, out)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("bytes read by a look: %v", read)
	if grew := read[10] - read[2]; grew > 8<<10 {
		t.Errorf("a look at a log of 10 sealed segments read %d bytes more than one at a log of 2: %s",
			grew, fmt.Sprint(read))
	}
}
