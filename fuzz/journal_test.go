package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/adapter/kafka"
	"github.com/walpub/walpub/internal/testutil"
)

// Bits of FuzzJournalRecord's nulls argument.
const (
	nullKey   = 1 << 0
	nullValue = 1 << 1
	deadLet   = 1 << 2 // encode as a dead-letter entry with the reason
)

// recordFrom builds a record from FuzzJournalRecord's structured
// arguments. Headers come from hdrs: each byte pair (k, v) adds a header
// whose key is k%8 bytes of hdrs' tail and whose value is null when v is
// 0xff, else v%16 bytes.
func recordFrom(topic string, key, value []byte, nulls uint8, hdrs []byte, partition int32, ts int64) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: bytes.Clone(key), Value: bytes.Clone(value), Partition: partition}
	if r.Key == nil {
		r.Key = []byte{}
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	if nulls&nullKey != 0 {
		r.Key = nil
	}
	if nulls&nullValue != 0 {
		r.Value = nil
	}
	if ts != math.MinInt64 {
		r.Timestamp = time.UnixMilli(ts)
	}
	for len(hdrs) >= 2 && len(r.Headers) < 64 {
		kn, vn := int(hdrs[0]%8), hdrs[1]
		hdrs = hdrs[2:]
		k := string(hdrs[:min(kn, len(hdrs))])
		hdrs = hdrs[min(kn, len(hdrs)):]
		var v []byte
		if vn != 0xff {
			n := min(int(vn%16), len(hdrs))
			v = bytes.Clone(hdrs[:n])
			if v == nil {
				v = []byte{}
			}
			hdrs = hdrs[n:]
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	return r
}

// sameJournalRecord compares the fields the journal stores: topic,
// partition, timestamp (milliseconds; unset is the zero time), key, value
// and headers, nil and empty told apart.
func sameJournalRecord(a, b *kgo.Record) bool {
	eqNullable := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	if a.Topic != b.Topic || a.Partition != b.Partition || !eqNullable(a.Key, b.Key) || !eqNullable(a.Value, b.Value) ||
		len(a.Headers) != len(b.Headers) || a.Timestamp.IsZero() != b.Timestamp.IsZero() ||
		!a.Timestamp.IsZero() && a.Timestamp.UnixMilli() != b.Timestamp.UnixMilli() {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !eqNullable(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// encodeJournal encodes r as a record, or a dead-letter entry with reason.
func encodeJournal(r *kgo.Record, dead bool, reason string) []byte {
	if dead {
		return kafka.EncodeDeadLetter(r, reason)
	}
	return kafka.EncodeRecord(r)
}

// FuzzJournalRecord fuzzes the robust producer's journal record codec
// (adapter/kafka: EncodeRecord, EncodeDeadLetter, DecodeRecord,
// DecodeDeadLetter) from both sides: arbitrary bytes b to decode, and a
// record built from the structured arguments to encode.
//
// Invariants:
//   - decoding never panics; every error is a *kafka.RecordError that
//     errors.Is matches with kafka.ErrInvalidRecord;
//   - decoding allocates no more than 48 bytes per input byte plus 64 KiB
//     (the record, its copy of the bytes, and a header slot per two bytes
//     left; the slack absorbs what other goroutines of the process
//     allocate meanwhile);
//   - the decoded record owns its memory: scribbling over b afterwards
//     changes nothing in it;
//   - encode(decode(b)) == b for every b that decodes and is canonical (the
//     harness's own reading of the format: minimal uvarints, and no
//     explicit timestamp for the zero time, which the encoder writes as
//     unset); for a non-canonical b, encode(decode(b)) decodes to the same
//     record (the decoder accepting such inputs is a reported issue);
//     DecodeRecord and DecodeDeadLetter agree;
//   - decode(encode(x)) == x for every record x, EncodedLen(x) is the
//     encoded length, and kafka.IsRecord accepts the encoding.
func FuzzJournalRecord(f *testing.F) {
	f.Add([]byte{}, "", []byte{}, []byte{}, uint8(0), []byte{}, int32(0), int64(0), "")
	f.Fuzz(func(t *testing.T, b []byte, topic string, key, value []byte, nulls uint8, hdrs []byte, partition int32, ts int64, reason string) {
		// Decode side.
		var r *kgo.Record
		var why string
		var err error
		if n := testutil.LeastAlloc(1, func() { r, why, err = kafka.DecodeDeadLetter(b) }); n > 48*uint64(len(b))+64<<10 {
			t.Errorf("decoding %d bytes allocated %d bytes", len(b), n)
		}
		r2, err2 := kafka.DecodeRecord(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("DecodeRecord (%v) and DecodeDeadLetter (%v) disagree", err2, err)
		}
		if err != nil {
			var re *kafka.RecordError
			if !errors.As(err, &re) || !errors.Is(err, kafka.ErrInvalidRecord) {
				t.Fatalf("error %T %v is not a *kafka.RecordError matching ErrInvalidRecord", err, err)
			}
		} else {
			if !sameJournalRecord(r, r2) {
				t.Fatalf("DecodeRecord and DecodeDeadLetter decode differently")
			}
			dead := len(b) > 5 && b[5]&1 != 0
			orig := bytes.Clone(b)
			for i := range b {
				b[i] ^= 0xff
			}
			re := encodeJournal(r, dead, why)
			copy(b, orig)
			if !bytes.Equal(re, b) {
				if canonicalJournal(b) {
					t.Fatalf("decoded record re-encodes differently (or aliases the input):\n got  %x\n want %x", re, b)
				}
				// The decoder accepts an explicit timestamp of the zero
				// time's millisecond (which the encoder writes for a
				// non-zero time within that millisecond; both mean
				// "unset" to kgo), so such a record has two encodings.
				// The re-encoding must still mean the same record.
				if y, _, err := kafka.DecodeDeadLetter(re); err != nil || !sameJournalRecord(r, y) {
					t.Fatalf("re-encoding of a non-canonical input decodes differently: %v", err)
				}
			}
		}

		// Encode side.
		x := recordFrom(topic, key, value, nulls, hdrs, partition, ts)
		dead := nulls&deadLet != 0
		enc := encodeJournal(x, dead, reason)
		if !dead && len(enc) != kafka.EncodedLen(x) {
			t.Fatalf("EncodedLen %d, encoded %d bytes", kafka.EncodedLen(x), len(enc))
		}
		if !kafka.IsRecord(enc) {
			t.Fatalf("IsRecord rejects an encoded record")
		}
		y, gotWhy, err := kafka.DecodeDeadLetter(enc)
		if err != nil {
			t.Fatalf("encoded record %x does not decode: %v", enc, err)
		}
		if !sameJournalRecord(x, y) {
			t.Fatalf("record does not survive encoding:\n in  %+v\n out %+v", x, y)
		}
		if dead && gotWhy != reason || !dead && gotWhy != "" {
			t.Fatalf("reason %q decoded as %q", reason, gotWhy)
		}
	})
}

// canonicalJournal reports whether b, a journal record that decodes, is
// in the one form the encoder writes: every uvarint minimal, and the
// timestamp not the zero time's milliseconds. It reads the format of
// adapter/kafka/codec.go on its own.
func canonicalJournal(b []byte) bool {
	const fixed = 18
	if len(b) < fixed {
		return false
	}
	if ms := int64(binary.BigEndian.Uint64(b[6:])); ms != math.MinInt64 && time.UnixMilli(ms).IsZero() {
		return false
	}
	p := b[fixed:]
	ok := true
	uv := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			ok = false
			return 0
		}
		if n != len(binary.AppendUvarint(nil, v)) {
			ok = false
		}
		p = p[n:]
		return v
	}
	skip := func(n uint64) {
		if n > uint64(len(p)) {
			ok = false
			return
		}
		p = p[n:]
	}
	nullable := func() {
		if n := uv(); n > 0 {
			skip(n - 1)
		}
	}
	skip(uv()) // topic
	nullable() // key
	nullable() // value
	for n := uv(); ok && n > 0; n-- {
		skip(uv()) // header key
		nullable() // header value
	}
	if b[5]&1 != 0 {
		skip(uv()) // reason
	}
	return ok && len(p) == 0
}
