package kafka

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/walpub/walpub/internal/testutil"
)

// codecCases are records that exercise every field and its edge values.
func codecCases() map[string]*kgo.Record {
	return map[string]*kgo.Record{
		"empty":       {},
		"null key":    {Topic: "t", Value: []byte("v")},
		"empty key":   {Topic: "t", Key: []byte{}, Value: []byte{}},
		"tombstone":   {Topic: "t", Key: []byte("k")},
		"all fields":  {Topic: "topic.name-1_x", Key: []byte("key"), Value: []byte("value"), Partition: 7, Timestamp: time.UnixMilli(1_700_000_000_123), Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "", Value: nil}, {Key: "c", Value: []byte{}}}},
		"negative ts": {Topic: "t", Timestamp: time.UnixMilli(-5)},
		"epoch":       {Topic: "t", Timestamp: time.UnixMilli(0)},
		"max ts":      {Topic: "t", Timestamp: time.UnixMilli(math.MaxInt64)},
		"partition":   {Topic: "t", Partition: -1},
		"binary":      {Topic: "t", Key: []byte{0, 0xff, 0x80}, Value: bytes.Repeat([]byte{0x80}, 300), Headers: []kgo.RecordHeader{{Key: "\x00\xff", Value: []byte{0}}}},
		"big value":   {Topic: strings.Repeat("t", 249), Value: bytes.Repeat([]byte("x"), 1<<20)},
	}
}

func sameRecord(t *testing.T, name string, got, want *kgo.Record) {
	t.Helper()
	ok := got.Topic == want.Topic && got.Partition == want.Partition &&
		bytes.Equal(got.Key, want.Key) && (got.Key == nil) == (want.Key == nil) &&
		bytes.Equal(got.Value, want.Value) && (got.Value == nil) == (want.Value == nil) &&
		got.Timestamp.Equal(want.Timestamp) && got.Timestamp.IsZero() == want.Timestamp.IsZero() &&
		len(got.Headers) == len(want.Headers)
	for i := 0; ok && i < len(got.Headers); i++ {
		g, w := got.Headers[i], want.Headers[i]
		ok = g.Key == w.Key && bytes.Equal(g.Value, w.Value) && (g.Value == nil) == (w.Value == nil)
	}
	if !ok {
		t.Fatalf("%s: decoded %+v, want %+v", name, got, want)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for name, want := range codecCases() {
		b := EncodeRecord(want)
		if len(b) != EncodedLen(want) {
			t.Fatalf("%s: EncodedLen %d, encoded %d bytes", name, EncodedLen(want), len(b))
		}
		if !IsRecord(b) {
			t.Fatalf("%s: IsRecord false", name)
		}
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameRecord(t, name, got, want)

		// The decoded record owns its memory.
		for i := range b {
			b[i] = 0xAA
		}
		sameRecord(t, name+" after reuse", got, want)

		// A dead-letter entry is the record plus a reason.
		dl := EncodeDeadLetter(want, "because: "+name)
		got, reason, err := DecodeDeadLetter(dl)
		if err != nil || reason != "because: "+name {
			t.Fatalf("%s: dead letter: %v, reason %q", name, err, reason)
		}
		sameRecord(t, name+" dead letter", got, want)
		if got, err := DecodeRecord(dl); err != nil {
			t.Fatalf("%s: DecodeRecord of a dead letter: %v", name, err)
		} else {
			sameRecord(t, name+" dead letter as record", got, want)
		}
		if _, reason, err := DecodeDeadLetter(EncodeRecord(want)); err != nil || reason != "" {
			t.Fatalf("%s: DecodeDeadLetter of a plain record: %v %q", name, err, reason)
		}
	}
}

// TestCodecAppendsID checks the producer's encoding: the extra _id header
// comes after the caller's, and the topic and timestamp given win.
func TestCodecAppendsID(t *testing.T) {
	r := &kgo.Record{Key: []byte("k"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	id := []byte("0123456789abcdef")
	ts := time.UnixMilli(42)
	b := appendRecord(nil, r, "topic", ts, id, 0, "")
	if len(b) != encodedLen(r, "topic", id, 0, "") {
		t.Fatalf("encodedLen %d, encoded %d", encodedLen(r, "topic", id, 0, ""), len(b))
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &kgo.Record{Topic: "topic", Key: []byte("k"), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "_id", Value: id}}}
	sameRecord(t, "with id", got, want)
}

// TestCodecRejects checks that every truncation and some damage of valid
// records fail with a *RecordError, never a panic.
func TestCodecRejects(t *testing.T) {
	for name, r := range codecCases() {
		b := EncodeDeadLetter(r, "reason")
		if len(b) > 4096 {
			continue
		}
		for n := range len(b) {
			if _, err := DecodeRecord(b[:n]); !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("%s: prefix of %d/%d bytes: %v", name, n, len(b), err)
			}
		}
		if _, err := DecodeRecord(append(b[:len(b):len(b)], 0)); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%s: trailing byte accepted: %v", name, err)
		}
	}
	valid := EncodeRecord(&kgo.Record{Topic: "t", Value: []byte("v")})
	damage := map[string]func([]byte){
		"magic":   func(b []byte) { b[0] = 'X' },
		"version": func(b []byte) { b[4] = 2 },
		"flags":   func(b []byte) { b[5] = 0x80 },
		"topic":   func(b []byte) { b[18] = 0x7f },
		"varint":  func(b []byte) { copy(b[18:], bytes.Repeat([]byte{0xff}, len(b)-18)) },
	}
	mutate := func(fn func([]byte)) []byte { b := bytes.Clone(valid); fn(b); return b }
	inputs := map[string][]byte{}
	for name, fn := range damage {
		inputs[name] = mutate(fn)
	}
	// The topic length 1 written on two bytes (0x81 0x00): the same
	// record's second encoding, refused.
	inputs["non-minimal uvarint"] = slices.Concat(valid[:18], []byte{0x81, 0x00}, valid[19:])
	for name, b := range inputs {
		_, err := DecodeRecord(b)
		var re *RecordError
		if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("%s: %v, want a *RecordError", name, err)
		}
	}
	if IsRecord(valid[:10]) || IsRecord([]byte("plain text that is long enough")) {
		t.Fatal("IsRecord accepted a non-record")
	}
}

