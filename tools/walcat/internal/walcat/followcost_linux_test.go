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
// verified every segment: a 64 KiB segment more for each in the history,
// 503619 bytes more at 10 sealed segments than at 2.
//
// What a look reads of the last segment, which it always scans again,
// is not the same from run to run, though: the scan reads up to where the
// file system holds data, and the log's preparer may or may not have
// populated pages of the active segment ahead of its records by then
// (those read as data). That can add up to the segment's size to either
// look (seen: 5112 bytes read at 2 sealed segments, 67112 at 10), so the
// bound is one segment, and 8 KiB for what does grow with the history
// (the checkpoint: about 1 KiB more at 10 segments).
func TestFollowLookReadsOnlyNew(t *testing.T) {
	const segmentSize = 64 << 10 // openLog's
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
	if grew := read[10] - read[2]; grew > segmentSize+8<<10 {
		t.Errorf("a look at a log of 10 sealed segments read %d bytes more than one at a log of 2: %s",
			grew, fmt.Sprint(read))
	}
}
