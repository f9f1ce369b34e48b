package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The journal record format, version 1. Every constant in this block is part
// of the on-disk format: changing one breaks every journal already written.
//
//	offset  size      field
//	0       4         magic "WPKR"
//	4       1         version (1)
//	5       1         flags (bit 0: dead-letter entry, a reason follows the headers)
//	6       8         timestamp: int64 big-endian milliseconds since the Unix
//	                  epoch (Kafka's precision); math.MinInt64 = unset
//	14      4         partition: int32 big-endian
//	18      ...       topic:  uvarint length, bytes
//	        ...       key:    uvarint length+1 (0 = null key), bytes
//	        ...       value:  uvarint length+1 (0 = null value), bytes
//	        ...       header count: uvarint
//	        ...       per header: key uvarint length, bytes;
//	                              value uvarint length+1 (0 = null), bytes
//	        ...       reason (dead-letter entries only): uvarint length, bytes
//
// The record ends exactly where its last field ends: trailing bytes are an
// error. The wal frame around it carries the checksum, so the record has none.
const (
	recordMagic      = "WPKR"
	recordVersion    = 1
	flagDeadLetter   = 1 << 0
	knownFlags       = flagDeadLetter
	fixedHeaderLen   = 4 + 1 + 1 + 8 + 4
	timestampUnset   = math.MinInt64
	minHeaderEncoded = 2 // a header takes at least its two length bytes
)

// ErrInvalidRecord is matched (errors.Is) by every *RecordError.
var ErrInvalidRecord = errors.New("kafka: invalid journal record")

// RecordError reports why bytes are not a valid journal record.
type RecordError struct {
	Offset int    // byte offset in the input where decoding failed
	Reason string // what was wrong there
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("kafka: invalid journal record at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrInvalidRecord.
func (e *RecordError) Is(target error) bool { return target == ErrInvalidRecord }

// IsRecord reports whether b starts like a journal record of a version this
// package can decode (magic and version). It does not validate the rest; use
// DecodeRecord for that.
func IsRecord(b []byte) bool {
	return len(b) >= fixedHeaderLen && string(b[:4]) == recordMagic && b[4] == recordVersion
}

// EncodeRecord returns the journal encoding of r's topic, partition,
// timestamp, key, value and headers. Other fields (offset, attributes,
// producer id, context) are not part of the record and are not stored. A zero
// Timestamp is stored as unset; others keep millisecond precision.
func EncodeRecord(r *kgo.Record) []byte {
	return AppendRecord(make([]byte, 0, EncodedLen(r)), r)
}

// AppendRecord appends the journal encoding of r (see EncodeRecord) to dst
// and returns the extended slice.
func AppendRecord(dst []byte, r *kgo.Record) []byte {
	return appendRecord(dst, r, r.Topic, r.Timestamp, nil, 0, "")
}

// EncodedLen returns the length of EncodeRecord(r).
func EncodedLen(r *kgo.Record) int {
	return encodedLen(r, r.Topic, nil, 0, "")
}

// EncodeDeadLetter returns the encoding of a dead-letter entry: the record
// as EncodeRecord stores it plus the reason it could not be delivered.
// DecodeRecord reads such an entry as the record alone; DecodeDeadLetter
// also returns the reason.
func EncodeDeadLetter(r *kgo.Record, reason string) []byte {
	n := encodedLen(r, r.Topic, nil, flagDeadLetter, reason)
	return appendRecord(make([]byte, 0, n), r, r.Topic, r.Timestamp, nil, flagDeadLetter, reason)
}

// DecodeRecord decodes a journal record (or a dead-letter entry) written by
// EncodeRecord. The returned record owns its memory: b may be reused after
// the call. On malformed input it returns a *RecordError, never panics, and
// allocates no more than a small multiple of len(b).
func DecodeRecord(b []byte) (*kgo.Record, error) {
	r, _, err := decodeRecord(b, true, nil)
	return r, err
}

// DecodeDeadLetter decodes a dead-letter entry, returning the record and the
// reason it was dead-lettered. For a plain journal record the reason is "".
func DecodeDeadLetter(b []byte) (r *kgo.Record, reason string, err error) {
	return decodeRecord(b, true, nil)
}

func varLen(n int) int {
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(n))
}

func nullableLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varLen(len(b)+1) + len(b)
}

// encodedLen must agree with appendRecord.
func encodedLen(r *kgo.Record, topic string, id []byte, flags byte, reason string) int {
	n := fixedHeaderLen + varLen(len(topic)) + len(topic) + nullableLen(r.Key) + nullableLen(r.Value)
	nh := len(r.Headers)
	if id != nil {
		nh++
		n += varLen(len(idHeader)) + len(idHeader) + nullableLen(id)
	}
	n += varLen(nh)
	for _, h := range r.Headers {
		n += varLen(len(h.Key)) + len(h.Key) + nullableLen(h.Value)
	}
	if flags&flagDeadLetter != 0 {
		n += varLen(len(reason)) + len(reason)
	}
	return n
}

