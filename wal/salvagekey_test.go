package wal

import (
	"errors"
	"testing"
)

// TestSalvageWithWrongKey: SalvageWithKey given a key that is not the
// log's, where the encryption file says so, fails with ErrKey, as Open and
// View.SetKey do; it must not report every encrypted record of a healthy
// log as damage (a *CorruptionError caused by ErrAuth), which walcat dump
// --salvage prints as damage in as many places. With the log's key it
// yields every record.
func TestSalvageWithWrongKey(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg), WithEncryption(testKey))
	for range 5 {
		if _, err := l.Append([]byte(marker)); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, l)
	damage, keyErr, records := 0, 0, 0
	for r, err := range SalvageWithKey(dir, otherKey) {
		var ce *CorruptionError
		switch {
		case errors.As(err, &ce):
			damage++
		case errors.Is(err, ErrKey):
			keyErr++
		case err != nil:
			t.Fatalf("SalvageWithKey(other key): %v", err)
		default:
			records++
			if r.Data != nil {
				t.Fatalf("seq %d: data %q under another key", r.Seq, r.Data)
			}
		}
	}
	if keyErr != 1 || damage != 0 || records != 0 {
		t.Fatalf("SalvageWithKey(other key): %d ErrKey, %d damage, %d records; want one ErrKey and nothing else", keyErr, damage, records)
	}
	n := 0
	for r, err := range SalvageWithKey(dir, testKey) {
		if err != nil || string(r.Data) != marker {
			t.Fatalf("SalvageWithKey(key): seq %d %q, %v", r.Seq, r.Data, err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("SalvageWithKey(key) yielded %d records, want 5", n)
	}
}
