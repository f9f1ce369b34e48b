package hop

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/walpub/walpub/wal"
)

// TestImportPartialFailureNoDuplicates: an Import that stops after some
// batches went into the walpub journal (here at its wal.WithMaxBytes bound,
// from ImportOptions.WAL) records their ids in ImportedFile, so that once a
// producer has sent them, importing again does not append them a second
// time: importing twice appends nothing twice, failure or not.
func TestImportPartialFailureNoDuplicates(t *testing.T) {
	const n = importBatch + 1
	var journal []byte
	for seq := range uint64(n) {
		id := binary16(seq)
		v := bytes.Repeat([]byte{'v'}, 100)
		body := slices.Concat(be64(seq), be64(1), []byte("t"), be64(uint64(len(v))), v, be64(0),
			be64(1), be64(3), []byte(HeaderID), be64(16), id)
		journal = append(journal, hopRecordBytes(hopTypeMessageV2, body)...)
	}
	src := filepath.Join(t.TempDir(), "publisher.journal")
	if err := os.WriteFile(src, journal, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "journal")

	// Room for the first batch of 1000, not for the 1001st record.
	_, err := Import(src, dir, ImportOptions{WAL: []wal.Option{wal.WithMaxBytes(1000*144 + 72)}})
	if !errors.Is(err, wal.ErrFull) {
		t.Fatalf("first import: %v, want wal.ErrFull", err)
	}
	// A producer drains the journal: every record sent and acknowledged.
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for rec, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, rec.Seq)
	}
	if err := l.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	t.Logf("first import appended %d records before failing", len(seqs))

	rep, err := Import(src, dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != n-len(seqs) {
		t.Fatalf("second import appended %d records, want %d: %d already sent are appended (and sent) again",
			rep.Imported, n-len(seqs), rep.Imported-(n-len(seqs)))
	}
}

func binary16(seq uint64) []byte { return append(be64(0xfeed), be64(seq)...) }
