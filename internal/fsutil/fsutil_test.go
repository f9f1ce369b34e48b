package fsutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMkdirAllSynced: the directory holding each directory made is
// synced, and none other (an existing one's parent needs no sync).
func TestMkdirAllSynced(t *testing.T) {
	root := t.TempDir()
	var synced []string
	sync := func(d string) error {
		synced = append(synced, d)
		return SyncDir(d)
	}
	dir := filepath.Join(root, "a", "b", "c")
	if err := MkdirAllSynced(dir, 0o700, os.MkdirAll, sync); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s not made: %v", dir, err)
	}
	want := []string{filepath.Join(root, "a", "b"), filepath.Join(root, "a"), root}
	if !slices.Equal(synced, want) {
		t.Fatalf("synced %v, want %v", synced, want)
	}
	synced = nil
	if err := MkdirAllSynced(dir, 0o700, os.MkdirAll, sync); err != nil || len(synced) != 0 {
		t.Fatalf("an existing directory: %v, synced %v", err, synced)
	}
}
