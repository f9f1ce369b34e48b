package kafka

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/kfaketest"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// crashSeedEnv replays the kill moments of crashRounds: set it to the seed
// a failed run logged.
const crashSeedEnv = "WALPUB_KAFKA_CRASH_SEED"

// Environment of the "writer" helper mode.
const (
	helperURL   = "WALPUB_KAFKA_TEST_URL"
	helperDir   = "WALPUB_KAFKA_TEST_JOURNAL"
	helperStart = "WALPUB_KAFKA_TEST_START"
	// helperEOS set: the writer uses WithExactlyOnce("").
	helperEOS = "WALPUB_KAFKA_TEST_EOS"
	// helperKillCommit=N: the writer SIGKILLs itself after its Nth
	// committed transaction, before acknowledging it in the journal,
	// printing "commit-kill" first.
	helperKillCommit = "WALPUB_KAFKA_TEST_KILL_COMMIT"
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
	// Its log goes to stderr, which a test prints when the child misbehaves.
	opts := []Option{WithJournal(os.Getenv(helperDir)), WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))}
	if os.Getenv(helperEOS) != "" {
		opts = append(opts, WithExactlyOnce(""))
	}
	if n, _ := strconv.Atoi(os.Getenv(helperKillCommit)); n > 0 {
		commits := 0
		opts = append(opts, withAfterCommit(func() {
			if commits++; commits == n {
				fmt.Println("commit-kill")
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}))
	}
	p, err := NewProducer(os.Getenv(helperURL), opts...)
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
	addrs, url, dir := crashSetup(t, "crash")
	returned, _ := crashRounds(t, url, dir, 20, nil)
	resent := drainJournal(t, url, dir)
	present := indexCopies(t, readTopic(t, addrs, "crash"))
	missing, dups := checkCopies(t, returned, present)
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records missing", missing, len(returned))
	}
	t.Logf("final drain resent %d; on the topic %d distinct records (%d beyond the acknowledged ones: written, killed before printing), %d duplicates",
		resent, len(present), len(present)-len(returned), dups)
}

// TestExactlyOnceCrashRestart is TestCrashRestart with WithExactlyOnce, and
// a third of the rounds killed exactly between a commit and the journal's
// acknowledgement of its records: a read_committed consumer must see every
// record whose Write returned exactly once.
func TestExactlyOnceCrashRestart(t *testing.T) {
	testExactlyOnceCrashRestart(t, crashSetup)
}

// TestExactlyOnceCrashRestartRealBroker is TestExactlyOnceCrashRestart on
// the real broker of $KAFKA_BROKERS (skipped when unset).
func TestExactlyOnceCrashRestartRealBroker(t *testing.T) {
	testExactlyOnceCrashRestart(t, realBrokerSetup)
}

func testExactlyOnceCrashRestart(t *testing.T, setup func(*testing.T, string) ([]string, string, string)) {
	addrs, url, dir := setup(t, "eoscrash")
	returned, commitKills := crashRounds(t, url, dir, 18, func(round int) []string {
		env := []string{helperEOS + "=1"}
		if round%3 == 1 {
			env = append(env, helperKillCommit+"="+strconv.Itoa(1+round%4))
		}
		return env
	})
	if commitKills == 0 {
		t.Fatal("no round was killed between a commit and its acknowledgement")
	}
	resent := drainJournal(t, url, dir, WithExactlyOnce(""))
	parts := readCommitted(t, addrs, topicOf(url))
	present := indexCopies(t, parts)
	missing, _ := checkCopies(t, returned, present)
	// A record written but not printed before the kill has an index the
	// next round uses again: copies are told apart by their _id.
	dups := countIDs(t, parts).duplicates()
	t.Logf("%d rounds killed between commit and acknowledgement; final drain delivered %d; read_committed: %d distinct records, %d missing, %d duplicates",
		commitKills, resent, len(present), missing, dups)
	if missing > 0 || dups > 0 {
		t.Fatalf("%d of %d acknowledged records missing, %d duplicates", missing, len(returned), dups)
	}
}

// crashSetup skips in -short mode, marks t parallel, and returns the
// addresses of a kfake cluster with topic (2 partitions), the URL of the
// topic and a journal directory.
func crashSetup(t *testing.T, topic string) ([]string, string, string) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	t.Parallel()
	c := kfaketest.New(t, kfake.SeedTopics(2, topic))
	return c.ListenAddrs(), kfaketest.URL(c, topic), filepath.Join(t.TempDir(), "journal")
}

