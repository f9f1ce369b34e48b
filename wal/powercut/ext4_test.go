//go:build powercut && linux

package powercut

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

const (
	childEnv  = "WALPUB_POWERCUT_CHILD"
	seedEnv   = "WALPUB_POWERCUT_SEED"
	segSize   = 1 << 20
	imageSize = 256 << 20
	everyD    = 50 * time.Millisecond
	// everySlack bounds the time one sync takes, generously: the machine
	// is shared. Rounds run longer than everyD+everySlack, so that a
	// writer that never synced would fail.
	everySlack = 2 * time.Second
)

// record is the record with seq q: known without the log, so that any
// record found after the cut can be checked.
func record(q uint64) []byte {
	r := rand.New(rand.NewPCG(q, 19))
	b := make([]byte, 512+r.IntN(1024))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// stuck reports whether the writer leaves seq q unacknowledged: every 11th
// record of every other run of 2000, so that some segments are compacted
// and the others reclaimed whole.
func stuck(q uint64) bool { return q%11 == 0 && q/2000%2 == 0 }

func policy(name string) wal.SyncPolicy {
	switch name {
	case "always":
		return wal.SyncAlways
	case "every":
		return wal.SyncEvery(everyD)
	}
	return wal.SyncNever
}

// TestWriterChild is the writer, run as a child process by TestExt4PowerCut:
// it appends and acknowledges until it is killed, printing what returned
// (unbuffered, so that every line written before the kill reaches the
// parent): "A q" an append of records through q returned; "K q..." an Ack
// of these seqs returned; "s" a Sync starts, "S" it returned.
func TestWriterChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestExt4PowerCut")
	}
	dir, pol := os.Getenv("WALPUB_POWERCUT_DIR"), os.Getenv("WALPUB_POWERCUT_POLICY")
	l, err := wal.Open(dir, wal.WithSegmentSize(segSize), wal.WithSync(policy(pol)))
	if err != nil {
		fmt.Printf("E %v\n", err)
		os.Exit(2)
	}
	out := os.Stdout
	next, ackTo := uint64(1), uint64(0)
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for i := 0; ; i++ {
		n := 1
		switch {
		case i%64 == 63:
			// 64 records of 512 B or more: 32 KiB or more, written
			// through the file with one pwritev (and, where syncs are
			// rare, followed by zeros to the next 64 KiB boundary).
			n = 64
		case r.IntN(8) == 0:
			n = 2 + r.IntN(6)
		}
		batch := make([][]byte, n)
		for j := range batch {
			batch[j] = record(next + uint64(j))
		}
		q, err := l.AppendBatch(batch)
		if err != nil || q != next {
			fmt.Fprintf(out, "E append %d: %v\n", q, err)
			os.Exit(2)
		}
		next += uint64(n)
		fmt.Fprintf(out, "A %d\n", next-1)
		var acks []uint64
		for ackTo+300 < next {
			if ackTo++; !stuck(ackTo) {
				acks = append(acks, ackTo)
			}
		}
		if len(acks) > 0 {
			if err := l.Ack(acks...); err != nil {
				fmt.Fprintf(out, "E ack: %v\n", err)
				os.Exit(2)
			}
			var sb strings.Builder
			sb.WriteString("K")
			for _, a := range acks {
				sb.WriteString(" " + strconv.FormatUint(a, 10))
			}
			sb.WriteString("\n")
			out.WriteString(sb.String())
		}
		if i%8 == 7 {
			// About 8 MB/s: a busy publisher, not a disk benchmark (an
			// unthrottled writer makes each background sync as long as
			// the device takes to write what piled up since the last).
			time.Sleep(time.Millisecond)
		}
		if pol == "never" && i%500 == 499 {
			out.WriteString("s\n")
			if err := l.Sync(); err != nil {
				fmt.Fprintf(out, "E sync: %v\n", err)
				os.Exit(2)
			}
			out.WriteString("S\n")
		}
	}
}

// ledger is what the parent learnt from the writer's lines.
type ledger struct {
	mu          sync.Mutex
	written     uint64               // highest seq whose append returned
	writtenAt   map[uint64]time.Time // when each "A" line arrived
	acked       map[uint64]bool      // Ack returned
	promised    uint64               // highest seq a returned Sync covered
	durableAcks []uint64
	// at "s": what the sync will cover
	syncWritten uint64
	syncAcks    int
	ackOrder    []uint64
	errLine     string
}

