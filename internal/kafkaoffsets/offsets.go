// Package kafkaoffsets asks a Kafka cluster where its partitions end, for
// the tools and tests that read a topic back.
package kafkaoffsets

import (
	"context"
	"errors"
	"fmt"
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

// Consume reads every record of topic from the start of each partition to
// the end it has when Consume starts, calling fn for each, in offset order
// per partition, and returns how many it read. opts configure the clients
// (kgo.SeedBrokers, SASL, TLS). It ends with ctx's error if the records do
// not all arrive before ctx ends.
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
	offsets := map[int32]kgo.Offset{}
	want := int64(0)
	for p, end := range ends {
		if end > 0 {
			offsets[p] = kgo.NewOffset().At(0)
			want += end
		}
	}
	if want == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := int64(0)
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return got, fmt.Errorf("read %d of %d records of %s: %w", got, want, topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				got++
				fn(r)
			}
		})
	}
	return got, nil
}
