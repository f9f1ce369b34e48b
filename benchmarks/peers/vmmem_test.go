package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSettleMemory(t *testing.T) {
	knob := filepath.Join(t.TempDir(), "page_reporting_order")
	touched := int64(-1)
	touch := func(n int64) (time.Duration, error) {
		// While the memory is touched, nothing may be reported.
		if b, _ := os.ReadFile(knob); strings.TrimSpace(string(b)) != noReporting {
			t.Errorf("knob while touching: %q, want %s", b, noReporting)
		}
		touched = n
		return time.Second, nil
	}
	read := func() string {
		b, err := os.ReadFile(knob)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// No knob: not a VM that reports free pages; nothing is done.
	note, restore := settleMemory(knob, touch)
	restore()
	if note != "" || touched != -1 {
		t.Fatalf("without the knob: note %q, touched %d; want nothing done", note, touched)
	}

	// Reporting on: stopped for the run, put back by restore.
	if err := os.WriteFile(knob, []byte("9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	note, restore = settleMemory(knob, touch)
	if got := read(); got != noReporting {
		t.Fatalf("knob during the run: %s, want %s", got, noReporting)
	}
	if !strings.Contains(note, "stopped") || !strings.Contains(note, "order 9") {
		t.Fatalf("note %q does not say reporting at order 9 was stopped", note)
	}
	avail, err := memAvailable()
	if err != nil {
		t.Fatal(err)
	}
	if want := avail - touchMargin; want > 0 && (touched <= 0 || touched > avail) {
		t.Fatalf("touched %d bytes with %d available", touched, avail)
	}
	restore()
	if got := read(); got != "9" {
		t.Fatalf("knob after restore: %s, want 9", got)
	}

	// Reporting already off: left as it is.
	if err := os.WriteFile(knob, []byte(noReporting), 0o644); err != nil {
		t.Fatal(err)
	}
	note, restore = settleMemory(knob, touch)
	restore()
	if got := read(); got != noReporting || !strings.Contains(note, "was off") {
		t.Fatalf("reporting already off: knob %s, note %q", got, note)
	}
}

func TestTouchMemory(t *testing.T) {
	const n = 3<<20 + 5000 // not a whole number of pages
	res, err := touchMemory(n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != n {
		t.Fatalf("touched %d bytes, want %d", res.Bytes, n)
	}
}
