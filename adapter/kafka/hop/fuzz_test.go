package hop

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
)

// FuzzReadJournal feeds arbitrary bytes to the hop journal reader, seeded
// with the journals hop-client wrote (testdata/*.journal), cut and with
// garbage appended. Invariants:
//   - it never panics, and allocates no more than the input allows;
//   - without salvage, the error is nil or a *JournalError whose offset is
//     inside the input;
//   - with salvage, there is no error; every pending message's record
//     starts inside the input; the pending messages have distinct
//     sequence numbers, in ascending order;
//   - when the strict read succeeds, salvage reads the same messages and
//     reports no damage.
func FuzzReadJournal(f *testing.F) {
	for _, name := range []string{"v1.journal", "v2.journal"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-5])
		f.Add(append(append([]byte(nil), b...), "garbage after the end"...))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		strict, err := parseJournal(b, "fuzz.journal", false)
		if err != nil {
			var je *JournalError
			if !errors.As(err, &je) || !errors.Is(err, ErrJournalCorrupt) || je.Offset < 0 || je.Offset >= int64(len(b)) {
				t.Fatalf("strict: error %v is not a *JournalError inside the %d bytes", err, len(b))
			}
		}
		j, err := parseJournal(b, "fuzz.journal", true)
		if err != nil {
			t.Fatalf("salvage: %v", err)
		}
		for i, m := range j.Pending {
			if m.Offset < 0 || m.Offset >= int64(len(b)) {
				t.Fatalf("message %d at offset %d, outside the %d bytes", m.Seq, m.Offset, len(b))
			}
			if i > 0 && j.Pending[i-1].Seq >= m.Seq {
				t.Fatalf("pending seqs out of order: %d then %d", j.Pending[i-1].Seq, m.Seq)
			}
		}
		if strict != nil {
			if len(j.Damage) != 0 || len(j.Pending) != len(strict.Pending) || j.TornBytes != strict.TornBytes {
				t.Fatalf("salvage of a healthy journal: %d pending (strict %d), damage %v", len(j.Pending), len(strict.Pending), j.Damage)
			}
			for i := range j.Pending {
				if describe(j.Pending[i]) != describe(strict.Pending[i]) {
					t.Fatalf("salvage read %s, strict %s", describe(j.Pending[i]), describe(strict.Pending[i]))
				}
			}
		}
	})
}

// FuzzImportedFile feeds arbitrary bytes to the reader of ImportedFile, the
// ids an Import already moved into the log. Invariants:
//   - it never panics; an error names the file;
//   - what it accepts is a set of non-empty ids, and the length it returns
//     ends at the file's last newline (a last line without one, a write cut
//     short, is left out);
//   - one more id appended after that length reads back as the same set
//     plus that id, whatever the cut-short line held.
func FuzzImportedFile(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("00112233445566778899aabbccddeeff\n"))
	f.Add([]byte("00112233445566778899aabbccddeeff\n0011"))
	f.Add([]byte("00112233445566778899aabbccddeeff\nnot hex\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, ImportedFile)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		seen, valid, err := readImported(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			return
		}
		if want := int64(bytes.LastIndexByte(b, '\n') + 1); valid != want {
			t.Fatalf("valid length %d, the last newline ends at %d", valid, want)
		}
		for id := range seen {
			if id == "" {
				t.Fatal("an empty id")
			}
		}
		extra := []byte("\xfe\xed new id")
		if err := appendImported(dir, valid, [][]byte{extra}); err != nil {
			t.Fatal(err)
		}
		again, _, err := readImported(path)
		if err != nil {
			t.Fatalf("after appending an id: %v", err)
		}
		seen[string(extra)] = true
		if !maps.Equal(again, seen) {
			t.Fatalf("after appending an id, read %d ids, want %d", len(again), len(seen))
		}
	})
}

// FuzzCheck feeds arbitrary bytes to Check in every format it checks,
// seeded with the Avro files hop-client wrote (testdata/avro) and a
// VOEvent. Check reads what a user hands walpub to publish. Invariants:
//   - it never panics, and allocates no more than the input allows (an
//     Avro length claiming more than the bytes at hand is refused, not
//     allocated);
//   - its error, if any, is a *FormatError naming the format.
func FuzzCheck(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "avro", "*.avro"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no Avro seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<?xml version="1.0"?><voe:VOEvent ivorn="ivo://x" role="test" version="2.0" xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"><Who/></voe:VOEvent>`))
	f.Add([]byte(`{"header": {}, "body": "text"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, format := range []string{FormatJSON, FormatVOEvent, FormatAvro, FormatGCNTextNotice, FormatCircular, FormatExternal} {
			var err error
			allocs := testutil.LeastAlloc(1, func() { err = Check(format, b) })
			if allocs > 64*uint64(len(b))+1<<20 {
				t.Fatalf("Check(%s) of %d bytes allocated %d bytes", format, len(b), allocs)
			}
			var fe *FormatError
			if err != nil && (!errors.As(err, &fe) || fe.Format != format) {
				t.Fatalf("Check(%s): error %T %v is not a *FormatError for it", format, err, err)
			}
		}
	})
}