func (lg *ledger) read(r io.Reader, pol string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		now := time.Now()
		lg.mu.Lock()
		switch {
		case strings.HasPrefix(line, "A "):
			q, _ := strconv.ParseUint(line[2:], 10, 64)
			lg.written = q
			lg.writtenAt[q] = now
			if pol == "always" {
				lg.promised = q
			}
		case strings.HasPrefix(line, "K "):
			for _, f := range strings.Fields(line[2:]) {
				q, _ := strconv.ParseUint(f, 10, 64)
				lg.acked[q] = true
				lg.ackOrder = append(lg.ackOrder, q)
				if pol == "always" {
					lg.durableAcks = append(lg.durableAcks, q)
				}
			}
		case line == "s":
			lg.syncWritten, lg.syncAcks = lg.written, len(lg.ackOrder)
		case line == "S":
			lg.promised = max(lg.promised, lg.syncWritten)
			lg.durableAcks = append(lg.durableAcks, lg.ackOrder[:lg.syncAcks]...)
		case strings.HasPrefix(line, "E "):
			lg.errLine = line
		}
		lg.mu.Unlock()
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// setSysctls sets vm sysctls and restores them when the test ends, even
// when it fails.
func setSysctls(t *testing.T, kv map[string]string) {
	t.Helper()
	for k, v := range kv {
		path := filepath.Join("/proc/sys/vm", k)
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
		})
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mount loop-mounts image at dir; the mount is undone when the test ends.
func mount(t *testing.T, image, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "ext4", "-o", "loop,commit=600", image, dir)
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// writeBackSome writes back a random subset (about a third) of the dirty
// 64 KiB ranges of every file in dir, data only: some unsynced pages
// reached the disk and others did not. It returns how many ranges it
// wrote.
func writeBackSome(t *testing.T, dir string, r *rand.Rand) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		for off := int64(0); off < fi.Size(); off += 64 << 10 {
			if r.IntN(3) != 0 {
				continue
			}
			if err := unix.SyncFileRange(int(f.Fd()), off, 64<<10,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
				t.Fatal(err)
			}
			n++
		}
		f.Close()
	}
	return n
}

type cutResult struct {
	written, promised, kept uint64
	torn                    int64
	lostWindow              time.Duration // from the "A" line of the first record lost to the kill
	wroteBack               int
}

// TestExt4PowerCut runs a writer on ext4 in a loop-mounted image with
// periodic write-back off and a 600 s journal commit interval, so that
// only forced writes (fsync, fdatasync, msync, and what ext4's journal
// forces) reach the image; kills it at a random moment; copies the image
// at once (the copy holds what reached the "device"); mounts the copy and
// opens the log. Adversarial rounds first write back a random third of the
// dirty ranges of the log's files (data only). Each round checks: Open
// succeeds without Repair; every record the policy promised is there
// (SyncAlways: every append that returned; SyncNever: everything before
// the last Sync that returned; SyncEvery(d): everything appended more than
// a generous bound before the kill); what is there is a prefix in seq
// order with the bytes written; no acknowledgement known durable is undone.
func TestExt4PowerCut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loop mounts and vm sysctls")
	}
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("needs a loop device: %v", err)
	}
	// One run at a time on this machine: the sysctls are global.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "walpub-powercut.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	setSysctls(t, map[string]string{
		"dirty_writeback_centisecs": "0",
		"dirty_expire_centisecs":    "360000",
		"dirty_background_ratio":    "80",
		"dirty_ratio":               "90",
	})
	r := rand.New(rand.NewPCG(testutil.Seed(t, seedEnv), 3))

	rounds := []struct {
		pol         string
		adversarial bool
		n           int
	}{{"always", false, 2}, {"every", false, 3}, {"never", false, 2},
		{"always", true, 2}, {"every", true, 3}, {"never", true, 2}}
	var summary []string
	for _, rd := range rounds {
		var results []cutResult
		for i := range rd.n {
			name := fmt.Sprintf("%s/adversarial=%v/%d", rd.pol, rd.adversarial, i)
			t.Run(name, func(t *testing.T) {
				res := cutOnce(t, rd.pol, rd.adversarial, r)
				results = append(results, res)
				t.Logf("written %d, promised %d, kept %d, torn bytes %d, ranges written back %d, lost window %v",
					res.written, res.promised, res.kept, res.torn, res.wroteBack, res.lostWindow)
			})
		}
		var written, kept, promised uint64
		var worst time.Duration
		for _, res := range results {
			written += res.written
			kept += res.kept
			promised += res.promised
			worst = max(worst, res.lostWindow)
		}
		summary = append(summary, fmt.Sprintf("%-6s adversarial=%-5v %d cuts: written %d, promised %d, kept %d (%.1f%%), longest loss window %v",
			rd.pol, rd.adversarial, len(results), written, promised, kept, 100*float64(kept)/float64(max(written, 1)), worst.Round(time.Millisecond)))
	}
	t.Logf("ext4 power cuts:\n%s", strings.Join(summary, "\n"))
}

