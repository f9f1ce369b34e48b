package walcat

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
)

// TestDumpOddTopicQuoted: the text dump quotes a journal record's topic
// unless it is a legal Kafka topic name (letters, digits, '.', '_',
// '-'), so that a damaged or crafted record's topic cannot pass for
// more output. Before, a topic holding a newline printed as a second
// line that read as another record, and one with a space as another
// field.
func TestDumpOddTopicQuoted(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	for _, topic := range []string{"plain.topic_1-x", "a\nseq=99 pending", "t key=\"x\"", "t\x1b[2J"} {
		mustAppend(t, l, kafka.EncodeRecord(&kgo.Record{Topic: topic, Value: []byte("v")}))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := walcat(t, "dump", dir)
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines for 4 records:\n%s", len(lines), r.stdout)
	}
	for i, want := range []string{` topic=plain.topic_1-x `, ` topic="a\nseq=99 pending" `, ` topic="t key=\"x\"" `, ` topic="t\x1b[2J" `} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: no %s in %s", i+1, want, lines[i])
		}
	}
}
