package hop

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
