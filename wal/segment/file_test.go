package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
)

func TestFileCreateOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "1.seg")
	f, err := Create(vfs.OS, path, 1<<16, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 1<<16 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v, %v", fi, err)
	}
	if !AllZero(f.Bytes()) || f.Size() != 1<<16 {
		t.Fatal("a new segment is not all zeros")
	}
	f.Init(Header{ID: 1, FirstSeq: 5})
	if f.Header.Size != 1<<16 {
		t.Fatalf("Init set size %d", f.Header.Size)
	}
	n := PutFrame(f.Bytes()[HeaderSize:], 5, 0, 3, []byte("abc"))
	if err := f.WriteAt(frameBuf(6, 0, 3, []byte("def"), 0)[HeaderSize:], HeaderSize+int64(n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(f.Bytes())
	f.Populate(0, f.Size())
	f.PopulateWrite(0, f.Size())
	f.Release(0, f.Size())
	want := bytes.Clone(f.Bytes())
	if !bytes.Equal(want, before) {
		t.Fatal("pre-faulting the pages changed the data")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	for _, writable := range []bool{false, true} {
		g, err := Open(vfs.OS, path, writable)
		if err != nil {
			t.Fatal(err)
		}
		if g.Header != (Header{Version: Version, ID: 1, FirstSeq: 5, Size: 1 << 16}) || !bytes.Equal(g.Bytes(), want) {
			t.Fatalf("reopened segment differs: %+v", g.Header)
		}
		fr, err := DecodeFrame(g.Bytes(), HeaderSize+int64(n))
		if err != nil || string(fr.Payload) != "def" {
			t.Fatalf("frame written with WriteAt: %v", err)
		}
		g.Close()
	}

	// Create never overwrites, and leaves nothing behind when it fails.
	if _, err := Create(vfs.OS, path, 1<<16, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing file: %v", err)
	}
	for _, size := range []int64{0, HeaderSize - 1, MaxSize + 1} {
		p := filepath.Join(dir, "bad.seg")
		if _, err := Create(vfs.OS, p, size, 0o600); err == nil {
			t.Fatalf("Create of %d bytes succeeded", size)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed Create left %s", p)
		}
	}
	fsys := &vfs.Faulty{FS: vfs.OS}
	fsys.FailNextAllocates(1)
	p := filepath.Join(dir, "full.seg")
	if _, err := Create(fsys, p, 1<<16, 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Create with a failing allocation: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed Create left its file")
	}
}

func TestFileOpenRejects(t *testing.T) {
	dir := t.TempDir()
	good := make([]byte, 1<<16)
	PutHeader(good, Header{ID: 2, FirstSeq: 9, Size: 1 << 16})
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := Open(vfs.OS, filepath.Join(dir, "missing"), false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	var se *Error
	if f, err := Open(vfs.OS, write("tiny", good[:10]), false); !errors.As(err, &se) || f != nil {
		t.Errorf("file shorter than a header: %v", err)
	}
	if f, err := Open(vfs.OS, write("zero", make([]byte, 1<<16)), false); !errors.As(err, &se) || f != nil {
		t.Errorf("zero header: %v", err)
	}
	// A file whose size is not its header's is returned, mapped, with the
	// error, for repair.
	for _, n := range []int{1 << 15, 1<<16 + 8} {
		b := make([]byte, n)
		copy(b, good[:HeaderSize])
		f, err := Open(vfs.OS, write("short", b), false)
		if !errors.As(err, &se) || f == nil {
			t.Fatalf("%d-byte file with a 64 KiB header: %v, %v", n, f, err)
		}
		if f.Size() != int64(n) || f.Header.Size != 1<<16 {
			t.Errorf("returned file: size %d header %+v", f.Size(), f.Header)
		}
		f.Close()
	}
}
