package walcat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/testutil"
	"github.com/walpub/walpub/wal"
)

// transcript runs walcat commands on dir and returns what each printed,
// with dir shown as $DIR: the body of a golden file. An argument starting
// with $DIR ($DIR.key, a file beside the log) starts with dir instead.
func transcript(t *testing.T, dir string, cmds ...string) string {
	t.Helper()
	var b strings.Builder
	for i, cmd := range cmds {
		if i > 0 {
			b.WriteString("\n")
		}
		args := strings.Fields(cmd)
		for j, a := range args {
			if rest, ok := strings.CutPrefix(a, "$DIR"); ok {
				args[j] = dir + rest
			}
		}
		r := walcat(t, args...)
		fmt.Fprintf(&b, "$ walcat %s\n# exit %d\n", cmd, r.code)
		if r.stdout != "" {
			b.WriteString(r.stdout)
			if !strings.HasSuffix(r.stdout, "\n") {
				b.WriteString("\n# (no newline at the end)\n")
			}
		}
		if r.stderr != "" {
			b.WriteString("# stderr:\n")
			b.WriteString(r.stderr)
		}
	}
	return normalize(b.String(), map[string]string{dir: "$DIR"})
}

var readCommands = []string{
	"stats $DIR",
	"stats --json $DIR",
	"verify $DIR",
	"verify --json $DIR",
	"dump $DIR",
	"dump --json $DIR",
}

func TestGoldenPlain(t *testing.T) {
	dir := t.TempDir()
	buildPlainLog(t, dir)
	golden(t, "plain", transcript(t, dir, append(readCommands,
		"dump --pending --from 2 --to 9 --preview 8 $DIR",
		"dump $DIR --from 30 --format raw --preview 0",
		"dump --format kafka --to 1 $DIR",
	)...))
}

func TestGoldenCompressed(t *testing.T) {
	dir := t.TempDir()
	buildCompressedLog(t, dir)
	golden(t, "compressed", transcript(t, dir, readCommands...))
}

