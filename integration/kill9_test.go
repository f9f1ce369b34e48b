package integration

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// Environment of the child process that TestIntegrationKill9 starts.
const (
	helperEnv      = "WALPUB_IT_HELPER" // "kill9" makes the test binary the child (TestMain)
	helperJournal  = "WALPUB_IT_JOURNAL"
	helperURL      = "WALPUB_IT_URL"
	helperPrefix   = "WALPUB_IT_PREFIX"
	helperCount    = "WALPUB_IT_COUNT"
	helperEOS      = "WALPUB_IT_EXACTLY_ONCE" // set: the child uses kafka.WithExactlyOnce("")
	killRounds     = 15
	recordsPerKill = 3000
)

// seedEnv replays TestIntegrationKill9's kill moments: set it to the seed a
// failed run logged.
const seedEnv = "WALPUB_KILL9_SEED"

// TestMain runs the tests, or, with WALPUB_IT_HELPER=kill9, is the child
// process of TestIntegrationKill9 (the test binary run again): helperMain
// instead of any test, so that no test passes for having been the child.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "kill9" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain is the child process of TestIntegrationKill9. It opens a
// producer on the journal it is given, writes numbered records and prints
// each number on stdout after Write returned, then closes the producer.
func helperMain() int {
	n, err := strconv.Atoi(os.Getenv(helperCount))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad count:", err)
		return 2
	}
	prefix := os.Getenv(helperPrefix)
	opts := []kafka.Option{kafka.WithJournal(os.Getenv(helperJournal))}
	if os.Getenv(helperEOS) != "" {
		opts = append(opts, kafka.WithExactlyOnce(""))
	}
	p, err := kafka.NewProducer(os.Getenv(helperURL), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: NewProducer:", err)
		return 1
	}
	ctx := context.Background()
	out := bufio.NewWriterSize(os.Stdout, 64)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for i := range n {
		if err := p.Write(ctx, record(fmt.Sprintf("%s-%06d", prefix, i))); err != nil {
			fmt.Fprintln(os.Stderr, "helper: Write:", err)
			return 1
		}
		// The parent counts a record as written once it reads its number;
		// write the line out at once.
		fmt.Fprintln(out, i)
		out.Flush()
		if i%10 == 9 {
			time.Sleep(time.Millisecond) // leave time to be killed mid-stream
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "helper: Close:", err)
		return 1
	}
	fmt.Fprintln(out, "closed")
	out.Flush()
	return 0
}

// TestIntegrationKill9 kills a producing child process with SIGKILL at a
// random moment, killRounds times, each round restarting the producer on the
// same journal (which resends what the killed one left unconfirmed). A last
// producer in this process drains the journal. Every record whose Write
// returned in any round must be on the broker. At least one round must have
// been killed after its child wrote records, and at least one kill must have
// left records unconfirmed in the journal (else the test tested nothing).
// $WALPUB_KILL9_SEED replays the kill moments of a logged seed.
func TestIntegrationKill9(t *testing.T) {
	b := brokers(t)
	url, journal, want := kill9Rounds(t, b)
	drainJournal(t, url, kafka.WithJournal(journal))
	verify(t, b, topicOf(url), want, verifyOptions{allowExtra: true})
}

// TestIntegrationExactlyOnceKill9 is TestIntegrationKill9 with
// kafka.WithExactlyOnce: read_committed (kcat and a kgo consumer), every
// record whose Write returned is there exactly once.
func TestIntegrationExactlyOnceKill9(t *testing.T) {
	b := brokers(t)
	url, journal, want := kill9Rounds(t, b, helperEOS+"=1")
	drainJournal(t, url, kafka.WithJournal(journal), kafka.WithExactlyOnce(""))
	verify(t, b, topicOf(url), want, verifyOptions{allowExtra: true, exactlyOnce: true})
}

// kill9Rounds creates a topic and runs killRounds children on one journal,
// each killed at a random moment, with env added to their environment. It
// returns the topic's URL, the journal and the keys whose Write returned.
func kill9Rounds(t *testing.T, b string, env ...string) (url, journal string, want []string) {
	topic := topicName(t)
	createTopic(t, b, topic, 1)
	journal = t.TempDir()
	url = "kafka://" + b + "/" + topic

	seed := testutil.Seed(t, seedEnv)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	// killedPending counts the killed rounds that left records unconfirmed
	// in the journal: what the next producer on it must resend.
	killed, killedMidStream, killedPending := 0, 0, 0
	for round := range killRounds {
		prefix := fmt.Sprintf("r%02d", round)
		// A third of the rounds are killed from 0 to 1.5 s after the child
		// started, often while it opens and recovers the journal (its start
		// takes about that long under the race detector); the others from
		// 0 to 800 ms after it is ready, while it writes (a few after it has
		// written everything and is closing).
		kill := killPoint{delay: time.Duration(rng.Int64N(int64(800 * time.Millisecond))), afterReady: true}
		if round%3 == 0 {
			kill = killPoint{delay: time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))}
		}
		keys, wasKilled, err := runChild(t, journal, url, prefix, kill, env...)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		pending := -1
		if wasKilled {
			killed++
			if len(keys) > 0 {
				killedMidStream++
			}
			if pending = journalPending(t, journal); pending > 0 {
				killedPending++
			}
		}
		t.Logf("round %d: %v: %d records written, killed=%v, %d left unconfirmed in the journal", round, kill, len(keys), wasKilled, pending)
		want = append(want, keys...)
	}
	t.Logf("%d of %d rounds killed, %d of them after writing records, %d leaving records unconfirmed", killed, killRounds, killedMidStream, killedPending)
	if killedMidStream == 0 {
		t.Errorf("no round was killed after its child wrote records: the test killed nothing mid-stream (seed %d)", seed)
	}
	if killedPending == 0 {
		t.Errorf("no kill left a record unconfirmed in the journal: no producer had anything to resend, the test exercised no recovery (seed %d)", seed)
	}
	return url, journal, want
}

