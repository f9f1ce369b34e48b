package kafka

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/wal"
)

// TestRequeuePartialFailureNoDuplicates: a RequeueDeadLetters that stops
// part-way (here at the journal's wal.WithMaxBytes bound, an option the doc
// says to pass) must still take out of the dead-letter log the records it
// moved, so that the next RequeueDeadLetters does not append them to the
// journal again.
func TestRequeuePartialFailureNoDuplicates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	dl, err := wal.Open(filepath.Join(dir, DeadLetterDir), deadLetterOptions(nil, 0)...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := &kgo.Record{Topic: "t", Value: bytes.Repeat([]byte{byte('a' + i)}, 1000),
			Headers: []kgo.RecordHeader{{Key: idHeader, Value: bytes.Repeat([]byte{byte(i)}, idLen)}}}
		if _, err := dl.Append(EncodeDeadLetter(r, "too large")); err != nil {
			t.Fatal(err)
		}
	}
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}

	// The journal's bound has room for two of the three.
	rep, err := RequeueDeadLetters(dir, wal.WithMaxBytes(2500))
	if !errors.Is(err, wal.ErrFull) || rep.Moved != 2 {
		t.Fatalf("first requeue: %+v, %v; want 2 moved and wal.ErrFull", rep, err)
	}
	// Retry once there is room (say, after raising the bound).
	rep, err = RequeueDeadLetters(dir)
	if err != nil || rep.Moved != 1 {
		t.Fatalf("second requeue: %+v, %v; want the third moved", rep, err)
	}

	j, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ids := map[string]int{}
	for rec, err := range j.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRecord(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := func() ([]byte, bool) {
			for _, h := range r.Headers {
				if h.Key == idHeader {
					return h.Value, true
				}
			}
			return nil, false
		}()
		ids[string(id)]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("dead letter _id %x is in the journal %d times", id, n)
		}
	}
	t.Logf("journal holds %d distinct dead letters", len(ids))
	// Each of the three is there (none dropped from the dead-letter log
	// without reaching the journal), and the dead-letter log is empty.
	for i := range 3 {
		if ids[string(bytes.Repeat([]byte{byte(i)}, idLen))] == 0 {
			t.Errorf("dead letter %d is neither in the journal nor kept in the dead-letter log", i)
		}
	}
	dl, err = wal.Open(filepath.Join(dir, DeadLetterDir), deadLetterOptions(nil, 0)...)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if n := dl.Stats().Pending; n != 0 {
		t.Errorf("%d records left in the dead-letter log, want 0", n)
	}
}