// appendRecord encodes r with the given topic and timestamp, and, when id is
// not nil, an extra "_id" header after r's own.
func appendRecord(dst []byte, r *kgo.Record, topic string, ts time.Time, id []byte, flags byte, reason string) []byte {
	dst = append(dst, recordMagic...)
	dst = append(dst, recordVersion, flags)
	ms := int64(timestampUnset)
	if !ts.IsZero() {
		ms = ts.UnixMilli()
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(ms))
	dst = binary.BigEndian.AppendUint32(dst, uint32(r.Partition))
	dst = appendString(dst, topic)
	dst = appendNullable(dst, r.Key)
	dst = appendNullable(dst, r.Value)
	nh := len(r.Headers)
	if id != nil {
		nh++
	}
	dst = binary.AppendUvarint(dst, uint64(nh))
	for _, h := range r.Headers {
		dst = appendString(dst, h.Key)
		dst = appendNullable(dst, h.Value)
	}
	if id != nil {
		dst = appendString(dst, idHeader)
		dst = appendNullable(dst, id)
	}
	if flags&flagDeadLetter != 0 {
		dst = appendString(dst, reason)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// recordDecoder reads fields from b, checking every length against the bytes
// left before slicing.
type recordDecoder struct {
	b      []byte
	off    int
	err    error
	intern *interner
}

// interner returns one string for equal topics and header keys, so that
// decoding many records of a few topics does not allocate each time. It
// keeps at most maxInterned strings. Not safe for concurrent use.
type interner struct{ m map[string]string }

const maxInterned = 1024

func (in *interner) str(b []byte) string {
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

func (d *recordDecoder) fail(reason string) {
	if d.err == nil {
		d.err = &RecordError{Offset: d.off, Reason: reason}
	}
}

func (d *recordDecoder) left() int { return len(d.b) - d.off }

func (d *recordDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad length of " + what)
		return 0
	}
	if n > 1 && d.b[d.off+n-1] == 0 {
		// The encoder writes minimal uvarints: a padded one is damage,
		// and refusing it keeps one encoding per record.
		d.fail("non-minimal length of " + what)
		return 0
	}
	d.off += n
	return v
}

// bytes returns the next n bytes, capped so that appending to them cannot
// overwrite the next field.
func (d *recordDecoder) bytes(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(d.left()) {
		d.fail(fmt.Sprintf("%s of %d bytes overruns the %d bytes left", what, n, d.left()))
		return nil
	}
	end := d.off + int(n)
	s := d.b[d.off:end:end]
	d.off = end
	return s
}

func (d *recordDecoder) str(what string) string {
	b := d.bytes(d.uvarint(what), what)
	if d.intern != nil {
		return d.intern.str(b)
	}
	return string(b)
}

func (d *recordDecoder) nullable(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil || n == 0 {
		return nil
	}
	return d.bytes(n-1, what)
}

// decodeRecord decodes b. With clone, the record's byte slices point into a
// private copy of b; without, into b itself (for callers that own b). A
// non-nil intern supplies the topic and header-key strings.
func decodeRecord(b []byte, clone bool, intern *interner) (*kgo.Record, string, error) {
	r := new(kgo.Record)
	reason, err := decodeRecordInto(r, nil, b, clone, intern)
	if err != nil {
		return nil, "", err
	}
	return r, reason, nil
}

// decodeRecordInto decodes b into r, which must be zero. The headers go in
// hdrs when they fit in its capacity, else in a new slice.
func decodeRecordInto(r *kgo.Record, hdrs []kgo.RecordHeader, b []byte, clone bool, intern *interner) (string, error) {
	if len(b) < fixedHeaderLen {
		return "", &RecordError{Offset: len(b), Reason: fmt.Sprintf("%d bytes, shorter than the %d-byte fixed header", len(b), fixedHeaderLen)}
	}
	if string(b[:4]) != recordMagic {
		return "", &RecordError{Offset: 0, Reason: "bad magic"}
	}
	if b[4] != recordVersion {
		return "", &RecordError{Offset: 4, Reason: fmt.Sprintf("unsupported version %d", b[4])}
	}
	flags := b[5]
	if flags&^knownFlags != 0 {
		return "", &RecordError{Offset: 5, Reason: fmt.Sprintf("unknown flags %#x", flags)}
	}
	if clone {
		b = append([]byte(nil), b...)
	}
	if ms := int64(binary.BigEndian.Uint64(b[6:])); ms != timestampUnset {
		r.Timestamp = time.UnixMilli(ms)
	}
	r.Partition = int32(binary.BigEndian.Uint32(b[14:]))
	d := recordDecoder{b: b, off: fixedHeaderLen, intern: intern}
	r.Topic = d.str("topic")
	r.Key = d.nullable("key")
	r.Value = d.nullable("value")
	nh := d.uvarint("header count")
	if d.err == nil && nh > uint64(d.left()/minHeaderEncoded) {
		d.fail(fmt.Sprintf("%d headers cannot fit in the %d bytes left", nh, d.left()))
	}
	if d.err == nil && nh > 0 {
		if nh <= uint64(cap(hdrs)) {
			r.Headers = hdrs[:0]
		} else {
			r.Headers = make([]kgo.RecordHeader, 0, nh)
		}
		for range nh {
			k := d.str("header key")
			v := d.nullable("header value")
			if d.err != nil {
				break
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
		}
	}
	var reason string
	if flags&flagDeadLetter != 0 {
		reason = string(d.bytes(d.uvarint("reason"), "reason"))
	}
	if d.err == nil && d.left() != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", d.left()))
	}
	if d.err != nil {
		return "", d.err
	}
	return reason, nil
}
