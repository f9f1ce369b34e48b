package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// sidePiece is one piece of a Repair side file: bytes cut from a file at an
// offset.
type sidePiece struct {
	file string
	off  int64
	data []byte
}

// readSideFile parses a side file: pieces, each a line
// "walpub-repair <file> <offset> <length>\n" and that many bytes.
func readSideFile(t testing.TB, path string) []sidePiece {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("side file: %v", err)
	}
	var ps []sidePiece
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return ps
		}
		if err != nil {
			t.Fatalf("side file %s: piece header: %v", path, err)
		}
		var p sidePiece
		var n int64
		if _, err := fmt.Sscanf(line, "walpub-repair %s %d %d\n", &p.file, &p.off, &n); err != nil {
			t.Fatalf("side file %s: piece header %q: %v", path, line, err)
		}
		p.data = make([]byte, n)
		if _, err := io.ReadFull(br, p.data); err != nil {
			t.Fatalf("side file %s: piece of %d bytes: %v", path, n, err)
		}
		ps = append(ps, p)
	}
}

// TestRepair damages a log in each way TestCorruption does, plus a flipped
// byte in a pending record, and repairs it: the log opens again with every
// record before the damage, new appends continue after the last record
// kept, and every byte Repair took out of the log is in the side file it
// names: putting the pieces back gives the damaged log exactly.
func TestRepair(t *testing.T) {
	closed, _ := damageImages(t)
	cases := append(damageCases(), damageCase{"flipped-byte-in-pending-record", false,
		func(t testing.TB, s snapshot) (string, int64, uint64) {
			name := s.segNames()[1]
			frs := framesOf(t, s[name])
			fr := frs[len(frs)/2]
			s[name][fr.Offset+segment.FrameHeaderSize+int64(len(fr.Payload))/2] ^= 0x20
			return name, fr.Offset, fr.Seq
		}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := closed.snap.clone()
			gone, _, keepBelow := c.damage(t, s)
			dir := s.write(t, filepath.Join(t.TempDir(), "log"))
			before := readDir(t, dir).data()
			_, oerr := Open(dir, WithSegmentSize(smallSeg))
			ce := asCorruption(t, oerr, dir)

			rep, err := Repair(dir)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			t.Logf("%v\n-> %+v", oerr, rep)
			if rep.SideFile == "" || filepath.Dir(rep.SideFile) != dir {
				t.Fatalf("side file %q is not in %s", rep.SideFile, dir)
			}
			if filepath.Dir(rep.Path) != dir {
				t.Fatalf("report names %q, outside %s", rep.Path, dir)
			}
			if ce.fix == FixCut && (rep.Path != ce.Path || rep.Offset != ce.Offset) {
				t.Errorf("report says it cut %s at %d; the damage is in %s at %d", rep.Path, rep.Offset, ce.Path, ce.Offset)
			}
			pieces := readSideFile(t, rep.SideFile)
			var moved int64
			for _, p := range pieces {
				moved += int64(len(p.data))
				orig, ok := before[p.file]
				if !ok || p.off+int64(len(p.data)) > int64(len(orig)) || !bytes.Equal(orig[p.off:p.off+int64(len(p.data))], p.data) {
					t.Fatalf("side file piece %s@%d+%d is not what the log held there", p.file, p.off, len(p.data))
				}
			}
			if moved != rep.Moved || moved == 0 {
				t.Fatalf("side file holds %d bytes of pieces, report says %d moved", moved, rep.Moved)
			}

			// Nothing was deleted: the log after Repair plus the pieces
			// put back is the log before.
			after := readDir(t, dir).data()
			delete(after, filepath.Base(rep.SideFile))
			for _, p := range pieces {
				b := after[p.file]
				if end := p.off + int64(len(p.data)); int64(len(b)) < end {
					b = append(b, make([]byte, end-int64(len(b)))...)
				}
				copy(b[p.off:], p.data)
				after[p.file] = b
			}
			for name, b := range after {
				orig, ok := before[name]
				if !ok {
					t.Fatalf("Repair left a new file %s", name)
				}
				// A short segment may have been extended with zeros.
				if len(b) < len(orig) || !bytes.Equal(b[:len(orig)], orig) || strings.Trim(string(b[len(orig):]), "\x00") != "" {
					t.Fatalf("%s after Repair with the pieces put back differs from before", name)
				}
			}
			for name := range before {
				if _, ok := after[name]; !ok {
					t.Fatalf("Repair deleted %s without moving it aside", name)
				}
			}

			l := mustOpen(t, dir, WithSegmentSize(smallSeg))
			m := closed.m.without(keepBelow)
			next := keepBelow
			if keepsLater[c.name] {
				// Only the missing segment's records are lost: the
				// checkpoint moved aside, Repair wrote a new one that
				// accepts the gap.
				names := closed.snap.segNames()
				i := slices.Index(names, gone)
				lostTo := firstSeqOf(t, closed.snap[names[i+1]])
				m = closed.m.withoutRange(keepBelow, lostTo)
				next = closed.m.next()
			}
			m.check(t, l)
			q, err := l.Append([]byte("after repair"))
			if err != nil || q != next {
				t.Fatalf("Append after Repair = %d, %v; want %d", q, err, next)
			}
			m.data[q] = []byte("after repair")
			mustClose(t, l)
			l = mustOpen(t, dir, WithSegmentSize(smallSeg))
			m.check(t, l)
			mustClose(t, l)

			// A repaired log needs no more repair.
			if rep, err := Repair(dir); err != nil || rep.Moved != 0 || rep.SideFile != "" {
				t.Fatalf("second Repair: %+v, %v", rep, err)
			}
		})
	}
}

