// Package logtest holds test helpers of the tools that look into a log.
package logtest

import (
	"testing"

	"github.com/walpub/walpub/wal"
)

// RecordAt returns where record seq of the log in dir is stored (its Data
// left out), read through a wal.View.
func RecordAt(t testing.TB, dir string, seq uint64) wal.RecordInfo {
	t.Helper()
	v, err := wal.OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for r, err := range v.Records(seq, seq) {
		if err != nil {
			t.Fatal(err)
		}
		r.Data = nil
		return r
	}
	t.Fatalf("seq %d not found", seq)
	return wal.RecordInfo{}
}