// TestGoldenEncrypted: stats and verify of an encrypted log need no key
// and say it is encrypted; dump needs --key-file, refuses a key file its
// group or others may read, one that is not 64 hex characters, and a key
// that is not the log's; with the key, dump and dump --salvage print the
// records. Nothing in the output depends on the random nonces.
func TestGoldenEncrypted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	key := bytes.Repeat([]byte{0x11}, 32)
	for name, c := range map[string]struct {
		content string
		perm    os.FileMode
	}{
		".key":       {strings.Repeat("11", 32) + "\n", 0o600},
		".other.key": {strings.Repeat("22", 32), 0o400},
		".open.key":  {strings.Repeat("11", 32), 0o644},
		".bad.key":   {"not a key", 0o600},
	} {
		if err := os.WriteFile(dir+name, []byte(c.content), c.perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir+name, c.perm); err != nil {
			t.Fatal(err)
		}
	}
	l := openLog(t, dir, wal.WithEncryption(key), wal.WithCompression(wal.CompressionZstd))
	mustAppend(t, l, []byte("first secret"))
	mustAppend(t, l, bytes.Repeat([]byte("compressible secret "), 20))
	if _, err := l.AppendBatch([][]byte{[]byte("batched 1"), []byte("batched 2")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	golden(t, "encrypted", transcript(t, dir,
		"stats $DIR",
		"stats --json $DIR",
		"verify $DIR",
		"verify --json $DIR",
		"dump $DIR",
		"dump --key-file $DIR.key $DIR",
		"dump --json --pending --key-file $DIR.key $DIR",
		"dump --salvage --key-file $DIR.key $DIR",
		"dump --key-file $DIR.other.key $DIR",
		"dump --key-file $DIR.open.key $DIR",
		"dump --key-file $DIR.bad.key $DIR",
	))
}

func TestGoldenDamaged(t *testing.T) {
	dir := t.TempDir()
	buildDamagedLog(t, dir)
	golden(t, "damaged", transcript(t, dir,
		"verify $DIR",
		"verify --json $DIR",
		"dump $DIR",
		"stats $DIR",
		"dump --salvage --preview 12 $DIR",
		"dump --salvage --raw --from 4 --to 6 $DIR",
		"repair --dry-run $DIR",
		"repair $DIR",
		"verify $DIR",
		"repair $DIR",
		"dump --pending $DIR",
	))
	// The cut bytes are in the side file, nothing lost.
	side, _ := filepath.Glob(filepath.Join(dir, "repair-*.cut"))
	if len(side) != 1 {
		t.Fatalf("side files: %v", side)
	}
	b, err := os.ReadFile(side[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, bigPayload(32, 3000)) {
		t.Errorf("the side file does not hold the last record's bytes")
	}
}

func TestGoldenLostCheckpoint(t *testing.T) {
	dir := t.TempDir()
	buildLostCheckpointLog(t, dir)
	golden(t, "lost-checkpoint", transcript(t, dir,
		"verify $DIR",
		"repair --dry-run $DIR",
		"repair $DIR",
		"verify $DIR",
		"stats $DIR",
		"dump --pending --to 1 $DIR",
	))
	if side, _ := filepath.Glob(filepath.Join(dir, "repair-*.cut")); len(side) != 0 {
		t.Fatalf("repair of a lost checkpoint moved bytes aside: %v", side)
	}
}

func TestGoldenTorn(t *testing.T) {
	dir := t.TempDir()
	buildTornLog(t, dir)
	golden(t, "torn", transcript(t, dir, "verify $DIR", "verify --json $DIR", "stats $DIR", "repair $DIR"))
}

func TestGoldenRaw(t *testing.T) {
	dir := t.TempDir()
	buildPlainLog(t, dir)
	r := walcat(t, "dump", "--raw", "--to", "8", dir)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "plain.raw", r.stdout)
	r = walcat(t, "dump", "--raw", "--delim", "", "--to", "3", dir)
	if want := "helloworld\x00\x01\xfe\xff"; r.stdout != want {
		t.Errorf("--delim '': got %q, want %q", r.stdout, want)
	}
	r = walcat(t, "dump", "--raw", "--delim", `\x00`, "--to", "2", dir)
	if want := "hello\x00world\x00"; r.stdout != want {
		t.Errorf(`--delim \x00: got %q, want %q`, r.stdout, want)
	}
}

func TestGoldenHelp(t *testing.T) {
	var b strings.Builder
	for _, args := range [][]string{{"help"}, {"dump", "--help"}, {"verify", "-h"}, {"stats", "--help"},
		{"follow", "--help"}, {"repair", "--help"}, {"import-hop", "--help"}, {"dead-letters", "--help"}} {
		r := walcat(t, args...)
		if r.code != ExitOK || r.stderr != "" {
			t.Errorf("walcat %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		fmt.Fprintf(&b, "$ walcat %s\n%s\n", strings.Join(args, " "), r.stdout)
	}
	golden(t, "help", b.String())
}

func idHeader(i byte) kgo.RecordHeader {
	id := make([]byte, 16)
	for j := range id {
		id[j] = 0xa0 + i<<4 | byte(j) // not UTF-8, like a random id
	}
	return kgo.RecordHeader{Key: "_id", Value: id}
}

var kafkaTime = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

// kafkaRecords are the records the journal tests write.
func kafkaRecords() []*kgo.Record {
	return []*kgo.Record{
		{Key: []byte("k1"), Value: []byte("line 1"), Headers: []kgo.RecordHeader{idHeader(1)}, Timestamp: kafkaTime},
		{Value: []byte("line 2"), Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("walcat test")}, idHeader(2)},
			Timestamp: kafkaTime.Add(time.Second)},
		{Topic: "other", Key: []byte{0xff, 0x00}, Value: []byte{0xde, 0xad, 0xbe, 0xef},
			Headers: []kgo.RecordHeader{idHeader(3), {Key: "empty", Value: nil}}, Timestamp: kafkaTime.Add(2 * time.Second)},
		{Key: []byte("k4"), Value: nil, Headers: []kgo.RecordHeader{idHeader(4)}, Timestamp: kafkaTime.Add(3 * time.Second)},
	}
}

// buildKafkaJournal has the robust producer journal kafkaRecords with no
// broker to send them to: they all stay pending.
func buildKafkaJournal(t *testing.T, dir string) {
	t.Helper()
	p, err := kafka.NewProducer("kafka://"+testutil.DeadAddr(t)+"/walpub", kafka.WithJournal(dir),
		kafka.WithWAL(wal.WithSegmentSize(64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range kafkaRecords() {
		if err := p.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // leave everything journaled
	if err := p.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
}

func TestGoldenKafkaJournal(t *testing.T) {
	dir := t.TempDir()
	buildKafkaJournal(t, dir)
	golden(t, "kafka", transcript(t, dir,
		"stats $DIR",
		"dump $DIR",
		"dump --json $DIR",
		"dump --raw $DIR",
		"dump --format raw --to 1 $DIR",
	))
}

func TestGoldenDeadLetter(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	recs := kafkaRecords()
	mustAppend(t, l, kafka.EncodeDeadLetter(recs[0], "MESSAGE_TOO_LARGE: the request included a message larger than the max message size"))
	mustAppend(t, l, kafka.EncodeRecord(recs[1]))
	mustAppend(t, l, []byte("WPKR but not a journal record"))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	golden(t, "deadletter", transcript(t, dir,
		"dump $DIR",
		"dump --json $DIR",
		"dump --format kafka $DIR",
	))
}

func TestExitCodes(t *testing.T) {
	healthy := t.TempDir()
	buildPlainLog(t, healthy)
	damaged := t.TempDir()
	buildDamagedLog(t, damaged)
	missing := filepath.Join(t.TempDir(), "nope")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, ExitUsage},
		{[]string{"bogus", healthy}, ExitUsage},
		{[]string{"help"}, ExitOK},
		{[]string{"help", "dump"}, ExitOK},
		{[]string{"help", "bogus"}, ExitUsage},
		{[]string{"dump"}, ExitUsage},
		{[]string{"dump", healthy, healthy}, ExitUsage},
		{[]string{"dump", "--bogus", healthy}, ExitUsage},
		{[]string{"dump", "--format", "xml", healthy}, ExitUsage},
		{[]string{"dump", "--json", "--raw", healthy}, ExitUsage},
		{[]string{"dump", "--from", "5", "--to", "4", healthy}, ExitUsage},
		{[]string{"dump", "--help"}, ExitOK},
		{[]string{"dump", healthy}, ExitOK},
		{[]string{"dump", "--", healthy}, ExitOK},
		{[]string{"dump", missing}, ExitUsage},
		{[]string{"dump", file}, ExitUsage},
		{[]string{"dump", damaged}, ExitDamaged},
		{[]string{"dump", "--format", "kafka", healthy}, ExitDamaged},
		{[]string{"verify", healthy}, ExitOK},
		{[]string{"verify", damaged}, ExitDamaged},
		{[]string{"verify", "--json", damaged}, ExitDamaged},
		{[]string{"verify", missing}, ExitUsage},
		{[]string{"verify"}, ExitUsage},
		{[]string{"stats", healthy}, ExitOK},
		{[]string{"stats", damaged}, ExitDamaged},
		{[]string{"follow", "-n", "-1", healthy}, ExitUsage},
		{[]string{"follow", file}, ExitUsage},
		{[]string{"repair", healthy}, ExitOK},
		{[]string{"repair", "--dry-run", damaged}, ExitDamaged},
		{[]string{"repair", missing}, ExitUsage},
	} {
		r := walcat(t, tc.args...)
		if r.code != tc.code {
			t.Errorf("walcat %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.code, r.stdout, r.stderr)
		}
		if tc.code == ExitUsage && r.stderr == "" {
			t.Errorf("walcat %s: a usage error with nothing on stderr", strings.Join(tc.args, " "))
		}
	}
}

// TestReadOnly proves that dump, verify, stats and follow change no byte,
// size, modification time or mode of any file, and create or remove none,
// on healthy, compressed, torn (which Open would cut), damaged and
// journal logs.
func TestReadOnly(t *testing.T) {
	builders := map[string]func(*testing.T, string){
		"plain": buildPlainLog, "compressed": buildCompressedLog, "torn": buildTornLog,
		"damaged": buildDamagedLog, "kafka": buildKafkaJournal,
	}
	for name, build := range builders {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			build(t, dir)
			for _, args := range [][]string{
				{"dump", dir}, {"dump", "--json", dir}, {"dump", "--raw", dir}, {"dump", "--pending", "--from", "3", dir}, {"dump", "--salvage", dir},
				{"verify", dir}, {"verify", "--json", dir}, {"stats", dir}, {"stats", "--json", dir},
				{"repair", "--dry-run", dir},
				{"follow", "--interval", "10ms", "--from", "1", dir},
			} {
				before := snapshot(t, dir)
				if args[0] == "follow" {
					checkFollow(t, dir, args)
				} else if r := walcat(t, args...); r.code == ExitUsage {
					t.Fatalf("walcat %s: %s", strings.Join(args, " "), r.stderr)
				}
				compareSnapshots(t, "walcat "+strings.Join(args, " "), before, snapshot(t, dir))
			}
		})
	}
}

// checkFollow runs walcat with args, a follow of dir from seq 1, and checks
// that it did its work: on a log that dump reads, it prints what
// `dump --from 1` prints and keeps following until cancelled; on a log dump
// cannot read, it gives up by itself, after its retries, with dump's exit
// code.
func checkFollow(t *testing.T, dir string, args []string) {
	t.Helper()
	want := walcat(t, "dump", "--from", "1", dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, &out, &errOut) }()
	deadline := time.After(time.Minute)
	if want.code != ExitOK {
		select {
		case code := <-done:
			if code != want.code {
				t.Fatalf("follow of a log dump cannot read: exit %d, want dump's %d\n%s", code, want.code, errOut.String())
			}
		case <-deadline:
			t.Fatalf("follow of a log dump cannot read (exit %d) has not given up within a minute", want.code)
		}
		return
	}
	if want.stdout == "" {
		t.Fatal("dump --from 1 printed nothing: the follow check needs records")
	}
	for out.String() != want.stdout {
		select {
		case code := <-done:
			t.Fatalf("follow exited %d before printing what dump prints:\n%s\nwant:\n%s\nstderr: %s", code, out.String(), want.stdout, errOut.String())
		case <-deadline:
			t.Fatalf("follow printed within a minute:\n%s\nwant what dump prints:\n%s", out.String(), want.stdout)
		case <-time.After(5 * time.Millisecond):
		}
	}
	// A few more looks at the log, then stop.
	time.Sleep(50 * time.Millisecond)
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("follow: exit %d after cancel: %s", code, errOut.String())
	}
	if got := out.String(); got != want.stdout {
		t.Fatalf("follow printed more than dump:\n%s\nwant:\n%s", got, want.stdout)
	}
}