// journalPending returns how many records the journal dir holds that no
// broker has confirmed, as a killed child left it (read without a lock).
func journalPending(t *testing.T, dir string) int {
	t.Helper()
	v, err := wal.OpenView(dir)
	if err != nil {
		t.Fatalf("looking into the journal %s: %v", dir, err)
	}
	defer v.Close()
	return v.Info().Pending
}

// drainJournal flushes and closes a clean producer on the journal, which
// resends what is left; nothing may be dead-lettered.
func drainJournal(t *testing.T, url string, opts ...kafka.Option) {
	logger, _ := newLogger(t)
	p := newProducer(t, url, append(opts, kafka.WithLogger(logger))...)
	if st := drain(t, context.Background(), p, " of the drain"); st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered", st.DeadLettered)
	}
}

// topicOf returns the topic of a producer URL.
func topicOf(url string) string {
	return url[strings.LastIndexByte(url, '/')+1:]
}

// killPoint says when runChild kills the child: delay after it started,
// or after it reported that its producer is open; with after set, delay
// after after is closed too (a fault that must have happened first).
type killPoint struct {
	delay      time.Duration
	afterReady bool
	after      <-chan struct{}
}

func (k killPoint) String() string {
	if k.afterReady {
		return fmt.Sprintf("kill %v after ready", k.delay.Round(time.Millisecond))
	}
	return fmt.Sprintf("kill %v after start", k.delay.Round(time.Millisecond))
}

// runChild runs the helper process (env added to its environment), kills
// it with SIGKILL at kill unless it finished first, and returns the keys of
// the records whose Write returned (those whose number it printed), and
// whether it died of that SIGKILL.
func runChild(t *testing.T, journal, url, prefix string, kill killPoint, env ...string) (keys []string, killed bool, err error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(),
		helperEnv+"=kill9",
		helperJournal+"="+journal,
		helperURL+"="+url,
		helperPrefix+"="+prefix,
		helperCount+"="+strconv.Itoa(recordsPerKill),
	), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, false, err
	}
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}

	// The reader owns keys and closed until it returns (wg).
	var wg sync.WaitGroup
	wg.Add(1)
	ready := make(chan struct{})
	var closed bool
	go func() {
		defer wg.Done()
		readyOnce := sync.OnceFunc(func() { close(ready) })
		defer readyOnce() // EOF: the child is gone, stop waiting for it
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch line := sc.Text(); line {
			case "ready":
				readyOnce()
			case "closed":
				closed = true
			default:
				i, err := strconv.Atoi(line)
				if err != nil {
					continue
				}
				keys = append(keys, fmt.Sprintf("%s-%06d", prefix, i))
			}
		}
	}()

	// The killer: wait for the moment, then SIGKILL (which fails harmlessly
	// if the child has exited and been reaped already).
	killedCh := make(chan bool, 1)
	go func() {
		if kill.afterReady {
			<-ready
		}
		if kill.after != nil {
			<-kill.after
		}
		time.Sleep(kill.delay)
		killedCh <- cmd.Process.Kill() == nil
	}()
	wg.Wait() // stdout reaches EOF when the child exits or is killed
	werr := cmd.Wait()
	// Kill also succeeds on a child that has exited on its own and is not
	// yet reaped: the round was killed only if the child died of SIGKILL.
	killed = <-killedCh && diedOfSIGKILL(cmd.ProcessState)
	if killed {
		// Whatever the child printed before it died counts. A failure it
		// reported before the kill (its own "helper: ..." errors, the race
		// detector's report, whose exit status the kill took away) fails
		// the round.
		if msg := stderr.String(); strings.Contains(msg, "helper:") || strings.Contains(msg, "DATA RACE") {
			return keys, true, fmt.Errorf("child reported a failure before it was killed:\n%s", msg)
		}
		return keys, true, nil
	}
	if werr != nil {
		return keys, false, fmt.Errorf("child exited: %v\n%s", werr, stderr.String())
	}
	if !closed {
		return keys, false, fmt.Errorf("child exited without closing its producer\n%s", stderr.String())
	}
	return keys, false, nil
}

// diedOfSIGKILL reports whether the process whose state ps is was ended by
// SIGKILL.
func diedOfSIGKILL(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
