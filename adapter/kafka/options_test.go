package kafka

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url     string
		brokers []string
		topic   string
	}{
		{"kafka://localhost:9092/events", []string{"localhost:9092"}, "events"},
		{"KAFKA://h1:1,h2:2/t.x-y_z", []string{"h1:1", "h2:2"}, "t.x-y_z"},
		{"kafka://host/topic", []string{"host:9092"}, "topic"},
		{"kafka://host:1234", []string{"host:1234"}, ""},
		{"kafka://host:1234/", []string{"host:1234"}, ""},
		{"kafka://[::1]:9093/t", []string{"[::1]:9093"}, "t"},
		{"kafka://[::1]/t", []string{"[::1]:9092"}, "t"},
		{"kafka://10.0.0.1:9092,10.0.0.2/t", []string{"10.0.0.1:9092", "10.0.0.2:9092"}, "t"},
		{"kafka://[fe80::1%eth0]/t", []string{"[fe80::1%eth0]:9092"}, "t"},
	}
	for _, c := range good {
		got, err := parseURL(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if !slices.Equal(got.brokers, c.brokers) || got.topic != c.topic {
			t.Fatalf("%s: got %v %q, want %v %q", c.url, got.brokers, got.topic, c.brokers, c.topic)
		}
		if brokers, topic, err := ParseURL(c.url); err != nil || !slices.Equal(brokers, c.brokers) || topic != c.topic {
			t.Fatalf("ParseURL(%s): %v %q %v, want %v %q", c.url, brokers, topic, err, c.brokers, c.topic)
		}
	}
	bad := []string{
		"", "localhost:9092/t", "http://host:9092/t", "kafka://", "kafka:///t",
		"kafka://host:0/t", "kafka://host:65536/t", "kafka://host:x/t", "kafka://host:/t",
		"kafka://a,,b/t", "kafka://user:pass@host/t", "kafka://host/t?x=1", "kafka://host/t#f",
		"kafka://host/a/b", "kafka://host/a,b", "kafka://host/..", "kafka://::1/t",
		"kafka://host/" + strings.Repeat("a", 250),
		// Brackets: one pair around an IPv6 address, or none.
		"kafka://[::1/t", "kafka://[a]b]/t", "kafka://[::1]]/t", "kafka://[::1]9092/t",
		"kafka://[::1]:9092:9093/t", "kafka://[10.0.0.1]/t", "kafka://[host]/t", "kafka://a]b/t",
	}
	for _, u := range bad {
		if _, err := parseURL(u); !errors.Is(err, ErrInvalidURL) {
			t.Fatalf("%q: %v, want ErrInvalidURL", u, err)
		}
		if _, _, err := ParseURL(u); !errors.Is(err, ErrInvalidURL) {
			t.Fatalf("ParseURL(%q): %v, want ErrInvalidURL", u, err)
		}
		if _, err := NewProducer(u, WithJournal(t.TempDir())); !errors.Is(err, ErrInvalidURL) {
			t.Fatalf("NewProducer(%q): %v, want ErrInvalidURL", u, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := map[string]Option{
		"empty journal":   WithJournal(""),
		"zero window":     WithMaxInFlight(0, 1),
		"zero bytes":      WithMaxInFlight(1, 0),
		"zero backoff":    WithRetryBackoff(0, time.Second),
		"inverted":        WithRetryBackoff(time.Second, time.Millisecond),
		"sasl mechanism":  WithSASL("GSSAPI", "u", "p"),
		"sasl empty user": WithSASL("PLAIN", "", "p"),
	}
	for name, o := range bad {
		if _, err := NewProducer("kafka://127.0.0.1:1/t", WithJournal(t.TempDir()), o); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	for _, m := range []string{"PLAIN", "scram-sha-256", "SCRAM-SHA-512"} {
		c := defaultConfig()
		WithSASL(m, "user", "pass")(&c)
		if err := c.validate(); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		opts, err := c.clientOptions([]string{"h:1"})
		if err != nil || len(opts) != 7 { // the producer's 6 and SASL
			t.Fatalf("%s: %d client options, %v", m, len(opts), err)
		}
	}
	c := defaultConfig()
	WithTLS(nil)(&c)
	WithClient(kgo.ClientID("x"))(&c)
	WithClient(kgo.ClientID("y"))(&c)
	if err := c.validate(); err != nil || c.tls == nil || c.logger == nil {
		t.Fatalf("validate: %v, tls %v, logger %v", err, c.tls, c.logger)
	}
	if opts, _ := c.clientOptions([]string{"h:1"}); len(opts) != 9 {
		t.Fatalf("%d client options, want the producer's 6, TLS and the 2 given", len(opts))
	}
	if c.journal != DefaultJournal || c.maxInFlight != defaultMaxInFlight {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestClassify(t *testing.T) {
	cases := map[error]failKind{
		kerr.MessageTooLarge:              failAlone,
		kerr.RecordListTooLarge:           failAlone,
		kerr.InvalidRecord:                failAlone,
		kerr.CorruptMessage:               failAlone,
		kerr.InvalidTopicException:        failDeadLetter,
		kerr.TopicAuthorizationFailed:     failRetry,
		kerr.ClusterAuthorizationFailed:   failRetry,
		kerr.NotLeaderForPartition:        failRetry,
		kerr.UnknownTopicOrPartition:      failRetry,
		kerr.OutOfOrderSequenceNumber:     failRetry,
		kerr.SaslAuthenticationFailed:     failRetry,
		kgo.ErrClientClosed:               failRetry,
		kgo.ErrRecordTimeout:              failRetry,
		errors.New("connection refused"):  failRetry,
		errors.Join(kerr.MessageTooLarge): failAlone,
	}
	for err, want := range cases {
		if got := classify(err); got != want {
			t.Fatalf("%v: %v, want %v", err, got, want)
		}
	}
}

func TestClientOptionsRefused(t *testing.T) {
	for name, o := range map[string]kgo.Opt{
		"manual flushing": kgo.ManualFlushing(),
		"transactional":   kgo.TransactionalID("x"),
	} {
		if _, err := NewProducer("kafka://127.0.0.1:1/t", WithJournal(t.TempDir()), WithClient(o)); !errors.Is(err, ErrInvalidOption) {
			t.Fatalf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
}

func TestCheckTopic(t *testing.T) {
	for _, topic := range []string{"t", "a.b-c_D1", strings.Repeat("a", 249)} {
		if err := CheckTopic(topic); err != nil {
			t.Errorf("CheckTopic(%q): %v", topic, err)
		}
	}
	for _, topic := range []string{"", ".", "..", "a b", "a/b", "é", strings.Repeat("a", 250)} {
		if err := CheckTopic(topic); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("CheckTopic(%q): %v, want ErrInvalidTopic", topic, err)
		}
	}
}