// TestFollowConcurrentWriter has a wal.Log append while follow runs: follow
// prints the last records, then every new one, once, in order, across
// segment rotations.
func TestFollowConcurrentWriter(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, []byte(fmt.Sprintf("early %d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testutil.SyncBuffer
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"follow", "-n", "2", "--interval", "5ms", "--preview", "12", dir}, &out, &errOut)
	}()
	waitFor(t, &out, "seq=5 ")

	const last = 60 // 3000-byte records: the log rotates about every 21
	for i := 6; i <= last; i++ {
		payload := bigPayload(i, 3000)
		if i%7 == 0 {
			if _, err := l.AppendBatch([][]byte{payload, []byte("batch tail")}); err != nil {
				t.Fatal(err)
			}
			i++
		} else {
			mustAppend(t, l, payload)
		}
		if i%10 == 0 {
			time.Sleep(2 * time.Millisecond) // let follow look in between, sometimes
		}
	}
	waitFor(t, &out, fmt.Sprintf("seq=%d ", last))
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("follow exit %d: %s", code, errOut.String())
	}
	seqRE := regexp.MustCompile(`(?m)^seq=(\d+) `)
	var seqs []int
	for _, m := range seqRE.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		seqs = append(seqs, n)
	}
	if len(seqs) != last-3 {
		t.Fatalf("follow printed %d records, want %d (seqs 4..%d): %v", len(seqs), last-3, last, seqs)
	}
	for i, s := range seqs {
		if s != i+4 {
			t.Fatalf("record %d printed is seq %d, want %d: %v", i, s, i+4, seqs)
		}
	}
	if !strings.Contains(out.String(), `seq=4 pending seg=00000000000000000001.seg off=`) ||
		!strings.Contains(out.String(), `data="early 4"`) {
		t.Errorf("follow output does not start with the last records:\n%s", out.String())
	}
	if errOut.String() != "" {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// TestFollowWaitsForDir: follow on a directory that does not exist yet
// waits for it and prints the records of the log created there.
func TestFollowWaitsForDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut testutil.SyncBuffer
	done := make(chan int)
	go func() { done <- Main(ctx, []string{"follow", "--json", "--interval", "5ms", dir}, &out, &errOut) }()
	waitFor(t, &errOut, "waiting")
	l := openLog(t, dir)
	mustAppend(t, l, []byte("first"))
	waitFor(t, &out, `"data":"first"`)
	cancel()
	<-done
	l.Close()
	if !strings.Contains(out.String(), `{"seq":1,"acked":false,`) {
		t.Fatalf("output %q, stderr %q", out.String(), errOut.String())
	}
}

