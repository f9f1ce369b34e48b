package vfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteVAt: more buffers than one pwritev takes, empty ones among
// them, land at the offset as their concatenation; WriteAt's bytes before
// the offset are left alone.
func TestWriteVAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OS.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	var bufs [][]byte
	var want []byte
	for i := range 3000 {
		b := bytes.Repeat([]byte{byte(i)}, i%5*7) // every fifth is empty
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	n, err := f.WriteVAt(bufs, 4)
	if err != nil || n != len(want) {
		t.Fatalf("WriteVAt: %d, %v; want %d bytes", n, err, len(want))
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("head"), want...)) {
		t.Fatalf("the file holds %d bytes that differ from the %d written", len(got), 4+len(want))
	}
	if n, err := f.WriteVAt([][]byte{nil, {}}, 0); n != 0 || err != nil {
		t.Fatalf("WriteVAt of empty buffers: %d, %v", n, err)
	}
}
