package kafka

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/walpub/walpub/internal/kfaketest"
)

// steer partitions every record to the partition it holds, as a partitioner
// that does not keep a record on one partition (kgo's default, for keyless
// records, sticks to a partition for a while, then moves on).
type steer struct{ part *atomic.Int32 }

func (s steer) ForTopic(string) kgo.TopicPartitioner { return s }
func (s steer) RequiresConsistency(*kgo.Record) bool { return false }
func (s steer) Partition(_ *kgo.Record, n int) int   { return int(s.part.Load()) % n }

// partitioned signals when the client buffers a record of topic u.
type partitioned chan struct{}

func (c partitioned) OnProduceRecordPartitioned(r *kgo.Record, _ int32) {
	if r.Topic == "u" {
		close(c)
	}
}

// TestSoloResendOtherPartition: record A, which fits alone, fails with
// MESSAGE_TOO_LARGE (its batch is judged as a whole) and is resent alone.
// The partitioner sends it to another partition this time, where record
// N, handed to the client before A's failure was collected, is waiting for
// its linger. A must not be sent until N is reported: batched with N it
// fails again and, having been sent "alone", goes to the dead-letter log.
//
// The scenario needs N to linger in the client while A's request is held.
// On a loaded machine the client has sent N at once, now and then (the
// stats showed N delivered and A in flight, never N in flight beside A):
// such a try checks nothing, and the test tries again, up to soloTries
// times, on a new cluster.
func TestSoloResendOtherPartition(t *testing.T) {
	t.Parallel()
	for try := 1; try <= soloTries; try++ {
		if soloResendOtherPartition(t) {
			return
		}
		t.Logf("try %d: the client sent N before it was seen lingering beside A: the scenario did not arise", try)
	}
	t.Fatalf("in %d tries, the client sent N at once each time: the scenario never arose", soloTries)
}

// soloTries bounds the tries of TestSoloResendOtherPartition.
const soloTries = 3

// soloResendOtherPartition is one try of TestSoloResendOtherPartition; it
// reports false, having checked nothing, if N did not linger.
func soloResendOtherPartition(t *testing.T) bool {
	// Partitions 0 and 1 of t on different brokers: the answer to A's
	// request does not make the client send N's lingering batch.
	c := kfaketest.New(t, kfake.NumBrokers(2), kfake.SeedTopics(2, "t"), kfake.SeedTopics(1, "u"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	if l0 := c.LeaderFor("t", 0); c.LeaderFor("t", 1) == l0 {
		if err := c.MoveTopicPartition("t", 1, 1-l0); err != nil {
			t.Fatal(err)
		}
	}
	var n atomic.Int64
	held, answer := make(chan struct{}), make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if n.Add(1) != 1 {
			return nil, nil, false
		}
		// A's first request: held until N is in flight, then refused.
		close(held)
		c.SleepControl(func() { <-answer })
		preq := req.(*kmsg.ProduceRequest)
		resp := preq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range preq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.MessageTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var part atomic.Int32
	mBuffered := make(partitioned)
	p, _ := newTestProducer(t, kfaketest.URL(c, "t"),
		WithClient(kgo.RecordPartitioner(steer{&part}), kgo.ProducerLinger(time.Minute), kgo.WithHooks(mBuffered)))
	ctx := ctxTimeout(t, 30*time.Second)
	val := func(c byte) []byte { // 15000 bytes: one fits, two do not
		b := make([]byte, 15000)
		rand.Read(b) // the client compresses batches
		b[0] = c
		return b
	}
	if err := p.Write(ctx, &kgo.Record{Value: val('A')}); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, p, "A in flight", func(st Stats) bool { return st.InFlight == 1 })
	// Send A without waiting for its linger: a client Flush, which returns
	// once A's request is held.
	fctx, cancel := context.WithCancel(ctx)
	go func() { <-held; cancel() }()
	_ = p.client.Flush(fctx)
	part.Store(1)
	if err := p.Write(ctx, &kgo.Record{Value: val('N')}); err != nil {
		t.Fatal(err)
	}
	if st := waitStats(t, ctx, p, "N in flight", func(st Stats) bool { return st.InFlight == 2 || st.Delivered > 0 }); st.InFlight != 2 {
		// N sent at once, and delivered: A's request is still held.
		t.Logf("stats %+v, produce requests %d", st, n.Load())
		close(answer)
		return false
	}
	close(answer)
	waitStats(t, ctx, p, "A's failure", func(st Stats) bool { return st.Retries >= 1 })
	// The sender took A's failure and decided whether to resend A before it
	// reads M (holds go first), so once M is buffered it has decided.
	if err := p.Write(ctx, &kgo.Record{Topic: "u", Value: []byte("M")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mBuffered:
	case <-ctx.Done():
		t.Fatal("M was not handed to the client")
	}
	if err := p.client.Flush(ctx); err != nil { // sends N without its linger
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	t.Logf("stats %+v, produce requests %d", st, n.Load())
	if st.DeadLettered != 0 || st.Delivered != 3 {
		t.Fatalf("stats %+v: want 3 delivered, none dead-lettered (each record fits alone)", st)
	}
	return true
}