// waitFor waits until out contains want; it gives up after a minute, a
// bound for a hung follow, not a timing assertion.
func waitFor(t *testing.T, out *testutil.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within a minute:\n%s", want, out.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestJSONLinesParse: every line of --json output is one valid JSON object.
func TestJSONLinesParse(t *testing.T) {
	for name, build := range map[string]func(*testing.T, string){"plain": buildPlainLog, "compressed": buildCompressedLog, "kafka": buildKafkaJournal} {
		dir := t.TempDir()
		build(t, dir)
		for _, cmd := range [][]string{{"dump", "--json", dir}, {"stats", "--json", dir}, {"verify", "--json", dir}} {
			r := walcat(t, cmd...)
			for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Errorf("%s: walcat %s: %v in %s", name, cmd[0], err, line)
				}
			}
		}
	}
}

// TestFollowSkipsIdleLooks: follow takes a fresh look (which verifies the
// whole log) only when something was appended: a record, an ack frame, a
// new segment. Between appends it sees nothing changed and skips it.
func TestFollowSkipsIdleLooks(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	for i := range 3 {
		mustAppend(t, l, []byte(fmt.Sprintf("record %d", i)))
	}
	f, out, _ := newTestFollower(t, dir, 1)
	look := func(wantNew int) {
		t.Helper()
		before := f.next
		f.mustLook(t)
		if got := int(f.next - before); got != wantNew {
			t.Fatalf("look printed %d new records, want %d", got, wantNew)
		}
		if !f.unchanged() {
			t.Fatal("right after a look, the log counts as changed")
		}
	}
	look(3)
	mustAppend(t, l, []byte("one more"))
	if f.unchanged() {
		t.Fatal("an appended record went unnoticed")
	}
	look(1)
	if err := l.Ack(1); err != nil {
		t.Fatal(err)
	}
	if f.unchanged() {
		t.Fatal("an appended ack frame went unnoticed")
	}
	look(0)
	segs := l.Stats().Segments
	n := 0
	for l.Stats().Segments == segs {
		mustAppend(t, l, bigPayload(n, 3000))
		n++
	}
	if f.unchanged() {
		t.Fatal("a new segment went unnoticed")
	}
	look(n)
	if got := strings.Count(out.String(), "\n"); got != 4+n {
		t.Fatalf("printed %d lines, want %d:\n%s", got, 4+n, out.String())
	}
}

