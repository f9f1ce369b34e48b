package wal

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/segment"
)

// TestSalvageReadsDataOnly: Salvage maps the segment files instead of
// reading them into memory: a 256 MiB segment that holds a few records
// costs no more memory than the records do. Before, it read every segment
// file whole, twice (512 MiB allocated here).
func TestSalvageReadsDataOnly(t *testing.T) {
	const size = 256 << 20
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(size))
	for range 100 {
		if _, err := l.Append(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	for r, err := range Salvage(dir) {
		if err != nil {
			t.Fatalf("Salvage: %v", err)
		}
		if len(r.Data) != 1000 {
			t.Fatalf("record %d: %d bytes", r.Seq, len(r.Data))
		}
		n++
	}
	runtime.ReadMemStats(&after)
	if n != 100 {
		t.Fatalf("Salvage yielded %d records, want 100", n)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a >= size/16 {
		t.Fatalf("Salvage allocated %d MiB to read 100 records from a %d MiB segment", a>>20, size>>20)
	}
}

// TestSalvageFileTruncatedWhileRead: a segment file cut short while
// Salvage reads it (it maps the file) ends that file's records with an
// error naming it, not a crash, and Salvage goes on with the next file.
func TestSalvageFileTruncatedWhileRead(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(1<<20))
	for range 3000 {
		if _, err := l.Append(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	first := filepath.Join(dir, segment.Name(1))
	var fault error
	later := 0
	for r, err := range Salvage(dir) {
		switch {
		case err != nil && fault == nil:
			fault = err
		case err != nil:
			t.Fatalf("second error: %v", err)
		case r.Path == first && r.Seq == 1:
			if err := os.Truncate(first, segment.HeaderSize+4096); err != nil {
				t.Fatal(err)
			}
		case r.Path != first:
			later++
		}
	}
	if fault == nil || !strings.Contains(fault.Error(), first) {
		t.Fatalf("Salvage after the truncation: %v; want an error naming %s", fault, first)
	}
	if later == 0 {
		t.Fatal("Salvage yielded nothing from the files after the truncated one")
	}
	t.Logf("%v; %d records from later files", fault, later)
}

// TestSalvageDataWritable: the Data Salvage yields may be changed in
// place during the iteration step (it is not the file's read-only
// mapping).
func TestSalvageDataWritable(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if _, err := l.Append([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	for r, err := range Salvage(dir) {
		if err != nil {
			t.Fatal(err)
		}
		r.Data[0] = 'x'
		if string(r.Data) != "xbc" {
			t.Fatalf("Data %q", r.Data)
		}
	}
}

// TestSalvageReportsNonRegularSegments: a segment's name on a directory
// or a symbolic link, which Open refuses, is reported by Salvage as
// damage naming it, and the regular segments are read. Before, Salvage
// left such names out of its listing without a word.
func TestSalvageReportsNonRegularSegments(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir)
	if _, err := l.Append([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	asDir := filepath.Join(dir, segment.Name(7))
	asLink := filepath.Join(dir, segment.Name(8))
	if err := os.Mkdir(asDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, segment.Name(1)), asLink); err != nil {
		t.Fatal(err)
	}
	reported := map[string]bool{}
	records := 0
	for _, err := range Salvage(dir) {
		var ce *CorruptionError
		switch {
		case errors.As(err, &ce):
			reported[ce.Path] = true
		case err != nil:
			t.Fatalf("Salvage: %v", err)
		default:
			records++
		}
	}
	if !reported[asDir] || !reported[asLink] || records != 1 {
		t.Fatalf("Salvage reported %v and yielded %d records; want %s and %s reported, 1 record", reported, records, asDir, asLink)
	}
}
