package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestEncryptedJournal runs the producer with WithWAL(wal.WithEncryption):
// records written while the broker is down are journaled encrypted (no
// value is in any journal file in plain text, every record on disk is
// encrypted), the journal refuses to open without the key (wal.ErrKey,
// from NewProducer too), and a producer with the key on a live broker
// resends them all.
func TestEncryptedJournal(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	dir := filepath.Join(t.TempDir(), "journal")
	const n = 50
	value := func(i int) string { return fmt.Sprintf("confidential-%04d", i) }

	dead := fmt.Sprintf("kafka://127.0.0.1:%d/t", testutil.DeadPort(t))
	p, err := NewProducer(dead, WithJournal(dir), WithWAL(wal.WithEncryption(key)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	for i := range n {
		if err := p.Write(ctx, &kgo.Record{Value: []byte(value(i))}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_ = p.Close(short) // the broker is down: the records stay journaled

	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte("confidential-")) {
			return fmt.Errorf("%s holds a record in plain text", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := wal.OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	in := v.Info()
	v.Close()
	if !in.Encrypted || in.Pending != n || in.EncryptedRecords != in.Records {
		t.Fatalf("journal: encrypted %v, %d pending, %d of %d records encrypted", in.Encrypted, in.Pending, in.EncryptedRecords, in.Records)
	}
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	url := kfaketest.URL(c, "t")
	if p, err := NewProducer(url, WithJournal(dir)); !errors.Is(err, wal.ErrKey) {
		if err == nil {
			p.Close(ctx)
		}
		t.Fatalf("NewProducer without the key: %v, want wal.ErrKey", err)
	}
	p, err = NewProducer(url, append(fastRetries(), WithJournal(dir), WithWAL(wal.WithEncryption(key)))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, rs := range readTopic(t, c.ListenAddrs(), "t") {
		for _, r := range rs {
			got[string(r.Value)] = true
		}
	}
	for i := range n {
		if !got[value(i)] {
			t.Fatalf("record %q was not delivered (%d distinct values delivered)", value(i), len(got))
		}
	}
}
