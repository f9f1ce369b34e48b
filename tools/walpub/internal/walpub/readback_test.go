package walpub

import (
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadBackReportsDuplicates: the embedded broker's topic holds a
// record twice (a copy with the same _id, as a resend leaves): the
// read-back names the duplicate. At least once allows it: not an error;
// under --exactly-once, which promises each record once to read_committed
// consumers (as the read-back reads), it is.
func TestReadBackReportsDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{{"AtLeastOnce", nil, ExitOK}, {"ExactlyOnce", []string{"--exactly-once"}, ExitError}} {
		t.Run(tc.name, func(t *testing.T) {
			testReadBackDuplicate(t, tc.args, tc.code)
		})
	}
}

func testReadBackDuplicate(t *testing.T, args []string, want int) {
	journal := filepath.Join(t.TempDir(), "j")
	pr, pw := io.Pipe()
	w := startSignalled(pr, append([]string{"--journal", journal}, args...)...)
	if _, err := io.WriteString(pw, "a\n"); err != nil {
		t.Fatal(err)
	}
	addr := regexp.MustCompile(`embedded Kafka broker \(kfake\) on (\S+), topic`)
	var m []string
	waitUntil(t, "the embedded broker", func() bool {
		m = addr.FindStringSubmatch(w.errOut.String())
		return m != nil
	})
	var recs []*kgo.Record
	waitUntil(t, "the record on the topic", func() bool {
		recs = readTopic(t, []string{m[1]}, DefaultTopic)
		return len(recs) == 1
	})
	// The fault: a second copy of the record, its _id included.
	cl, err := kgo.NewClient(kgo.SeedBrokers(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	dup := &kgo.Record{Topic: DefaultTopic, Value: recs[0].Value, Headers: recs[0].Headers}
	err = cl.ProduceSync(context.Background(), dup).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	code := <-w.done
	out, errOut := w.out.String(), w.errOut.String()
	if code != want || !strings.Contains(out, `topic "walpub" holds 2 records, 1 distinct _id`) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "(1 duplicate: a record sent again") {
		t.Errorf("the duplicate is not reported:\n%s%s", out, errOut)
	}
	if (want == ExitError) != strings.Contains(errOut, "--exactly-once, yet the topic") {
		t.Errorf("exit %d:\n%s%s", code, out, errOut)
	}
}