// realBrokerSetup is crashSetup on the real broker of $KAFKA_BROKERS
// (skipping when unset; .ci/run's integration stage sets it): a new topic
// named after topic, with 2 partitions.
func realBrokerSetup(t *testing.T, topic string) ([]string, string, string) {
	env := os.Getenv("KAFKA_BROKERS")
	if env == "" {
		t.Skip("KAFKA_BROKERS not set; run scripts/kafka.sh start and eval $(scripts/kafka.sh env) first, or use .ci/run")
	}
	t.Parallel()
	brokers := strings.Split(env, ",")
	topic = fmt.Sprintf("walpub-%s-%d", topic, time.Now().UnixNano())
	createTopic(t, brokers, topic, 2)
	return brokers, "kafka://" + env + "/" + topic, filepath.Join(t.TempDir(), "journal")
}

// topicOf returns the topic of a producer URL.
func topicOf(url string) string {
	return url[strings.LastIndexByte(url, '/')+1:]
}

// drainJournal opens a producer on the journal dir and closes it, which
// sends what is left; it returns how many records it delivered.
func drainJournal(t *testing.T, url, dir string, opts ...Option) int {
	t.Helper()
	var got deliveries
	p, err := NewProducer(url, append([]Option{WithJournal(dir), WithOnDelivery(got.add)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	return got.count()
}

// indexCopies counts the copies of each record index on a topic.
func indexCopies(t testing.TB, parts map[int32][]*kgo.Record) map[int]int {
	present := map[int]int{}
	for _, rs := range parts {
		for _, r := range rs {
			present[recordIndex(t, r)]++
		}
	}
	return present
}

// checkCopies reports the records of returned missing from present (the
// first few as errors) and the duplicates in present.
func checkCopies(t testing.TB, returned map[int]bool, present map[int]int) (missing, dups int) {
	t.Helper()
	for i := range returned {
		if present[i] == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("record %d: Write returned, not on the topic", i)
			}
		}
	}
	for _, n := range present {
		dups += n - 1
	}
	return missing, dups
}

// crashRounds runs the writer helper on the journal dir rounds times, each
// time SIGKILLed at a random moment (or killing itself, as env asks),
// continuing the numbering where the last left off. env, if not nil, gives
// a round's extra environment. It returns the indexes whose Write returned,
// and how many rounds died by the writer's own kill after a commit.
func crashRounds(t *testing.T, url, dir string, rounds int, env func(round int) []string) (returned map[int]bool, commitKills int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	seed := testutil.Seed(t, crashSeedEnv)
	rng := rand.New(rand.NewPCG(seed, seed>>32))

	returned = map[int]bool{}
	next := 0
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=writer", helperURL+"="+url,
			helperDir+"="+dir, helperStart+"="+strconv.Itoa(next))
		selfKill := false
		if env != nil {
			extra := env(round)
			cmd.Env = append(cmd.Env, extra...)
			selfKill = slices.ContainsFunc(extra, func(s string) bool { return strings.HasPrefix(s, helperKillCommit+"=") })
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		type result struct {
			idx        []int
			commitKill bool
		}
		lines := make(chan result, 1)
		first := make(chan struct{})
		killed := make(chan struct{}) // stdout ended: the child is gone
		go func() {
			defer close(killed)
			var res result
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "commit-kill" {
					res.commitKill = true
				} else if i, err := strconv.Atoi(sc.Text()); err == nil {
					if res.idx = append(res.idx, i); len(res.idx) == 1 {
						close(first)
					}
				}
			}
			lines <- res
		}()
		switch {
		case selfKill:
			// It kills itself after a commit; the parent kills it only
			// if it has not done so in time (the test then fails).
			select {
			case <-killed:
			case <-time.After(30 * time.Second):
			}
		case round%5 == 4:
			// While it starts up and resends what the last one left.
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		default:
			// While it writes.
			select {
			case <-first:
			case <-killed:
				_ = cmd.Wait()
				t.Fatalf("round %d: the writer exited before writing:\n%s", round, stderr.String())
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-killed
				_ = cmd.Wait()
				t.Fatalf("round %d: the writer wrote nothing in 60 s:\n%s", round, stderr.String())
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		res := <-lines
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
			t.Fatalf("round %d: child did not die by the signal: %v\n%s", round, err, stderr.String())
		}
		if res.commitKill {
			commitKills++
		} else if selfKill {
			t.Fatalf("round %d: the writer was to kill itself after a commit (%q) and did not in 30 s:\n%s",
				round, cmd.Env[len(cmd.Env)-1], stderr.String())
		}
		for _, i := range res.idx {
			returned[i] = true
			next = max(next, i+1)
		}
	}
	t.Logf("%d rounds, %d records acknowledged by Write", rounds, len(returned))
	if len(returned) == 0 {
		t.Fatalf("no Write returned in %d rounds: the test checked nothing", rounds)
	}
	return returned, commitKills
}

