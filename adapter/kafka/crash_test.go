package kafka

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Environment of the "writer" helper mode.
const (
	helperURL   = "WALPUB_KAFKA_TEST_URL"
	helperDir   = "WALPUB_KAFKA_TEST_JOURNAL"
	helperStart = "WALPUB_KAFKA_TEST_START"
)

// runHelper runs the child side of a test in a re-executed test binary.
func runHelper(mode string) int {
	switch mode {
	case "writer":
		return runWriter()
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// runWriter writes records start, start+1, ... into a producer on the
// journal until it is killed, printing each index once its Write returned.
func runWriter() int {
	start, err := strconv.Atoi(os.Getenv(helperStart))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := NewProducer(os.Getenv(helperURL), WithJournal(os.Getenv(helperDir)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	for i := start; ; i++ {
		if err := p.Write(ctx, testRecord(i, 4, 64)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		// os.Stdout is unbuffered: the line is out once Printf returns.
		fmt.Printf("%d\n", i)
		if i%20 == 19 {
			time.Sleep(2 * time.Millisecond) // keep the volume modest
		}
	}
}

// TestCrashRestart runs a producer in a child process, SIGKILLs it at random
// moments and restarts it on the same journal, many times; then drains the
// journal. Every record whose Write returned must be on the topic.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	t.Parallel()
	c := newCluster(t, kfake.SeedTopics(2, "crash"))
	url := clusterURL(c, "crash")
	dir := filepath.Join(t.TempDir(), "journal")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>32))

	const rounds = 20
	returned := map[int]bool{}
	next := 0
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=writer", helperURL+"="+url,
			helperDir+"="+dir, helperStart+"="+strconv.Itoa(next))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []int, 1)
		first := make(chan struct{})
		go func() {
			var idx []int
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if i, err := strconv.Atoi(sc.Text()); err == nil {
					if idx = append(idx, i); len(idx) == 1 {
						close(first)
					}
				}
			}
			lines <- idx
		}()
		if round%5 == 4 {
			// While it starts up and resends what the last one left.
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		} else {
			// While it writes.
			select {
			case <-first:
			case <-time.After(10 * time.Second):
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		idx := <-lines
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
			t.Fatalf("round %d: child did not die by the signal: %v\n%s", round, err, stderr.String())
		}
		for _, i := range idx {
			returned[i] = true
			next = max(next, i+1)
		}
	}
	t.Logf("%d rounds, %d records acknowledged by Write", rounds, len(returned))

	var got deliveries
	p, err := NewProducer(url, WithJournal(dir), WithOnDelivery(got.add))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	parts := readTopic(t, c.ListenAddrs(), "crash")
	present := map[int]int{}
	for _, rs := range parts {
		for _, r := range rs {
			present[recordIndex(t, r)]++
		}
	}
	missing := 0
	for i := range returned {
		if present[i] == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("record %d: Write returned, not on the topic", i)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records missing", missing, len(returned))
	}
	dups := 0
	for _, n := range present {
		dups += n - 1
	}
	t.Logf("final drain resent %d; on the topic %d distinct records (%d beyond the acknowledged ones: written, killed before printing), %d duplicates",
		got.count(), len(present), len(present)-len(returned), dups)
}
