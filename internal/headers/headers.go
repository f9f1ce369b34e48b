// Package headers looks up Kafka record headers, for the producer, the
// tools and their tests.
package headers

import "github.com/twmb/franz-go/pkg/kgo"

// Value returns the value of r's first header named key, and whether r
// has one.
func Value(r *kgo.Record, key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}
