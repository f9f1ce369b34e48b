package walcat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatsCountsPreparedSegment: the writer keeps its next segment
// prepared (allocated in full, a file named next-N.seg.tmp) ahead of
// rotation, and stats on the live log counts it in the bytes on disk, as
// the log's own Stats does, and says how much of them it is. Before,
// "on disk" left it out: a whole segment's size less than the directory
// held.
func TestStatsCountsPreparedSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	mustAppend(t, l, []byte("one")) // the preparer starts with the first append
	var prepared int64
	deadline := time.Now().Add(time.Minute) // a bound for a hung test, not a timing assertion
	for prepared == 0 {
		names, err := filepath.Glob(filepath.Join(dir, "next-*.seg.tmp"))
		if err != nil {
			t.Fatal(err)
		}
		if len(names) == 1 {
			if fi, err := os.Stat(names[0]); err == nil && fi.Size() == 64<<10 {
				prepared = fi.Size()
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no prepared segment after a minute")
		}
		time.Sleep(time.Millisecond)
	}
	// The bytes of the files the log keeps but the prepared one; the
	// writer may be writing its metadata in the background (a checkpoint
	// in checkpoint.tmp, renamed into place), so stats is run again until
	// they are the same before and after it.
	logBytes := func() int64 {
		var n int64
		for _, pat := range []string{"*.seg", "superblock", "checkpoint", "encryption"} {
			names, err := filepath.Glob(filepath.Join(dir, pat))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				if fi, err := os.Stat(name); err == nil {
					n += fi.Size()
				}
			}
		}
		return n
	}
	var j struct {
		DiskBytes     int64 `json:"disk_bytes"`
		PreparedBytes int64 `json:"prepared_bytes"`
	}
	var want int64
	for {
		before := logBytes()
		r := walcat(t, "stats", "--json", dir)
		if r.code != ExitOK {
			t.Fatalf("stats --json: %v", r)
		}
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatal(err)
		}
		if want = logBytes() + prepared; want == before+prepared {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the log's files kept changing for a minute")
		}
	}
	if j.DiskBytes != want || j.PreparedBytes != prepared {
		t.Errorf("stats --json: disk_bytes %d, prepared_bytes %d; want %d and %d (the prepared segment)",
			j.DiskBytes, j.PreparedBytes, want, prepared)
	}
	r := walcat(t, "stats", dir)
	if !strings.Contains(r.stdout, "64.0 KiB of them the prepared next segment, no records") {
		t.Errorf("stats does not say the prepared segment is on disk:\n%s", r.stdout)
	}
}
