package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/internal/vfs"
	"github.com/walpub/walpub/wal/segment"
)

// TestSideFileWorkBounded: the reading of a side file hashes a bounded
// number of bytes beyond its own, whatever its pieces claim: a side file
// of many small pieces, each ending in a frame header that claims to run
// far past it (read as if zeros followed: frameWithZeros), or each with
// damage and then such a candidate frame (the search after damage, which
// checks it as if zeros followed too), is read within one bound over the
// whole file, not one bound a piece. Every piece is still reported.
func TestSideFileWorkBounded(t *testing.T) {
	// frameHeader is a frame header claiming stored payload bytes, with a
	// checksum that does not match.
	frameHeader := func(stored int) []byte {
		h := make([]byte, segment.FrameHeaderSize)
		h[0] = 1
		binary.LittleEndian.PutUint32(h[8:], uint32(stored))
		binary.LittleEndian.PutUint32(h[12:], segment.FlagSumPayload)
		binary.LittleEndian.PutUint64(h[16:], 1)
		binary.LittleEndian.PutUint32(h[24:], uint32(stored))
		return h
	}
	for _, tc := range []struct {
		name   string
		pieces int
		piece  []byte // the bytes of each piece
		claim  int    // the bytes of the frame it claims
		// hashed tells a piece whose claimed frame was hashed from its
		// report.
		hashed string
	}{
		// Each piece: a frame header claiming 64 MiB less a page.
		{"cut-short-frame", 200, frameHeader(maxZeroTailFrame - 4096), maxZeroTailFrame - 4096, "checksum mismatch"},
		// Each piece: a damaged frame of 8 bytes, then a candidate
		// claiming 1 MiB less a page (within the bound a Resync of one
		// piece had).
		{"search-after-damage", 400, append(append(frameHeader(8), make([]byte, 8)...), frameHeader(1<<20-4096)...), 1<<20 - 4096,
			"skipped to the end of the data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var side []byte
			pieces := tc.pieces
			for i := range pieces {
				side = fmt.Appendf(side, "walpub-repair %s %d %d\n", segment.Name(1), 64+8*i, len(tc.piece))
				side = append(side, tc.piece...)
			}
			path := filepath.Join(t.TempDir(), "repair-x.cut")
			if err := os.WriteFile(path, side, 0o600); err != nil {
				t.Fatal(err)
			}
			damage, hashed := 0, 0
			for _, err := range sideRecords(vfs.OS, path, nil) {
				if err == nil {
					t.Fatal("a record from a side file of damaged frames")
				}
				damage++
				if strings.Contains(err.Error(), tc.hashed) {
					hashed++
				}
			}
			if damage < pieces {
				t.Fatalf("%d damage reports for %d damaged pieces", damage, pieces)
			}
			// Before the bound was shared, every piece's frame was hashed
			// (64 MiB each; 1 MiB each for the search, its bound a piece).
			if most := int(sideWork(len(side))/int64(tc.claim)) + 1; hashed > most {
				t.Fatalf("%d of %d pieces had their claimed frame hashed (a side file of %d bytes), want at most %d", hashed, pieces, len(side), most)
			}
		})
	}
}
