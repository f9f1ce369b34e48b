package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
)

// TestLogNamesMustBeRegularFiles: a directory or a symbolic link where the
// log keeps a file (a segment, the superblock, the checkpoint, the
// encryption file) is refused by Open with a *CorruptionError naming it
// at offset 0. A symbolic link is refused even to a good copy of the
// file: the log's renames and directory syncs would not cover its target
// (a checkpoint rewritten replaces the link; a segment's name made
// durable says nothing of the target's). Before, a linked or directory
// segment was left out of the log without a word (its records with it),
// and a directory in a metadata file's place was a plain read error.
func TestLogNamesMustBeRegularFiles(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	orig := filepath.Join(t.TempDir(), "orig")
	l := mustOpen(t, orig, WithSegmentSize(smallSeg), WithEncryption(key))
	for range 80 {
		if _, err := l.Append(make([]byte, 2000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Ack(1); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	segs := segFiles(t, orig)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want 3 or more", len(segs))
	}
	names := []string{filepath.Base(segs[len(segs)-1]), filepath.Base(segs[1]),
		index.SuperblockName, index.CheckpointName, index.EncryptionName}
	for _, name := range names {
		for _, kind := range []string{"directory", "symlink"} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				base := t.TempDir()
				dir := copyDir(t, orig, filepath.Join(base, "log"))
				path := filepath.Join(dir, name)
				if _, err := os.Stat(path); err != nil {
					t.Fatal(err)
				}
				switch kind {
				case "directory":
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
					if err := os.Mkdir(path, 0o700); err != nil {
						t.Fatal(err)
					}
				case "symlink":
					// The link's target is the file itself, moved out.
					target := filepath.Join(base, "target")
					if err := os.Rename(path, target); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(target, path); err != nil {
						t.Fatal(err)
					}
				}
				l, err := Open(dir, WithSegmentSize(smallSeg), WithEncryption(key))
				if err == nil {
					st := l.Stats()
					l.Close()
					t.Fatalf("Open accepted a %s as %s (%d pending, next seq %d)", kind, name, st.Pending, st.NextSeq)
				}
				ce := asCorruption(t, err, dir)
				word := map[string]string{"directory": "a directory", "symlink": "a symbolic link"}[kind]
				if ce.Path != path || ce.Offset != 0 || !strings.Contains(ce.Reason, word) {
					t.Fatalf("got %v, want a *CorruptionError naming %s at offset 0 as %s", err, path, word)
				}
				// What Repair does, as a tool tells it beforehand.
				if ce.Fix() != FixByHand {
					t.Fatalf("Fix() = %v, want %v", ce.Fix(), FixByHand)
				}
				// Repair refuses too, and changes nothing: it is not
				// damage it can cut away.
				before := readDir(t, dir).data()
				if _, err := Repair(dir); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Repair: %v, want the *CorruptionError", err)
				}
				if after := readDir(t, dir).data(); !after.equal(before) {
					t.Fatalf("Repair changed the directory: %v -> %v", before.names(), after.names())
				}
				if fi, err := os.Lstat(path); err != nil || fi.Mode().IsRegular() {
					t.Fatalf("%s changed: %v, %v", path, fi, err)
				}
			})
		}
	}
}
