package kafka

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestWriteSyncFailureKeepsSending: a Write whose journal append took a
// seq but whose sync failed (wal.SyncAlways, the superblock write finding
// the disk full, which the journal does not make sticky) returns the error,
// yet the record is journaled: the sender must send it and every later
// one, not stop at the seq no Write published. Needs root (a small tmpfs
// filled on purpose).
func TestWriteSyncFailureKeepsSending(t *testing.T) {
	c := kfaketest.New(t, kfake.SeedTopics(1, "t"))
	mnt := testutil.MountTmpfs(t, "4m")
	filler := filepath.Join(mnt, "filler")
	dir := filepath.Join(mnt, "journal")
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	var p *Producer
	for fill := free - (1 << 20); fill < free; fill += 4096 {
		os.RemoveAll(dir)
		if err := os.WriteFile(filler, make([]byte, fill), 0o600); err != nil {
			break
		}
		q, err := NewProducer(kfaketest.URL(c, "t"), WithJournal(dir),
			WithWAL(wal.WithSegmentSize(256<<10), wal.WithSync(wal.SyncAlways)))
		if err != nil {
			break
		}
		var sb syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, "superblock"), &sb); err == nil && sb.Blocks == 0 {
			p = q
			t.Logf("filler %d of %d free: superblock unreserved", fill, free)
			break
		}
		q.Close(context.Background())
		p = nil
	}
	if p == nil {
		t.Skip("could not leave the superblock unreserved")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer p.Close(ctx)
	err := p.Write(ctx, &kgo.Record{Value: []byte("first")})
	t.Logf("Write on a full disk: %v", err)
	if err == nil {
		t.Skip("the superblock write did not fail")
	}
	if !errors.Is(err, ErrNotSynced) {
		t.Errorf("Write whose record was journaled, its sync failed: %v, want ErrNotSynced", err)
	}
	os.Remove(filler) // space returns
	if err := p.Write(ctx, &kgo.Record{Value: []byte("second")}); err != nil {
		t.Fatalf("Write after space returned: %v", err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatalf("Flush after space returned: %v; Stats %+v; published %d written %d resolved %d",
			err, p.Stats(), p.published.Load(), p.written.Load(), p.resolved.Load())
	}
}
