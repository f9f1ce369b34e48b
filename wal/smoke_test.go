package wal

import (
	"bytes"
	"fmt"
	"testing"
)

func TestSmokeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, comp := range []Compression{CompressionNone, CompressionZstd} {
		dir := fmt.Sprintf("%s/%d", dir, comp)
		l, err := Open(dir, WithSegmentSize(64<<10), WithCompression(comp))
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		for i := range 3000 {
			d := bytes.Repeat([]byte(fmt.Sprintf("rec-%d-", i)), i%50+1)
			seq, err := l.Append(d)
			if err != nil || seq != uint64(i+1) {
				t.Fatalf("append %d: seq %d err %v", i, seq, err)
			}
			want = append(want, d)
		}
		if _, err := l.AppendBatch([][]byte{[]byte("a"), []byte("b")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, []byte("a"), []byte("b"))
		for i := 1; i <= 2000; i++ {
			if err := l.Ack(uint64(i)); err != nil {
				t.Fatal(err)
			}
		}
		st := l.Stats()
		t.Logf("stats before close: %+v", st)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, WithSegmentSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for r, err := range l.Pending() {
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.Data, want[r.Seq-1]) || r.Seq <= 2000 {
				t.Fatalf("seq %d: got %q", r.Seq, r.Data)
			}
			n++
		}
		if n != len(want)-2000 {
			t.Fatalf("pending %d, want %d", n, len(want)-2000)
		}
		if g, err := l.Get(2500); err != nil || !bytes.Equal(g, want[2499]) {
			t.Fatalf("get: %v", err)
		}
		if _, err := l.Get(5); err != ErrNotFound {
			t.Fatalf("get acked: %v", err)
		}
		t.Logf("stats after reopen: %+v", l.Stats())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