func cutOnce(t *testing.T, pol string, adversarial bool, r *rand.Rand) cutResult {
	tmp := t.TempDir()
	image, mnt := filepath.Join(tmp, "disk.img"), filepath.Join(tmp, "mnt")
	f, err := os.Create(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(imageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image)
	mount(t, image, mnt)
	logDir := filepath.Join(mnt, "log")

	cmd := exec.Command(os.Args[0], "-test.run=^TestWriterChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", "WALPUB_POWERCUT_DIR="+logDir, "WALPUB_POWERCUT_POLICY="+pol)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	lg := &ledger{writtenAt: map[uint64]time.Time{}, acked: map[uint64]bool{}}
	done := make(chan struct{})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { lg.read(stdout, pol); close(done) }()
	time.Sleep(everyD + everySlack + time.Duration(500+r.IntN(2000))*time.Millisecond)
	killAt := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	cmd.Wait()
	if lg.errLine != "" || lg.written == 0 {
		t.Fatalf("the writer failed or wrote nothing: %q\n%s", lg.errLine, stderr.String())
	}
	var res cutResult
	if adversarial {
		res.wroteBack = writeBackSome(t, logDir, r)
		if res.wroteBack == 0 {
			t.Fatal("no range written back: the adversarial case did not happen")
		}
		// Commit the journal through another file, so that the
		// conversion of the preallocated extents written back is on
		// disk too (without it, they read as zeros after the cut).
		c, err := os.Create(filepath.Join(mnt, "commit"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// The cut: what reached the loop device is in the backing file.
	cut := filepath.Join(tmp, "cut.img")
	copyFile(t, image, cut)
	run(t, "umount", mnt)
	os.Remove(image)

	after := filepath.Join(tmp, "after")
	mount(t, cut, after)
	dir := filepath.Join(after, "log")
	if _, err := os.Stat(dir); err != nil {
		// The directory entry itself never reached the disk: nothing was
		// promised durable yet.
		if lg.promised > 0 {
			t.Fatalf("the log directory is gone, yet seqs through %d were promised", lg.promised)
		}
		return cutResult{written: lg.written}
	}
	l, err := wal.Open(dir, wal.WithSegmentSize(segSize))
	if err != nil {
		t.Fatalf("Open after the power cut: %v", err)
	}
	st := l.Stats()
	res.written, res.promised, res.kept, res.torn = lg.written, lg.promised, st.NextSeq-1, st.TornBytes
	if pol == "every" {
		// SyncEvery(d): everything appended more than d (plus a sync's
		// time, bounded generously: the machine is shared) before the
		// kill is promised.
		for q, at := range lg.writtenAt {
			if killAt.Sub(at) > everyD+everySlack {
				res.promised = max(res.promised, q)
			}
		}
	}
	if first := res.kept + 1; first <= lg.written {
		for q := first; q <= lg.written; q++ {
			if at, ok := lg.writtenAt[q]; ok {
				res.lostWindow = killAt.Sub(at)
				break
			}
		}
	}
	if res.kept < res.promised {
		t.Errorf("records %d..%d were promised durable and are gone", res.kept+1, res.promised)
	}
	pending := map[uint64]bool{}
	for rec, err := range l.Pending() {
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		pending[rec.Seq] = true
		if !bytes.Equal(rec.Data, record(rec.Seq)) {
			t.Fatalf("record %d: bytes differ from those written", rec.Seq)
		}
	}
	for q := uint64(1); q <= res.kept; q++ {
		// The ack of q may have been called without the child printing
		// its line (killed between the two): any seq the child would
		// acknowledge by then may be missing.
		if !pending[q] && !lg.acked[q] && (stuck(q) || q+300 > lg.written+8) {
			t.Fatalf("record %d is gone though later ones (through %d) are kept: not a prefix", q, res.kept)
		}
	}
	for _, q := range lg.durableAcks {
		if pending[q] {
			t.Fatalf("record %d is pending again though its Ack was durable", q)
		}
	}
	if _, err := l.Append([]byte("after the power cut")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wal.Verify(dir); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}
