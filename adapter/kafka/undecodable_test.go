package kafka

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/wal"
)

// TestUndecodableJournalRecordReported journals a record the producer
// cannot decode: moved to the dead-letter log, it is reported to
// WithOnDeadLetter, once, as every dead letter is, after its
// acknowledgement is journaled.
func TestUndecodableJournalRecordReported(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	bad := append(EncodeRecord(&kgo.Record{Topic: "t", Value: []byte("bad")}), 0)
	dir := journalOf(t, EncodeRecord(&kgo.Record{Topic: "t", Value: []byte("before")}), bad)
	var mu sync.Mutex
	var reported [][]byte
	var unacked int
	var p *Producer
	started := make(chan struct{}) // p is set
	p, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir), WithOnDeadLetter(func(r *kgo.Record, err error) {
		<-started
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, r.Value)
		if _, err := p.journal.Get(2); err == nil {
			unacked++
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	close(started)
	ctx := ctxTimeout(t, 30*time.Second)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("stats %+v, OnDeadLetter called %d times", st, len(reported))
	if st.DeadLettered != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v, want 1 delivered and 1 dead letter", st)
	}
	if len(reported) != 1 || string(reported[0]) != string(bad) {
		t.Fatalf("OnDeadLetter called %d times (%q), want once with the undecodable record's bytes", len(reported), reported)
	}
	if unacked != 0 {
		t.Fatal("OnDeadLetter ran before the undecodable record's acknowledgement was journaled")
	}
}

// journalOf returns a journal directory holding the records recs, as
// journaled by an earlier producer that sent none of them.
func journalOf(t *testing.T, recs ...[]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "journal")
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range recs {
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
