package headers

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestValue(t *testing.T) {
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}, {Key: "a", Value: []byte("2")}}}
	for _, c := range []struct {
		key  string
		want string
		ok   bool
	}{{"a", "1", true}, {"b", "", true}, {"c", "", false}} {
		v, ok := Value(r, c.key)
		if string(v) != c.want || ok != c.ok {
			t.Errorf("Value(%q) = %q, %v; want %q, %v", c.key, v, ok, c.want, c.ok)
		}
	}
}
