package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

const crashDirEnv = "WALTEST_CRASH_DIR"

// TestCrashChild is the process TestCrash kills: it appends random records
// and acknowledges some, printing "A <seq> <len> <hash>" after each Append
// returns, "k <seqs>" before each Ack and "K <seqs>" after it returns, one
// unbuffered write per line, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	seed, _ := strconv.ParseUint(os.Getenv("WALTEST_CRASH_SEED"), 10, 64)
	r := rand.New(rand.NewPCG(seed, seed))
	out := func(format string, args ...any) {
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
			os.Exit(4)
		}
	}
	fail := func(what string, err error) {
		out("E %s: %v", what, err)
		os.Exit(3)
	}
	opts := []Option{WithSegmentSize(smallSeg)}
	switch os.Getenv("WALTEST_CRASH_SYNC") {
	case "always":
		opts = append(opts, WithSync(SyncAlways))
	case "every":
		opts = append(opts, WithSync(SyncEvery(time.Millisecond)))
	}
	if os.Getenv("WALTEST_CRASH_ZSTD") != "" {
		opts = append(opts, WithCompression(CompressionZstd))
	}
	if os.Getenv("WALTEST_CRASH_ENCRYPT") != "" {
		opts = append(opts, WithEncryption(testKey))
	}
	l, err := Open(dir, opts...)
	if err != nil {
		fail("open", err)
	}
	var pending []uint64
	for rec, err := range l.Pending() {
		if err != nil {
			fail("pending", err)
		}
		pending = append(pending, rec.Seq)
	}
	size := func() int {
		switch x := r.IntN(100); {
		case x < 2:
			return 70<<10 + r.IntN(60<<10) // a segment of its own
		case x < 7:
			return 32<<10 + r.IntN(8<<10)
		default:
			return r.IntN(4 << 10)
		}
	}
	out("R")
	for {
		switch x := r.IntN(10); {
		case x < 5:
			d := randRecord(r, size())
			q, err := l.Append(d)
			if err != nil {
				fail("append", err)
			}
			out("A %d %d %x", q, len(d), xxhash.Sum64(d))
			pending = append(pending, q)
		case x < 6:
			batch := make([][]byte, 2+r.IntN(4))
			for i := range batch {
				batch[i] = randRecord(r, size()/2)
			}
			q, err := l.AppendBatch(batch)
			if err != nil {
				fail("append batch", err)
			}
			for i, d := range batch {
				out("A %d %d %x", q+uint64(i), len(d), xxhash.Sum64(d))
				pending = append(pending, q+uint64(i))
			}
		default:
			if len(pending) == 0 {
				continue
			}
			var seqs []string
			var qs []uint64
			for range 1 + r.IntN(3) {
				if len(pending) == 0 {
					break
				}
				i := r.IntN(len(pending))
				qs = append(qs, pending[i])
				seqs = append(seqs, strconv.FormatUint(pending[i], 10))
				pending[i] = pending[len(pending)-1]
				pending = pending[:len(pending)-1]
			}
			out("k %s", strings.Join(seqs, " "))
			if err := l.Ack(qs...); err != nil {
				fail("ack", err)
			}
			out("K %s", strings.Join(seqs, " "))
		}
	}
}

type crashRec struct {
	n    int
	hash uint64
}

// TestCrash kills a process that appends and acknowledges at random
// moments, many times, and checks after each kill that the log opens,
// that every record whose Append returned is there intact (unless it was
// being acknowledged) and that no acknowledged record came back.
func TestCrash(t *testing.T) { crashTorture(t, 60, 10, false) }

// TestCrashEncrypted is TestCrash with WithEncryption: the child appends
// encrypted records, and after each kill the log opens with the key
// (and refuses to without it), every record decrypts to what was
// appended, and every record on disk is encrypted.
func TestCrashEncrypted(t *testing.T) { crashTorture(t, 24, 6, true) }

