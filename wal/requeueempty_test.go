package wal

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestRequeueCutEmptyEncryptedRecord: an empty record of an encrypted
// log, opened with the key, is requeued like any other: its empty data is
// not taken for a record that could not be opened (ErrKey). View.Records
// and SalvageWithKey yield it with empty Data, not nil (nil: an encrypted
// record not opened, no key given).
func TestRequeueCutEmptyEncryptedRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"encrypted", nil},
		{"encrypted-compressed", []Option{WithCompression(CompressionZstd)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			key := bytes.Repeat([]byte{5}, 32)
			opts := append([]Option{WithEncryption(key)}, tc.opts...)
			l := mustOpen(t, dir, opts...)
			recs := [][]byte{[]byte("first"), []byte("second, damaged"), {}, []byte("fourth")}
			for _, r := range recs {
				if _, err := l.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, l)
			v, err := OpenView(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.SetKey(key); err != nil {
				t.Fatal(err)
			}
			viewed := false
			for r, err := range v.Records(3, 3) {
				viewed = err == nil && r.Data != nil && len(r.Data) == 0
			}
			v.Close()
			if !viewed {
				t.Fatal("View.Records with the key did not yield the empty record opened")
			}
			flipAt(t, dir, 2)
			// Salvage with the key yields it opened: empty, not nil
			// (nil is an encrypted record it could not open).
			opened := false
			for r, err := range SalvageWithKey(dir, key) {
				if err == nil && r.Seq == 3 {
					opened = r.Data != nil && len(r.Data) == 0
				}
			}
			if !opened {
				t.Fatal("SalvageWithKey did not yield the empty record opened")
			}
			if _, err := Repair(dir); err != nil {
				t.Fatal(err)
			}
			rq, err := RequeueCut(dir, opts...)
			if err != nil || rq.Requeued != 2 {
				t.Fatalf("RequeueCut with the key: %+v, %v; want the empty record and the fourth requeued", rq, err)
			}
			l = mustOpen(t, dir, opts...)
			got := pendingOf(t, l)
			mustClose(t, l)
			if len(got) != 3 || string(got[0].Data) != "first" || len(got[1].Data) != 0 || string(got[2].Data) != "fourth" {
				t.Fatalf("pending %d records after the requeue, want first, the empty one, fourth", len(got))
			}
		})
	}
}