// TestDumpInterrupted: a dump its context ended (an interrupt) before the
// last record fails (exit 1) and says its output is incomplete, instead
// of exiting 0 as if it had printed the whole log.
func TestDumpInterrupted(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append([]byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := walcatCtx(t, ctx, "dump", dir)
	if r.code != ExitDamaged || !strings.Contains(r.stderr, "interrupted") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, "\n"); n >= 3 {
		t.Errorf("printed %d lines: the dump was not cut short", n)
	}
	if r := walcat(t, "dump", dir); r.code != ExitOK || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("a whole dump: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestNoLogDir: verify, stats, dump and repair on a directory that holds
// no log (an empty directory, one with other files) fail as for a path
// that is not a directory (exit 2) saying so, and change nothing. Before, verify called such a directory a
// healthy log of 0 segments.
func TestNoLogDir(t *testing.T) {
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("not a log"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir(), other} {
		for _, cmd := range []string{"verify", "stats", "dump", "repair"} {
			before := snapshot(t, dir)
			r := walcat(t, cmd, dir)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "holds no log") {
				t.Errorf("walcat %s on a directory without a log: exit %d, want %d and an error saying so\nstdout: %sstderr: %s", cmd, r.code, ExitUsage, r.stdout, r.stderr)
			}
			compareSnapshots(t, "walcat "+cmd, before, snapshot(t, dir))
		}
	}
}