// TestExactlyOnceZombie stops a producing child (SIGSTOP), starts a second
// one on a copy of its journal, then resumes the first: the first must be
// fenced (its Write fails with ErrFenced) and nothing it wrote after it
// resumed may be committed, while every record whose Write returned in the
// second, and in the first before it stopped, is there exactly once.
func TestExactlyOnceZombie(t *testing.T) {
	testExactlyOnceZombie(t, crashSetup)
}

// TestExactlyOnceZombieRealBroker is TestExactlyOnceZombie on the real
// broker of $KAFKA_BROKERS (skipped when unset).
func TestExactlyOnceZombieRealBroker(t *testing.T) {
	testExactlyOnceZombie(t, realBrokerSetup)
}

func testExactlyOnceZombie(t *testing.T, setup func(*testing.T, string) ([]string, string, string)) {
	addrs, url, dirA := setup(t, "zombie")
	dirB := filepath.Join(t.TempDir(), "journal")
	const startB = 1_000_000

	a := startWriter(t, url, dirA, 0, helperEOS+"=1")
	a.waitFor(t, 500)
	time.Sleep(300 * time.Millisecond) // a few commits
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Lines already in the pipe are still read: wait until none comes.
	for quiet := false; !quiet; {
		select {
		case <-a.n:
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	beforeStop := a.printed()
	if err := os.CopyFS(dirB, os.DirFS(dirA)); err != nil {
		t.Fatal(err)
	}
	// A Write may have journaled its record before the stop and printed
	// it only after the resume: such a record is in the copy, and the
	// second producer rightly sends it.
	inCopy := journaledIndexes(t, dirB)

	b := startWriter(t, url, dirB, startB, helperEOS+"=1")
	b.waitFor(t, 500)
	// Resumed before the second producer committed anything, the first
	// could not tell it from a transaction the broker timed out (see
	// checkOwner) and would rightly take the ID back, fencing the second:
	// the case under test is the zombie resumed after its successor has
	// committed.
	waitCommitted(t, addrs, topicOf(url), startB)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code, stderrA := a.wait(t, 30*time.Second)
	if code != 2 || !strings.Contains(stderrA, ErrFenced.Error()) {
		t.Fatalf("the resumed producer exited %d, want 2 with %q:\n%s", code, ErrFenced, stderrA)
	}
	afterResume := a.printed()[len(beforeStop):]
	t.Logf("the resumed producer's stderr:\n%s", stderrA)
	_ = b.cmd.Process.Kill()
	b.wait(t, 30*time.Second)

	drainJournal(t, url, dirB, WithExactlyOnce(""))
	parts := readCommitted(t, addrs, topicOf(url))
	present := indexCopies(t, parts)
	returned := map[int]bool{}
	for _, i := range append(beforeStop, b.printed()...) {
		returned[i] = true
	}
	missing, _ := checkCopies(t, returned, present)
	dups := countIDs(t, parts).duplicates()
	zombie := 0
	for _, i := range afterResume {
		if present[i] > 0 && !returned[i] && !inCopy[i] {
			zombie++
		}
	}
	t.Logf("first producer: %d records before SIGSTOP, %d after SIGCONT; second: %d; read_committed: %d missing, %d duplicates, %d written after the resume",
		len(beforeStop), len(afterResume), len(b.printed()), missing, dups, zombie)
	if missing > 0 || dups > 0 || zombie > 0 {
		t.Fatal("want 0 missing, 0 duplicates, nothing of the fenced producer")
	}
}

// waitCommitted waits until a read_committed consumer of topic sees a
// record whose index is from or beyond.
func waitCommitted(t *testing.T, addrs []string, topic string, from int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for i := range indexCopies(t, readCommitted(t, addrs, topic)) {
			if i >= from {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record from index %d committed on %s in 60 s", from, topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writerChild is a running writer helper.
type writerChild struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     sync.Mutex
	idx    []int
	n      chan struct{} // receives after each printed index (cap 1)
	done   chan struct{} // closed when stdout ended
}

// startWriter starts the writer helper on dir from index start, with env
// added; it is killed at cleanup if still running.
func startWriter(t *testing.T, url, dir string, start int, env ...string) *writerChild {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w := &writerChild{stderr: new(bytes.Buffer), n: make(chan struct{}, 1), done: make(chan struct{})}
	w.cmd = exec.Command(exe, "-test.run=^$")
	w.cmd.Env = append(append(os.Environ(), helperEnv+"=writer", helperURL+"="+url,
		helperDir+"="+dir, helperStart+"="+strconv.Itoa(start)), env...)
	w.cmd.Stderr = w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
		_ = w.cmd.Wait()
	})
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if i, err := strconv.Atoi(sc.Text()); err == nil {
				w.mu.Lock()
				w.idx = append(w.idx, i)
				w.mu.Unlock()
				select {
				case w.n <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}

func (w *writerChild) printed() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.idx)
}

// waitFor waits until the child printed n indexes.
func (w *writerChild) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for len(w.printed()) < n {
		select {
		case <-w.n:
		case <-w.done:
			t.Fatalf("the writer exited after %d records:\n%s", len(w.printed()), w.stderr)
		case <-deadline:
			t.Fatalf("the writer printed %d records in 60 s, want %d", len(w.printed()), n)
		}
	}
}

// wait waits for the child to exit, and returns its exit code (-1 for a
// signal) and its stderr.
func (w *writerChild) wait(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(d):
		// SIGQUIT makes the Go runtime print every goroutine's stack
		// on stderr before it exits: the stderr shows where it hung.
		_ = w.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
		}
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
		t.Fatalf("the writer did not exit in %v; its stderr, with its goroutines at SIGQUIT:\n%s", d, w.stderr)
	}
	_ = w.cmd.Wait()
	return w.cmd.ProcessState.ExitCode(), w.stderr.String()
}

