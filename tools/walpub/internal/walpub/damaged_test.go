package walpub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/tools/internal/logtest"
	"github.com/walpub/walpub/wal"
	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestDamagedJournalAdvice: walpub refuses a damaged journal (exit 1) and
// says what mends it, by the kind of damage: a damaged record is cut by
// "walcat repair --requeue", which keeps every other record (done here
// with the wal functions walcat runs); a directory where a segment
// belongs is for a person to move, walcat repair does not touch it;
// damaged metadata is mended by "walcat repair". Before, every kind got
// the cut's advice, without --requeue, which lost every record after the
// damaged one from the journal.
func TestDamagedJournalAdvice(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, journal string)
		advice string
	}{
		{"record", func(t *testing.T, journal string) { flipRecord(t, journal, 100) },
			`"walcat repair --requeue JOURNAL" cuts the journal there and appends again every record after the damage that still reads whole`},
		{"directory", func(t *testing.T, journal string) {
			if err := os.Mkdir(filepath.Join(journal, segment.Name(2)), 0o700); err != nil {
				t.Fatal(err)
			}
		}, "move JOURNAL/" + segment.Name(2) + " out of the journal's directory, or put the file itself there: walcat repair does not change it"},
		{"checkpoint", func(t *testing.T, journal string) {
			testutil.FlipByte(t, filepath.Join(journal, index.CheckpointName), 20)
		}, `"walcat repair JOURNAL" mends it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			journal := filepath.Join(t.TempDir(), "j")
			url := deadURL(t, "damaged")
			if r := walpub(t, lines("line", n), "--journal", journal, "--drain-timeout", "10ms", url); r.code != ExitUnconfirmed {
				t.Fatal(r)
			}
			tc.damage(t, journal)
			r := walpub(t, "more\n", "--journal", journal, "--drain-timeout", "10ms", url)
			if r.code != ExitError || !strings.Contains(r.stderr, "the journal "+journal+" is damaged") {
				t.Fatalf("want exit 1 naming the damaged journal: %s", r)
			}
			if advice := strings.ReplaceAll(tc.advice, "JOURNAL", journal); !strings.Contains(r.stderr, advice) {
				t.Fatalf("stderr lacks %q:\n%s", advice, r.stderr)
			}
			if tc.name != "record" {
				return
			}
			// Following the advice keeps every record but the damaged one.
			if _, err := wal.Repair(journal); err != nil {
				t.Fatal(err)
			}
			if in, _ := journalInfo(t, journal); in.Pending != 99 {
				t.Fatalf("%d records pending after the cut, want 99", in.Pending)
			}
			rep, err := wal.RequeueCut(journal)
			if err != nil || rep.Requeued != n-100 {
				t.Fatalf("RequeueCut: %+v, %v; want %d records", rep, err, n-100)
			}
			if in, _ := journalInfo(t, journal); in.Pending != n-1 {
				t.Fatalf("%d records pending after the requeue, want %d", in.Pending, n-1)
			}
		})
	}
}

// flipRecord flips a byte inside the stored record seq of the closed
// journal.
func flipRecord(t *testing.T, journal string, seq uint64) {
	t.Helper()
	r := logtest.RecordAt(t, journal, seq)
	testutil.FlipByte(t, r.Path, r.Offset+segment.FrameHeaderSize+3)
}
