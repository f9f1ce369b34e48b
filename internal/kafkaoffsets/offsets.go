// Package kafkaoffsets asks a Kafka cluster where its partitions end, and
// reads partitions up to there, for the producer's read-back, the tools and
// the tests.
package kafkaoffsets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnknownTopic is returned (wrapped) by End for a topic the cluster does
// not have.
var ErrUnknownTopic = errors.New("kafkaoffsets: unknown topic")

// End returns the end offset of every partition of topic: the offset the
// next record produced to it will get.
func End(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	return listEnds(ctx, cl, topic, 0)
}

// Stable returns the last stable offset of every partition of topic: where
// a read_committed consumer stops, before the first record of a
// transaction that is still open or whose commit or abort markers are not
// yet written. With no transaction in flight it equals End.
func Stable(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	return listEnds(ctx, cl, topic, 1)
}

// listEnds returns the ends of topic's partitions as a consumer with
// isolation level isolation (0 read_uncommitted, 1 read_committed) sees
// them.
func listEnds(ctx context.Context, cl *kgo.Client, topic string, isolation int8) (map[int32]int64, error) {
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("metadata: topic %q not in the answer", topic)
	}
	if err := kerr.ErrorForCode(mresp.Topics[0].ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("metadata: %w %q", ErrUnknownTopic, topic)
		}
		return nil, fmt.Errorf("metadata: topic %q: %w", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // the end
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	ends := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, err)
			}
			ends[p.Partition] = p.Offset
		}
	}
	return ends, nil
}

// Read consumes topic's partitions, each from its offset in from (0 when
// missing) up to its offset in to (exclusive), and calls fn with every data
// record in offset order per partition; partitions whose to is not above
// from are not read. opts are the consumer client's options (brokers,
// authentication, kgo.FetchIsolationLevel, ...); Read adds the partitions
// to consume and kgo.KeepControlRecords: a partition is read to its end
// once any offset at or beyond to-1 is seen, which with transactions may
// be a commit or abort marker (not passed to fn) rather than a record.
// Read returns ctx's error, naming the partitions not read to their end,
// if ctx ends first.
func Read(ctx context.Context, opts []kgo.Opt, topic string, from, to map[int32]int64, fn func(*kgo.Record)) error {
	offsets := map[int32]kgo.Offset{}
	left := map[int32]bool{}
	for p, end := range to {
		if end > from[p] {
			offsets[p] = kgo.NewOffset().At(from[p])
			left[p] = true
		}
	}
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.KeepControlRecords())...)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reading %s: partitions %v not read to their end: %w", topic, slices.Sorted(maps.Keys(left)), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end := to[r.Partition]
			if r.Offset >= end-1 {
				delete(left, r.Partition)
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// Consume reads every data record of topic from the start of each
// partition to the end it has when Consume starts (see Read: transaction
// markers are passed over, not returned), calling fn for each, in offset
// order per partition, and returns how many it read. opts configure the
// clients (kgo.SeedBrokers, SASL, TLS, kgo.FetchIsolationLevel). It ends
// with ctx's error if the records do not all arrive before ctx ends.
func Consume(ctx context.Context, opts []kgo.Opt, topic string, fn func(*kgo.Record)) (int64, error) {
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	ends, err := End(ctx, admin, topic)
	admin.Close()
	if err != nil {
		return 0, err
	}
	n := int64(0)
	err = Read(ctx, opts, topic, nil, ends, func(r *kgo.Record) {
		n++
		fn(r)
	})
	return n, err
}
