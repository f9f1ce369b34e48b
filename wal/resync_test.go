package wal

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/walpub/walpub/wal/segment"
)

// within runs f and fails the test if it has not returned after a bound
// generous enough for a loaded machine (the work is linear in the bytes on
// disk; the bug this guards against made it quadratic: hours).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s did not finish in 3 minutes", what)
	}
}

// TestDamageNearStartOfLargeSegment: Open, Verify, Salvage and Repair of a
// 64 MiB segment damaged near its start (below the durable high-water
// mark) finish promptly whatever the damage: the search for the next valid
// frame after it (Salvage's) does not hash every candidate offset's
// claimed frame. The damage: random bytes, zeros over a long record's
// header, a length claiming most of the segment, and a long record whose
// payload is frame headers that pass every check but the checksum, each
// claiming 16 MiB (crafted: the search gives up on them, and Salvage
// reports the rest of the file unread).
func TestDamageNearStartOfLargeSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB segments")
	}
	r := rand.New(rand.NewPCG(40, 40))
	noise := make([]byte, 48<<20)
	rand.NewChaCha8([32]byte{40}).Read(noise)
	// Records of random bytes.
	fill := func(t *testing.T, l *Log) {
		for i := range 4 << 10 {
			if _, err := l.Append(noise[i*3000 : i*3000+4000]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A long record of random bytes near the start, then short ones.
	long := func(t *testing.T, l *Log) {
		if _, err := l.Append([]byte("first")); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(noise); err != nil {
			t.Fatal(err)
		}
		for i := range 2 << 10 {
			if _, err := l.Append(noise[i*1000 : i*1000+4000]); err != nil {
				t.Fatal(err)
			}
		}
	}
	second := segment.HeaderSize + segment.FrameSize(len("first"))
	crafted := func(t *testing.T, l *Log) {
		if _, err := l.Append([]byte("first")); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 24<<20)
		for off := 0; off+segment.FrameHeaderSize <= len(p); off += segment.FrameHeaderSize {
			h := p[off:]
			binary.LittleEndian.PutUint64(h[0:], r.Uint64()) // a checksum that fails
			binary.LittleEndian.PutUint32(h[8:], 16<<20)     // stored length
			binary.LittleEndian.PutUint64(h[16:], 2)         // seq
			binary.LittleEndian.PutUint32(h[24:], 16<<20)    // raw length
		}
		if _, err := l.Append(p); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append([]byte("last")); err != nil {
			t.Fatal(err)
		}
	}
	const at = segment.HeaderSize + 1000 // inside the first frame or two
	cases := []struct {
		name   string
		build  func(*testing.T, *Log)
		damage func(b []byte)
		// salvaged: Salvage reads records after the damage.
		salvaged bool
	}{
		{"random-bytes", fill, func(b []byte) {
			for i := at; i < at+4096; i++ {
				b[i] = byte(r.Uint32())
			}
		}, true},
		// The search then walks the long record's 48 MiB, every offset
		// a candidate.
		{"random-bytes-over-a-long-record", long, func(b []byte) {
			for i := second; i < second+64; i++ {
				b[i] = byte(r.Uint32())
			}
		}, true},
		{"zeros-over-a-long-record", long, func(b []byte) { clear(b[second : second+64]) }, true},
		{"long-length", fill, func(b []byte) {
			binary.LittleEndian.PutUint32(b[segment.HeaderSize+8:], 60<<20)
		}, true},
		{"crafted-headers", crafted, func(b []byte) {
			// The checksum of the long record, the second frame.
			b[second] ^= 1
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir)
			c.build(t, l)
			want := l.Stats().NextSeq - 1
			mustClose(t, l)
			segs := segFiles(t, dir)
			if len(segs) != 1 {
				t.Fatalf("%d segments, want 1", len(segs))
			}
			b, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			c.damage(b)
			if err := os.WriteFile(segs[0], b, 0o600); err != nil {
				t.Fatal(err)
			}

			var oerr, verr error
			within(t, "Open", func() {
				var l *Log
				if l, oerr = Open(dir); oerr == nil {
					l.Close()
				}
			})
			ce := asCorruption(t, oerr, dir)
			t.Logf("Open: %v", ce)
			within(t, "Verify", func() { verr = Verify(dir) })
			asCorruption(t, verr, dir)
			var records, damage int
			within(t, "Salvage", func() {
				for _, err := range Salvage(dir) {
					if err != nil {
						damage++
						continue
					}
					records++
				}
			})
			t.Logf("Salvage: %d of %d records, %d damage reports", records, want, damage)
			if damage == 0 {
				t.Errorf("Salvage reported no damage")
			}
			if c.salvaged && records < int(want)*9/10 {
				t.Errorf("Salvage read %d of %d records, want those after the damage too", records, want)
			}
			var rep RepairReport
			within(t, "Repair", func() { rep, err = Repair(dir) })
			if err != nil || rep.Moved == 0 {
				t.Fatalf("Repair: %+v, %v", rep, err)
			}
			l = mustOpen(t, dir)
			mustClose(t, l)
		})
	}
}