// crashTorture runs the rounds of TestCrash (short of them with -short).
func crashTorture(t *testing.T, rounds, short int, encrypt bool) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		rounds = short
	}
	var opts []Option
	if encrypt {
		opts = append(opts, WithEncryption(testKey))
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(10, 10))
	known := map[uint64]crashRec{}  // records that must be there unless acknowledged
	acked := map[uint64]bool{}      // Ack returned
	maybeAcked := map[uint64]bool{} // Ack called, maybe not returned
	var lastSeq uint64              // highest seq an Append returned
	var torn int64
	tornRounds, appends, acks := 0, 0, 0
	policies := []string{"never", "every", "never", "always"}
	for round := range rounds {
		policy := policies[round%len(policies)]
		zstd := ""
		if round%3 == 1 {
			zstd = "1"
		}
		lines := runCrashChild(t, dir, round, policy, zstd, encrypt, time.Duration(5+r.IntN(76))*time.Millisecond)

		for _, ln := range lines {
			f := strings.Fields(ln)
			switch f[0] {
			case "A":
				q, _ := strconv.ParseUint(f[1], 10, 64)
				n, _ := strconv.Atoi(f[2])
				h, _ := strconv.ParseUint(f[3], 16, 64)
				if q <= lastSeq {
					t.Fatalf("round %d: Append returned seq %d, not above %d returned before", round, q, lastSeq)
				}
				lastSeq = q
				known[q] = crashRec{n, h}
				appends++
			case "k", "K":
				for _, s := range f[1:] {
					q, _ := strconv.ParseUint(s, 10, 64)
					if f[0] == "K" {
						acked[q] = true
						acks++
					} else {
						maybeAcked[q] = true
					}
				}
			}
		}

		if encrypt {
			if l, err := Open(dir, WithSegmentSize(smallSeg)); !errors.Is(err, ErrKey) {
				if err == nil {
					l.Close()
				}
				t.Fatalf("round %d: Open without the key after the kill: %v, want ErrKey", round, err)
			}
			checkAllEncrypted(t, dir)
		}
		l, err := Open(dir, append(opts, WithSegmentSize(smallSeg))...)
		if err != nil {
			t.Fatalf("round %d (%s): Open after the kill: %v", round, policy, err)
		}
		st := l.Stats()
		if st.TornBytes > 0 {
			torn += st.TornBytes
			tornRounds++
		}
		if st.NextSeq <= lastSeq {
			t.Fatalf("round %d: NextSeq %d, but Append returned %d", round, st.NextSeq, lastSeq)
		}
		present := map[uint64]bool{}
		for rec, err := range l.Pending() {
			if err != nil {
				t.Fatalf("round %d: Pending: %v", round, err)
			}
			q := rec.Seq
			present[q] = true
			if acked[q] {
				t.Fatalf("round %d (%s): acknowledged seq %d is pending again", round, policy, q)
			}
			want, ok := known[q]
			if !ok {
				// Appended, but the child died before saying so: it is
				// part of the log from now on.
				known[q] = crashRec{len(rec.Data), xxhash.Sum64(rec.Data)}
				continue
			}
			if len(rec.Data) != want.n || xxhash.Sum64(rec.Data) != want.hash {
				t.Fatalf("round %d: seq %d has %d bytes (hash %x), want %d (%x)", round, q, len(rec.Data), xxhash.Sum64(rec.Data), want.n, want.hash)
			}
		}
		for q, want := range known {
			switch {
			case acked[q]:
				if _, err := l.Get(q); !errors.Is(err, ErrNotFound) {
					t.Fatalf("round %d: Get(%d) of an acknowledged record: %v", round, q, err)
				}
			case present[q]:
				d, err := l.Get(q)
				if err != nil || len(d) != want.n || xxhash.Sum64(d) != want.hash {
					t.Fatalf("round %d: Get(%d): %d bytes, %v", round, q, len(d), err)
				}
				delete(maybeAcked, q) // the Ack did not happen
			case maybeAcked[q]:
				acked[q] = true // the Ack did happen
				delete(maybeAcked, q)
			default:
				t.Fatalf("round %d (%s): seq %d, whose Append returned, is missing (NextSeq %d)", round, policy, q, st.NextSeq)
			}
		}
		// Forget what is settled, so that the maps stay small.
		for q := range acked {
			delete(known, q)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", round, err)
		}
	}
	t.Logf("%d rounds: %d appends and %d acknowledgements returned; %d torn bytes cut in %d rounds",
		rounds, appends, acks, torn, tornRounds)
	if appends < rounds {
		t.Fatalf("only %d appends in %d rounds: the child hardly ran", appends, rounds)
	}
}

// runCrashChild starts TestCrashChild on dir, kills it with SIGKILL after
// it has opened the log and run for d, and returns the complete lines it
// printed.
func runCrashChild(t *testing.T, dir string, round int, policy, zstd string, encrypt bool, d time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, "WALTEST_CRASH_SYNC="+policy,
		"WALTEST_CRASH_ZSTD="+zstd, fmt.Sprintf("WALTEST_CRASH_SEED=%d", round))
	if encrypt {
		cmd.Env = append(cmd.Env, "WALTEST_CRASH_ENCRYPT=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan []string)
	go func() {
		var lines []string
		br := bufio.NewReader(stdout)
		for {
			ln, err := br.ReadString('\n')
			if err != nil {
				break // a partial last line is dropped
			}
			ln = strings.TrimSuffix(ln, "\n")
			if ln == "R" {
				close(ready)
				continue
			}
			lines = append(lines, ln)
		}
		io.Copy(io.Discard, stdout)
		done <- lines
	}()
	select {
	case <-ready:
		time.Sleep(d)
	case lines := <-done:
		cmd.Wait()
		t.Fatalf("round %d: the child ended before it was ready: %v\n%s", round, lines, stderr.String())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("round %d: the child never got ready", round)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	lines := <-done
	cmd.Wait()
	// The child runs with the race detector too: a race report or a panic
	// it printed before the kill fails the test.
	if e := stderr.String(); strings.Contains(e, "DATA RACE") || strings.Contains(e, "panic:") || strings.Contains(e, "fatal error:") {
		t.Fatalf("round %d: the child reported:\n%s", round, e[:min(len(e), 6000)])
	}
	for _, ln := range lines {
		if strings.HasPrefix(ln, "E ") {
			t.Fatalf("round %d: the child failed: %s", round, ln)
		}
	}
	return lines
}