// TestRepairHealthy checks that Repair leaves a sound log (and one with a
// torn tail, which Open cuts itself) as it is, and refuses a log in use.
func TestRepairHealthy(t *testing.T) {
	closed, _ := damageImages(t)
	dir := closed.snap.clone().write(t, filepath.Join(t.TempDir(), "log"))
	before := readDir(t, dir).data()
	rep, err := Repair(dir)
	if err != nil || rep != (RepairReport{}) {
		t.Fatalf("Repair of a sound log: %+v, %v", rep, err)
	}
	if after := readDir(t, dir).data(); !after.equal(before) {
		t.Fatalf("Repair changed a sound log: %v -> %v", before.names(), after.names())
	}
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	defer l.Close()
	if _, err := Repair(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open log: %v, want ErrLocked", err)
	}
	closed.m.check(t, l)
}

// TestRepairLostCheckpointGap: segment 2 held the ack frame of record 1
// (in segment 1) and was reclaimed once all its own records were
// acknowledged. With the checkpoint gone, nothing on disk says record 1
// was acknowledged, nor that segment 2 was reclaimed rather than lost:
// Open reports it, naming the checkpoint, and Repair writes a new
// checkpoint that accepts the gap, keeping every segment after it. Record
// 1 is pending again (at-least-once); nothing pending is lost.
func TestRepairLostCheckpointGap(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, WithSegmentSize(smallSeg))
	m := newModel()
	rec := bytes.Repeat([]byte("x"), 1000)
	appendToSegments(t, l, rec, 2, m)
	if err := l.Ack(1); err != nil { // the ack frame lands in segment 2
		t.Fatal(err)
	}
	m.acked[1] = true
	appendToSegments(t, l, rec, 3, m)
	rg := segRanges(l)[1]
	for q := rg[0]; q < rg[1]; q++ {
		if err := l.Ack(q); err != nil {
			t.Fatal(err)
		}
		m.acked[q] = true
	}
	appendToSegments(t, l, rec, 4, m)
	eventually(t, "segment 2 to be reclaimed", func() bool {
		_, err := os.Stat(filepath.Join(dir, segment.Name(2)))
		return errors.Is(err, os.ErrNotExist)
	})
	mustClose(t, l)
	ckpt := filepath.Join(dir, "checkpoint")
	if err := os.Remove(ckpt); err != nil {
		t.Fatal(err)
	}

	_, err := Open(dir, WithSegmentSize(smallSeg))
	ce := asCorruption(t, err, dir)
	if ce.Path != ckpt || ce.Fix() != FixCheckpoint || !strings.Contains(ce.Reason, "segment 2 is gone") {
		t.Fatalf("Open: %v; want the missing checkpoint named, and segment 2", err)
	}
	rep, err := Repair(dir)
	if err != nil || rep.Path != ckpt || rep.Moved != 0 || rep.SideFile != "" {
		t.Fatalf("Repair: %+v, %v", rep, err)
	}
	delete(m.acked, 1) // its acknowledgement went with the checkpoint
	for range 2 {
		l = mustOpen(t, dir, WithSegmentSize(smallSeg))
		m.check(t, l)
		mustClose(t, l)
	}
}

// TestRepairDamagedMetadata: a damaged superblock or checkpoint is moved
// into the side file whole (one piece: the file from offset 0, every byte
// as it was), the file leaves the log, and the log opens with every
// record and acknowledgement the segments' own frames hold.
func TestRepairDamagedMetadata(t *testing.T) {
	for _, c := range []struct {
		name   string
		size   int // the file must be longer
		damage func(b []byte)
	}{
		// Both slots, so that no valid one is left.
		{index.SuperblockName, index.SuperblockSlot + 3, func(b []byte) { b[3] ^= 1; b[index.SuperblockSlot+3] ^= 1 }},
		{index.CheckpointName, 0, func(b []byte) { b[len(b)/2] ^= 1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, WithSegmentSize(smallSeg))
			m := newModel()
			rec := bytes.Repeat([]byte("y"), 3000)
			for len(segRanges(l)) < 3 {
				q, err := l.Append(rec)
				if err != nil {
					t.Fatal(err)
				}
				m.data[q] = rec
			}
			for _, q := range []uint64{2, 5, 30} { // in segments 1, 1 and 2
				if err := l.Ack(q); err != nil {
					t.Fatal(err)
				}
				m.acked[q] = true
			}
			mustClose(t, l)
			path := filepath.Join(dir, c.name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) <= c.size {
				t.Fatalf("%s is %d bytes, too short to damage", c.name, len(b))
			}
			c.damage(b)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(dir, WithSegmentSize(smallSeg))
			if ce := asCorruption(t, err, dir); ce.Path != path || ce.Fix() != FixMoveAside {
				t.Fatalf("Open: %v; want the damaged %s named, to be moved aside", err, c.name)
			}

			rep, err := Repair(dir)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			pieces := readSideFile(t, rep.SideFile)
			if len(pieces) != 1 || pieces[0].file != c.name || pieces[0].off != 0 || !bytes.Equal(pieces[0].data, b) {
				for _, p := range pieces {
					t.Logf("piece %s@%d+%d", p.file, p.off, len(p.data))
				}
				t.Fatalf("side file: %d pieces; want the damaged %s whole (%d bytes) from offset 0", len(pieces), c.name, len(b))
			}
			if rep.Path != path || rep.Offset != 0 || rep.Moved != int64(len(b)) {
				t.Fatalf("Repair report %+v; want %s from 0, %d bytes moved", rep, path, len(b))
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still in the log after Repair: %v", c.name, err)
			}
			for range 2 {
				l = mustOpen(t, dir, WithSegmentSize(smallSeg))
				m.check(t, l)
				mustClose(t, l)
			}
		})
	}
}
