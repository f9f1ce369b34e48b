package segment

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal/internal/vfs"
)

func vmFlags(t *testing.T, path string) []string {
	t.Helper()
	flags := testutil.VmFlags(t, path)
	if flags == nil {
		t.Fatalf("no mapping of %s in /proc/self/smaps", path)
	}
	return flags
}

// TestSmallPages: SmallPages(true) advises the kernel that the mapping is
// read at random (VmFlags "rr": no read-around, so pages come into the
// page cache one at a time), SmallPages(false) takes it back, and neither
// changes the data.
func TestSmallPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "1.seg")
	f, err := Create(vfs.OS, path, 1<<20, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Init(Header{ID: 1, FirstSeq: 1})
	PutFrame(f.Bytes()[HeaderSize:], 1, 0, 3, []byte("abc"))
	if slices.Contains(vmFlags(t, path), "rr") {
		t.Fatal("a new segment's mapping is advised random before SmallPages")
	}
	f.SmallPages(true)
	f.Populate(0, f.Size())
	if !slices.Contains(vmFlags(t, path), "rr") {
		t.Fatalf("after SmallPages(true) the mapping's flags are %v, want rr among them", vmFlags(t, path))
	}
	f.SmallPages(false)
	if slices.Contains(vmFlags(t, path), "rr") {
		t.Fatalf("after SmallPages(false) the mapping's flags are %v, want no rr", vmFlags(t, path))
	}
	if fr, err := DecodeFrame(f.Bytes(), HeaderSize); err != nil || string(fr.Payload) != "abc" {
		t.Fatalf("the frame after SmallPages: %v", err)
	}
}
