// Package kfaketest starts franz-go's in-process fake Kafka cluster
// (kfake) for the tests of the producer and the tools.
package kfaketest

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// New starts a one-broker kfake cluster with opts, closed when the test
// ends.
func New(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// URL is the kafka:// URL of topic on c, the form NewProducer and walpub
// take.
func URL(c *kfake.Cluster, topic string) string {
	return "kafka://" + strings.Join(c.ListenAddrs(), ",") + "/" + topic
}