// TestCodecHeaderCountBound checks that a huge header count in a small input
// is refused before anything is allocated for it: refusing it costs the
// error (about 1 KiB), where room for the headers it claims would be
// gigabytes.
//
// The heap counters are the process's: whatever other goroutines of the
// package's tests allocate meanwhile counts too, and only ever adds. So
// the least of several rounds is taken, each of a few calls.
func TestCodecHeaderCountBound(t *testing.T) {
	b := EncodeRecord(&kgo.Record{Topic: "t"})
	b = b[:len(b)-1] // drop the header count (0)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0x0f)
	const calls, rounds, perCall = 10, 5, 4 << 10
	var err error
	least := testutil.LeastAlloc(rounds, func() {
		for range calls {
			if _, e := DecodeRecord(b); !errors.Is(e, ErrInvalidRecord) {
				err = e
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if least > calls*perCall {
		t.Fatalf("%d bytes allocated to refuse a header count %d times (the least of %d rounds)", least, calls, rounds)
	}
}

// FuzzDecodeRecord checks, for any input:
//   - DecodeRecord and DecodeDeadLetter never panic, and fail with an error
//     matching ErrInvalidRecord;
//   - they fail for input IsRecord rejects;
//   - what they accept re-encodes (EncodeRecord, or EncodeDeadLetter with
//     the reason) to bytes that decode to the same record, and the
//     re-encoding is canonical: encoding it again gives the same bytes.
//
// Seeds: f.Add below and testdata/fuzz/FuzzDecodeRecord (empty, valid,
// maximal-ish and valid-plus-garbage inputs).
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range codecCases() {
		if EncodedLen(r) < 4096 {
			f.Add(EncodeRecord(r))
			f.Add(EncodeDeadLetter(r, "reason"))
		}
	}
	f.Add([]byte{})
	f.Add([]byte(recordMagic))
	f.Add(append(EncodeRecord(&kgo.Record{Topic: "t"}), "garbage"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, reason, err := DecodeDeadLetter(b)
		r2, err2 := DecodeRecord(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("DecodeDeadLetter: %v, DecodeRecord: %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) || !errors.Is(err2, ErrInvalidRecord) {
				t.Fatalf("error %v does not match ErrInvalidRecord", err)
			}
			return
		}
		if !IsRecord(b) {
			t.Fatal("decoded input that IsRecord rejects")
		}
		sameRecord(t, "DecodeRecord vs DecodeDeadLetter", r2, r)
		var enc []byte
		if b[5]&flagDeadLetter != 0 {
			enc = EncodeDeadLetter(r, reason)
		} else {
			enc = EncodeRecord(r)
		}
		again, reason2, err := DecodeDeadLetter(enc)
		if err != nil || reason2 != reason {
			t.Fatalf("re-encoding does not decode: %v (reason %q vs %q)", err, reason2, reason)
		}
		sameRecord(t, "re-encoded", again, r)
		var enc2 []byte
		if b[5]&flagDeadLetter != 0 {
			enc2 = EncodeDeadLetter(again, reason2)
		} else {
			enc2 = EncodeRecord(again)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not canonical")
		}
	})
}
