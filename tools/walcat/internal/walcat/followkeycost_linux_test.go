package walcat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/wal"
)

// threadFaults returns the minor page faults of the calling thread: a
// read of a segment through its mapping faults a page in every 64 KiB or
// so (the kernel maps the pages around a fault with it).
func threadFaults(t *testing.T) int64 {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Skip(err)
	}
	return ru.Minflt
}

// TestFollowWithKeyLookReadsOnlyNew: with --key-file, a look of follow at
// an encrypted log after a record was appended costs about the same
// whether the log holds 2 sealed 1 MiB segments or 30, as without a key
// (TestFollowLookReadsOnlyNew), but for the opening of each segment
// file. Before, each look asked its view whether the log is encrypted
// through View.Info, which reads and checksums every record of the log
// through the mappings: a look at the log of 30 faulted about 500 pages
// more than one at the log of 2 under -race (the kernel maps 64 KiB
// around a fault); now 110 to 170 more under -race, the opening of the
// 28 segments more (their headers, the view's own memory).
func TestFollowWithKeyLookReadsOnlyNew(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, 32)
	opts := []wal.Option{wal.WithSegmentSize(1 << 20), wal.WithEncryption(key)}
	faults := map[int]int64{}
	for _, sealed := range []int{2, 30} {
		dir := t.TempDir()
		l, err := wal.Open(dir, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for l.Stats().Segments <= sealed {
			mustAppend(t, l, bigPayload(0, 4000))
		}
		out, errOut := new(bytes.Buffer), new(bytes.Buffer)
		w := bufio.NewWriter(out)
		p, err := (&printOpts{format: "auto", preview: 16, key: key}).printer(w)
		if err != nil {
			t.Fatal(err)
		}
		f := &follower{ctx: context.Background(), c: &cli{stdout: out, stderr: errOut}, p: p, w: w, dir: dir}
		f.mustLook(t) // -n 0: nothing printed
		mustAppend(t, l, []byte("new"))
		// Closed: the writer's preparer faults in zero pages ahead of the
		// active segment's data, which a look reads (a live log's look
		// costs that more, whatever its history).
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// The look's own faults: those of its thread, which it does not
		// leave, the collector's work on the heap not among them.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		runtime.LockOSThread()
		before := threadFaults(t)
		f.mustLook(t)
		faults[sealed] = threadFaults(t) - before
		runtime.UnlockOSThread()
		if !bytes.Contains(out.Bytes(), []byte(`data="new"`)) {
			t.Fatalf("%d sealed segments: the look did not print the record appended:\n%s%s", sealed, out, errOut)
		}
	}
	t.Logf("page faults of a look: %v", faults)
	if grew := faults[30] - faults[2]; grew > 320 {
		t.Errorf("a look at a log of 30 sealed segments faulted %d pages more than one at a log of 2: %s",
			grew, fmt.Sprint(faults))
	}
}
