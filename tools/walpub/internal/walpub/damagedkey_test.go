package walpub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamagedJournalAdviceKey: the advice for a damaged journal names
// --key-file for an encrypted journal, and not for one that is not
// encrypted though walpub was given --journal-key-file (which would have
// encrypted it from then on): walcat repair refuses a key for a log that
// is not encrypted (a usage error), so the advice with it did not work.
func TestDamagedJournalAdviceKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("03", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		encrypted bool
	}{{"plain", false}, {"encrypted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			journal := filepath.Join(t.TempDir(), "j")
			url := deadURL(t, "damagedkey")
			args := []string{"--journal", journal, "--drain-timeout", "10ms", url}
			if tc.encrypted {
				args = append([]string{"--journal-key-file", keyFile}, args...)
			}
			if r := walpub(t, lines("line", 300), args...); r.code != ExitUnconfirmed {
				t.Fatal(r)
			}
			flipRecord(t, journal, 100)
			r := walpub(t, "more\n", "--journal", journal, "--journal-key-file", keyFile, "--drain-timeout", "10ms", url)
			advice := `"walcat repair --requeue ` + journal + `"`
			if tc.encrypted {
				advice = `"walcat repair --key-file ` + keyFile + ` --requeue ` + journal + `"`
			}
			if r.code != ExitError || !strings.Contains(r.stderr, advice) {
				t.Fatalf("want exit 1 and the advice %s: %s", advice, r)
			}
			if _, err := os.Stat(filepath.Join(journal, "encryption")); (err == nil) != tc.encrypted {
				t.Fatalf("encryption file: %v, want it only for the encrypted journal", err)
			}
		})
	}
}
