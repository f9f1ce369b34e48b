package kafka

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/walpub/walpub/internal/kfaketest"
)

// TestDamagedStateKey: a crash between a commit and the journal's
// acknowledgement (the journal directory copied at withAfterCommit, which is
// what kill -9 there leaves) is reconciled without duplicates. The same
// snapshot with one byte of the state file damaged ("max_sent" becomes
// "max_rent") must make NewProducer fail with an error naming the file: read
// as a state with nothing sent, reconcile would look at no record and send
// the committed ones again.
func TestDamagedStateKey(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	url := kfaketest.URL(c, "t")
	dir := t.TempDir() + "/journal"
	snap, ok := t.TempDir()+"/snap", t.TempDir()+"/ok"
	var copied atomic.Bool
	p, err := NewProducer(url, WithJournal(dir), WithExactlyOnce(""), withAfterCommit(func() {
		if !copied.Swap(true) {
			if err := os.CopyFS(snap, os.DirFS(dir)); err != nil {
				t.Error(err)
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	writeRecords(t, ctx, p, 10, 1, 10)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(ok, os.DirFS(snap)); err != nil {
		t.Fatal(err)
	}
	run := func(d string) error {
		p, err := NewProducer(url, WithJournal(d), WithExactlyOnce(""))
		if err != nil {
			return err
		}
		return p.Close(ctx)
	}
	if err := run(ok); err != nil { // control: the crash snapshot as it is
		t.Fatal(err)
	}
	if tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "t")); tl.duplicates() != 0 {
		t.Fatalf("control: %d duplicates", tl.duplicates())
	}
	path := filepath.Join(snap, txnStateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state file: %s", b)
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"max_sent"`), []byte(`"max_rent"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(snap)
	tl := countIDs(t, readCommitted(t, c.ListenAddrs(), "t"))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("NewProducer on a damaged state file: err %v (want one naming %s); read_committed now: %d distinct, %d duplicates",
			err, path, len(tl.copies), tl.duplicates())
	}
}

const goodTxnFile = `{"version":1,"transactional_id":"walpub-x","max_sent":7,"floors":{"t":{"0":3}}}`

// badTxnFiles are state files decodeTxnFile must refuse: a field renamed,
// missing, empty, out of range or unknown, another version, a cut.
var badTxnFiles = []string{
	`{"version":1,"transactional_id":"walpub-x","max_rent":7,"floors":{}}`,
	`{"version":1,"transactional_id":"walpub-x","max_sent":7}`,
	`{"version":1,"transactional_id":"","max_sent":7,"floors":{}}`,
	`{"version":1,"transactional_id":"walpub-x","max_sent":7,"floors":{"t":{"0":-1}}}`,
	`{"version":1,"transactional_id":"walpub-x","max_sent":7,"floors":{},"extra":1}`,
	`{"version":2,"transactional_id":"walpub-x","max_sent":7,"floors":{}}`,
	`{"version":1,"transactional_id":"walpub-x","max_sent":-7,"floors":{}}`,
	`{"version":1,"transactional_id":"walpub-x","max_sent":7,"floors":{}`,
}

// TestDecodeTxnFile: the state file decodes only whole and in range.
func TestDecodeTxnFile(t *testing.T) {
	if f, err := decodeTxnFile([]byte(goodTxnFile)); err != nil || f.MaxSent != 7 || f.Floors["t"][0] != 3 {
		t.Fatalf("good state: %+v, %v", f, err)
	}
	for _, bad := range badTxnFiles {
		if f, err := decodeTxnFile([]byte(bad)); err == nil {
			t.Errorf("%s: decoded as %+v", bad, f)
		}
	}
}

// FuzzTxnFile fuzzes decodeTxnFile, the exactly-once state file's decoder.
//
// Invariants:
//   - it never panics;
//   - what it accepts is version 1, names a transactional ID and has no
//     negative partition or floor;
//   - saved again (json.Marshal, as txnState.save writes it), an accepted
//     state decodes to the same state: nothing is lost or changed by a
//     save after an Open.
func FuzzTxnFile(f *testing.F) {
	f.Add([]byte(goodTxnFile))
	for _, bad := range badTxnFiles {
		f.Add([]byte(bad))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeTxnFile(b)
		if err != nil {
			return
		}
		if st.Version != txnStateVersion || st.TransactionalID == "" {
			t.Fatalf("accepted version %d, transactional ID %q", st.Version, st.TransactionalID)
		}
		for topic, parts := range st.Floors {
			for p, off := range parts {
				if p < 0 || off < 0 {
					t.Fatalf("accepted floor %d of %q partition %d", off, topic, p)
				}
			}
		}
		re, err := json.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := decodeTxnFile(re)
		if err != nil {
			t.Fatalf("saved again as %s, it does not decode: %v", re, err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("saved again as %s, it decodes to %+v, was %+v", re, st2, st)
		}
	})
}
