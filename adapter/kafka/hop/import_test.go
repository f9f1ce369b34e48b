package hop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/wal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journalRecords returns the pending records of the walpub journal in dir.
func journalRecords(t *testing.T, dir string) []*kgo.Record {
	t.Helper()
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out []*kgo.Record
	for rec, err := range l.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		r, err := kafka.DecodeRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// asMessage renders a journal record as describe renders a hop message.
func asMessage(r *kgo.Record, seq uint64) string {
	return describe(JournalMessage{Seq: seq, Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
}

// TestImport: the pending messages of a journal hop-client wrote land in a
// walpub journal as hop would send them, original _id included; importing
// again appends nothing, even after the records were sent and acknowledged.
func TestImport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	src := filepath.Join("testdata", "v2.journal")
	rep, err := Import(src, dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := loadPending(t, "v2")
	if rep.Imported != len(want) || rep.Skipped != 0 || rep.FirstSeq != 1 || rep.LastSeq != uint64(len(want)) {
		t.Fatalf("report %+v, want %d imported", rep, len(want))
	}
	recs := journalRecords(t, dir)
	if len(recs) != len(want) {
		t.Fatalf("%d records in the walpub journal, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if got := asMessage(r, want[i].Seq); got != describeHop(want[i]) {
			t.Errorf("record %d:\n%s\nwant\n%s", i, got, describeHop(want[i]))
		}
		if r.Timestamp.IsZero() {
			t.Errorf("record %d has no timestamp", i)
		}
	}

	// Again: nothing new (the records are still pending).
	rep, err = Import(src, dir, ImportOptions{})
	if err != nil || rep.Imported != 0 || rep.Skipped != len(want) {
		t.Fatalf("second import: %+v, %v", rep, err)
	}
	// Acknowledge them all (as a producer does once they are sent): the
	// imported-ids file still knows them.
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ack(1, 2); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rep, err = Import(src, dir, ImportOptions{})
	if err != nil || rep.Imported != 0 || rep.Skipped != len(want) {
		t.Fatalf("import after the records were acknowledged: %+v, %v", rep, err)
	}
	if n := len(journalRecords(t, dir)); n != 0 {
		t.Fatalf("%d records pending after a repeated import", n)
	}
}

// TestImportRepeatedCallerID: hop's pack appends its own _id after the
// headers it is given, so a relay that republishes a consumed message
// with that message's headers (testdata/relay.journal: to two topics)
// journals messages whose first _id is the same and whose last, hop's, is
// not. Both are imported, each once; importing again appends neither.
func TestImportRepeatedCallerID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	src := filepath.Join("testdata", "relay.journal")
	rep, err := Import(src, dir, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := loadPending(t, "relay")
	recs := journalRecords(t, dir)
	if rep.Imported != len(want) || rep.Skipped != 0 || len(recs) != len(want) {
		t.Fatalf("report %+v, %d records in the walpub journal; want the %d messages hop sends", rep, len(recs), len(want))
	}
	for i, r := range recs {
		if got := asMessage(r, want[i].Seq); got != describeHop(want[i]) {
			t.Errorf("record %d:\n%s\nwant\n%s", i, got, describeHop(want[i]))
		}
	}
	rep, err = Import(src, dir, ImportOptions{})
	if err != nil || rep.Imported != 0 || rep.Skipped != len(want) {
		t.Fatalf("second import: %+v, %v", rep, err)
	}
}

// TestImportDedupWithoutIDsFile: with the imported-ids file lost (a crash
// before it was written), records still pending in the walpub journal
// are not appended twice; a torn last line of the file is cut off.
func TestImportDedupWithoutIDsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	src := filepath.Join("testdata", "v2.journal")
	if _, err := Import(src, dir, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	ids := filepath.Join(dir, ImportedFile)
	b, err := os.ReadFile(ids)
	if err != nil || strings.Count(string(b), "\n") != 2 {
		t.Fatalf("%s: %q, %v", ids, b, err)
	}
	if err := os.Remove(ids); err != nil {
		t.Fatal(err)
	}
	rep, err := Import(src, dir, ImportOptions{})
	if err != nil || rep.Imported != 0 || rep.Skipped != 2 {
		t.Fatalf("import without %s: %+v, %v", ImportedFile, rep, err)
	}

	// A torn last line (a crash mid-write) is ignored and cut off.
	dir2 := filepath.Join(t.TempDir(), "journal")
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, ImportedFile), []byte("0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = Import(src, dir2, ImportOptions{})
	if err != nil || rep.Imported != 2 {
		t.Fatalf("import with a torn ids file: %+v, %v", rep, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, ImportedFile)); strings.HasPrefix(string(b), "0123") || strings.Count(string(b), "\n") != 2 {
		t.Errorf("ids file after the import: %q", b)
	}
	if err := os.WriteFile(filepath.Join(dir2, ImportedFile), []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(src, dir2, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "line 1 is not a hex id") {
		t.Errorf("damaged ids file: %v", err)
	}
}

// TestImportV1: version 1 records name no topic: Import wants one; a
// message stored without _id gets one derived from its contents, the same
// at every import.
func TestImportV1(t *testing.T) {
	src := filepath.Join("testdata", "v1.journal")
	if _, err := Import(src, filepath.Join(t.TempDir(), "j"), ImportOptions{}); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("no topic: %v", err)
	}
	var ids [][]byte
	for range 2 {
		dir := filepath.Join(t.TempDir(), "j")
		rep, err := Import(src, dir, ImportOptions{Topic: "old"})
		if err != nil || rep.Imported != 2 {
			t.Fatalf("%+v, %v", rep, err)
		}
		recs := journalRecords(t, dir)
		if recs[0].Topic != "old" || string(lastHeader(recs[0].Headers, HeaderID)) != string(seq16(0)) {
			t.Errorf("first record: %+v", recs[0])
		}
		id := lastHeader(recs[1].Headers, HeaderID)
		if len(id) != 16 || id[6]>>4 != 8 || string(lastHeader(recs[1].Headers, HeaderFormat)) != "blob" {
			t.Errorf("second record: headers %v", recs[1].Headers)
		}
		ids = append(ids, id)
	}
	if string(ids[0]) != string(ids[1]) {
		t.Errorf("derived ids differ: %x, %x", ids[0], ids[1])
	}
}

func seq16(from byte) []byte {
	b := make([]byte, 16)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

// TestImportDamaged: a damaged hop journal is refused with its offset and
// nothing is appended; with Salvage what is readable is imported.
func TestImportDamaged(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "v2.journal"))
	if err != nil {
		t.Fatal(err)
	}
	starts := recordStarts(t, b)
	b[starts[0]+30] ^= 1 // the first message (confirmed later) is damaged
	src := writeTemp(t, b)
	dir := filepath.Join(t.TempDir(), "j")
	_, err = Import(src, dir, ImportOptions{})
	var je *JournalError
	if !errors.As(err, &je) || je.Offset != 0 || !strings.Contains(err.Error(), "body CRC mismatch") {
		t.Fatalf("damaged: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused import created %s: %v", dir, err)
	}
	rep, err := Import(src, dir, ImportOptions{Salvage: true})
	if err != nil || rep.Imported != 2 || len(rep.Journal.Damage) != 2 {
		t.Fatalf("salvage: %+v, %v", rep, err) // the damaged record, and the sent record naming it
	}
}

// TestImportThenProduce: a producer on the walpub journal sends what was
// imported, with the original _ids.
func TestImportThenProduce(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "alerts"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := filepath.Join(t.TempDir(), "j")
	if _, err := Import(filepath.Join("testdata", "v2.journal"), dir, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := kafka.NewProducer("kafka://"+strings.Join(c.ListenAddrs(), ",")+"/alerts", kafka.WithJournal(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("alerts"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	want := loadPending(t, "v2")
	var got []string
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(got), len(want))
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, asMessage(r, want[len(got)].Seq)) })
	}
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, describeHop(w))
	}
	if !slices.Equal(got, wantS) {
		t.Errorf("topic holds\n%s\nwant\n%s", got, wantS)
	}
}
