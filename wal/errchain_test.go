package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// TestCorruptionErrorUnwrapsCause: the decoder's error behind a
// *CorruptionError is its cause (Err, Unwrap), reachable with errors.As,
// while the message keeps stating the reason.
func TestCorruptionErrorUnwrapsCause(t *testing.T) {
	closedLog := func(t *testing.T) string {
		dir := t.TempDir()
		l := mustOpen(t, dir, WithSegmentSize(smallSeg))
		for range 20 {
			if _, err := l.Append([]byte("a record of some bytes")); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, l)
		return dir
	}

	t.Run("frame", func(t *testing.T) {
		dir := closedLog(t)
		path := segFiles(t, dir)[0]
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fr := framesOf(t, b)[3]
		b[fr.Offset+segment.FrameHeaderSize] ^= 0xff // a payload byte: the checksum fails
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Open(dir)
		ce := asCorruption(t, err, dir)
		var se *segment.Error
		if !errors.As(err, &se) {
			t.Fatalf("Open: %v: the *segment.Error cause is not reachable with errors.As", err)
		}
		if ce.Err == nil || errors.Unwrap(ce) != ce.Err {
			t.Fatalf("Err %v, Unwrap %v", ce.Err, errors.Unwrap(ce))
		}
		if ce.Path != path || ce.Offset != fr.Offset || se.Offset != fr.Offset {
			t.Fatalf("damage at %s:%d named %s:%d, cause at %d", path, fr.Offset, ce.Path, ce.Offset, se.Offset)
		}
		if !strings.Contains(ce.Error(), se.Reason) || !strings.Contains(se.Reason, "checksum") {
			t.Fatalf("message %q does not state the cause's reason %q", ce.Error(), se.Reason)
		}
	})

	t.Run("superblock", func(t *testing.T) {
		dir := closedLog(t)
		path := filepath.Join(dir, index.SuperblockName)
		junk := []byte(strings.Repeat("\xa5", index.SuperblockSize))
		if err := os.WriteFile(path, junk, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir)
		ce := asCorruption(t, err, dir)
		var fe *index.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("Open: %v: the *index.FormatError cause is not reachable with errors.As", err)
		}
		if ce.Path != path || ce.Offset != fe.Offset || !strings.Contains(ce.Error(), fe.Reason) {
			t.Fatalf("CorruptionError %+v does not match its cause %+v", ce, fe)
		}
	})
}
