package kafka

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
)

// TestJournalReadDamage: a record damaged in the journal while it waits
// there for the broker, read back with its neighbours in one call
// (readJournal), is neither sent nor skipped: the records before it are
// delivered once each, in order; the sender reports the damage, naming the
// record's seq, and tries again, and nothing after the record overtakes it.
func TestJournalReadDamage(t *testing.T) {
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	release := holdProduces(c)
	var logs testutil.SyncBuffer
	const window, n, bad = 40, 400, 300
	var reads atomic.Int64
	p, dir := newTestProducer(t, kfaketest.URL(c, "t"), WithMaxInFlight(window, 1<<20),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		withJournalRead(func(uint64) { reads.Add(1) }))
	ctx := ctxTimeout(t, 60*time.Second)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		// Incompressible after the index, so that the journal stores
		// the value as it is.
		v := fmt.Appendf(nil, "v%08d", i)
		for range 200 {
			v = append(v, byte(r.Uint32()))
		}
		if err := p.Write(ctx, &kgo.Record{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	damageValue(t, dir, fmt.Appendf(nil, "v%08d", bad))
	close(release)

	// The records before the damaged one land; the damage is reported,
	// and reported again after a retry, while nothing more lands.
	for {
		if ctx.Err() != nil {
			t.Fatalf("delivered %d of the %d records before the damaged one; log:\n%s", p.Stats().Delivered, bad, logs.String())
		}
		if p.Stats().Delivered >= bad && strings.Count(logs.String(), "reading the journal, will retry") >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := p.Stats().Delivered; d != bad {
		t.Fatalf("delivered %d records, want the %d before the damaged one", d, bad)
	}
	seq := uint64(bad + 1) // the first Write's record is seq 1
	if msg := logs.String(); !strings.Contains(msg, fmt.Sprintf("seq=%d ", seq)) || !strings.Contains(msg, "corrupt") {
		t.Fatalf("the sender's report does not name seq %d and the damage:\n%s", seq, msg)
	}
	// Every record after the first window was read back from the journal.
	if got := reads.Load(); got < bad-window-int64(p.hand.maxN) {
		t.Fatalf("%d records read back from the journal, want at least %d", got, bad-window-p.hand.maxN)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_ = p.Close(short) // the damaged record and those after it stay journaled

	parts := readTopic(t, c.ListenAddrs(), "t")
	var got []int
	for _, recs := range parts {
		for _, rec := range recs {
			got = append(got, recordIndex(t, rec))
		}
	}
	if len(got) != bad {
		t.Fatalf("%d records on the topic, want %d", len(got), bad)
	}
	for i, x := range got {
		if x != i {
			t.Fatalf("record %d on the topic is record %d of those written", i, x)
		}
	}
}

// damageValue flips a byte of the journal's copy of the value that begins
// with prefix, past the prefix, in the segment file that holds it.
func damageValue(t *testing.T, dir string, prefix []byte) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range segs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, prefix)
		if i < 0 {
			continue
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(i + len(prefix) + 10)
		if _, err := f.WriteAt([]byte{b[off] ^ 0x40}, off); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no segment file in %s holds %q", dir, prefix)
}
