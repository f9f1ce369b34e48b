package walcat

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// TestRepairCompactedLog: one flipped byte in the newest record of a log
// whose oldest segment was compacted; walcat repair must leave a log that
// opens, keeping the records before the damage.
func TestRepairCompactedLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	var seqs []uint64
	for i := 0; i < 120; i++ {
		seqs = append(seqs, mustAppend(t, l, bytes.Repeat([]byte(fmt.Sprintf("record %03d ", i)), 300)))
	}
	var ack []uint64
	for _, s := range seqs[:100] {
		if s%7 != 0 { // every 7th stays pending: its segment is compacted, not deleted
			ack = append(ack, s)
		}
	}
	if err := l.Ack(ack...); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		mustAppend(t, l, []byte("more"))
	}
	victim := seqs[119] // in the active segment
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := wal.OpenView(dir)
		if err == nil {
			in := v.Info()
			v.Close()
			if in.Segments[0].Compacted {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no segment was compacted")
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Log(walcat(t, "stats", dir).stdout)
	r := recordAt(t, dir, victim)
	testutil.FlipByte(t, r.Path, r.Offset+40) // a payload byte of one record

	res := walcat(t, "repair", dir)
	t.Logf("walcat repair: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	if res.code != ExitOK {
		t.Errorf("walcat repair exit %d, want 0", res.code)
	}
	if v := walcat(t, "verify", dir); v.code != ExitOK {
		t.Errorf("after repair, walcat verify exit %d:\n%s", v.code, v.stdout)
	}
	l2, err := wal.Open(dir)
	if err != nil {
		t.Fatalf("after repair, wal.Open: %v", err)
	}
	n := 0
	for _, err := range l2.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	l2.Close()
	if want := 14 + 20 - 1; n < want { // seqs 7,14,..,98 and 101..119 were intact
		t.Errorf("after repair %d records pending, want at least %d", n, want)
	}
}