// TestExactlyOnceNewCluster moves a journal to a fresh cluster (the topic
// starts again at offset 0, below the floors the journal kept): a process
// killed there between a commit and the journal's acknowledgement must
// still leave no duplicate.
func TestExactlyOnceNewCluster(t *testing.T) {
	addrsA, urlA, dir := crashSetup(t, "moved")
	killAfter := func(n int) func(int) []string {
		return func(int) []string { return []string{helperEOS + "=1", helperKillCommit + "=" + strconv.Itoa(n)} }
	}
	_, kills := crashRounds(t, urlA, dir, 1, killAfter(5))
	drainJournal(t, urlA, dir, WithExactlyOnce(""))
	if n := len(countIDs(t, readCommitted(t, addrsA, "moved")).copies); n < 100 || kills != 1 {
		t.Fatalf("first cluster: %d records, %d kills after a commit; want more than 100 and 1", n, kills)
	}

	c := kfaketest.New(t, kfake.SeedTopics(2, "moved"))
	urlB := kfaketest.URL(c, "moved")
	returned, kills := crashRounds(t, urlB, dir, 1, killAfter(1))
	if kills != 1 {
		t.Fatal("the writer on the second cluster was not killed after its commit")
	}
	drainJournal(t, urlB, dir, WithExactlyOnce(""))
	parts := readCommitted(t, c.ListenAddrs(), "moved")
	missing, _ := checkCopies(t, returned, indexCopies(t, parts))
	dups := countIDs(t, parts).duplicates()
	t.Logf("second cluster: %d records written, %d missing, %d duplicates", len(returned), missing, dups)
	if missing > 0 || dups > 0 {
		t.Fatal("want 0 missing, 0 duplicates")
	}
}

// journaledIndexes returns the indexes of the test records the journal in
// dir holds, acknowledged or not.
func journaledIndexes(t testing.TB, dir string) map[int]bool {
	t.Helper()
	v, err := wal.OpenView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	idx := map[int]bool{}
	for rec, err := range v.Records(0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRecord(rec.Data)
		if err != nil {
			t.Fatalf("journal record %d: %v", rec.Seq, err)
		}
		idx[recordIndex(t, r)] = true
	}
	return idx
}
