package hop

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// hop-client's RobustProducer journal (hop/robust_publisher.py,
// PublicationJournal), as hop-client 0.13.0 writes it. Every constant in
// this block is part of hop's on-disk format.
//
// The file is a sequence of records, back to back, with no file header.
// Integers are unsigned, big-endian ("!Q": 8 bytes, "!I": 4 bytes).
//
//	offset  size  field
//	0       8     record type: 0 message v1, 2 message v2, 1 sent
//	8       8     body length
//	16      4     CRC-32 (zlib's, IEEE) of the body
//	20      4     CRC-32 of bytes 0..19 (the header CRC)
//	24      ...   body
//
// Message v2 body (what hop 0.13 writes for every RobustProducer.write):
//
//	8     sequence number
//	8     topic length, then the topic (UTF-8)
//	8     value length, then the value (the serialized model)
//	8     key length (0: no key), then the key
//	8     header count, then per header:
//	      8 key length, the key (UTF-8); 8 value length, the value
//
// Message v1 body (older hop): sequence number, value, header count and
// headers as in v2, with no topic and no key: hop sends it to the topic
// of the URL it is given.
//
// Sent body: the 8-byte sequence number of a message the broker confirmed.
//
// A message is still to be sent when no sent record names its sequence
// number. hop sends pending messages in sequence-number order. Sequence
// numbers increase through the file; when nothing is left to send, hop
// truncates the file and starts again at 0. hop writes each record with
// buffered writes and a flush before write() returns, never an fsync.
const (
	hopTypeMessageV1 = 0
	hopTypeSent      = 1
	hopTypeMessageV2 = 2
	hopHeaderLen     = 24
	hopIntLen        = 8
)

// ErrJournalCorrupt is matched (errors.Is) by every *JournalError.
var ErrJournalCorrupt = errors.New("hop: damaged hop-client journal")

// JournalError reports damage in a hop-client journal.
type JournalError struct {
	Path   string // the journal file
	Offset int64  // where the damaged record starts
	Record int    // its index in the file, from 0
	Reason string
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("hop journal %s: record %d at offset %d: %s", e.Path, e.Record, e.Offset, e.Reason)
}

// Is reports whether target is ErrJournalCorrupt.
func (e *JournalError) Is(target error) bool { return target == ErrJournalCorrupt }

// JournalMessage is a message of a hop-client journal that no sent record
// confirms.
type JournalMessage struct {
	Offset  int64  // where its record starts in the file
	Seq     uint64 // hop's sequence number
	Version int    // the record's version: 1 or 2
	Topic   string // "" in a version 1 record
	Key     []byte // nil: no key
	Value   []byte
	Headers []kgo.RecordHeader // as hop stored them, "_id" included
}

// Journal is what ReadJournal found in a hop-client journal.
type Journal struct {
	Path string
	// Pending are the messages no sent record confirms, in the order hop
	// sends them (ascending sequence number). Their byte slices share
	// one buffer holding the file.
	Pending   []JournalMessage
	Records   int   // records read whole (the damaged ones not included)
	Sent      int   // sent records among them
	TornBytes int64 // bytes of a last record cut short at the end of the file: a write that never returned
	// Damage lists what was skipped (with Salvage only; without it the
	// first damage is ReadJournal's error).
	Damage []*JournalError
}

// ReadJournal reads a hop-client RobustProducer journal. A last record cut
// short by the end of the file (the process died while writing it, before
// its write returned) is left out and counted in TornBytes. Any other
// damage — a checksum mismatch, an unknown record type, a length that
// overruns its record, a sent record for a message not pending, a
// repeated sequence number — is a *JournalError naming the record's
// offset; with salvage, ReadJournal instead skips the damaged record (or,
// when its header cannot be trusted, every byte up to the next intact
// record), lists the damage in Journal.Damage and goes on. A message whose
// record is damaged is lost to the reader; a sent record that is damaged
// leaves its message pending (sent again: a duplicate, not a loss).
//
// The whole file is read into memory, as hop itself keeps every pending
// message in memory.
func ReadJournal(path string, salvage bool) (*Journal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hop: reading journal: %w", err)
	}
	return parseJournal(b, path, salvage)
}

// parseJournal is ReadJournal of the bytes b of the file path.
func parseJournal(b []byte, path string, salvage bool) (*Journal, error) {
	j := &Journal{Path: path}
	pending := map[uint64]int{} // seq -> index in j.Pending
	var dropped []bool          // j.Pending[i] confirmed by a later sent record
	off, index := 0, 0
	for off < len(b) {
		rec, next, torn, jerr := parseRecord(b, off)
		if torn {
			j.TornBytes = int64(len(b) - off)
			break
		}
		if jerr == "" {
			jerr = j.apply(rec, off, pending, &dropped)
		}
		if jerr != "" {
			if !salvage {
				return nil, &JournalError{Path: path, Offset: int64(off), Record: index, Reason: jerr}
			}
			if next < 0 {
				next = resync(b, off+1)
				if next > off+1 {
					jerr = fmt.Sprintf("%s; skipped %d bytes to the next intact record", jerr, next-off)
				}
			}
			j.Damage = append(j.Damage, &JournalError{Path: path, Offset: int64(off), Record: index, Reason: jerr})
		} else {
			j.Records++
		}
		off = next
		index++
	}
	kept := j.Pending[:0]
	for i, m := range j.Pending {
		if !dropped[i] {
			kept = append(kept, m)
		}
	}
	// hop sends the lowest sequence number first; it numbers messages in
	// increasing order, so this is the file's order too.
	slices.SortStableFunc(kept, func(a, b JournalMessage) int { return cmp.Compare(a.Seq, b.Seq) })
	j.Pending = kept
	return j, nil
}

// apply records a parsed record; it returns the reason it is damage, or "".
func (j *Journal) apply(rec hopRecord, off int, pending map[uint64]int, dropped *[]bool) string {
	if rec.typ == hopTypeSent {
		i, ok := pending[rec.msg.Seq]
		if !ok {
			return fmt.Sprintf("sent record for sequence number %d, which no pending message has", rec.msg.Seq)
		}
		(*dropped)[i] = true
		delete(pending, rec.msg.Seq)
		j.Sent++
		return ""
	}
	if _, ok := pending[rec.msg.Seq]; ok {
		return fmt.Sprintf("message with sequence number %d, which a pending message already has", rec.msg.Seq)
	}
	rec.msg.Offset = int64(off)
	pending[rec.msg.Seq] = len(j.Pending)
	j.Pending = append(j.Pending, rec.msg)
	*dropped = append(*dropped, false)
	return ""
}

type hopRecord struct {
	typ uint64
	msg JournalMessage // Seq alone for a sent record
}

// parseRecord parses the record at b[off:]. It returns the offset of the
// next record (-1 when the header cannot be trusted), torn when the file
// ends inside the record, or the reason the record is damaged.
func parseRecord(b []byte, off int) (rec hopRecord, next int, torn bool, damage string) {
	left := len(b) - off
	if left < hopHeaderLen {
		return rec, -1, true, ""
	}
	h := b[off : off+hopHeaderLen]
	rec.typ = binary.BigEndian.Uint64(h[0:])
	bodyLen := binary.BigEndian.Uint64(h[8:])
	bodyCRC := binary.BigEndian.Uint32(h[16:])
	if got, want := crc32.ChecksumIEEE(h[:20]), binary.BigEndian.Uint32(h[20:]); got != want {
		return rec, -1, false, fmt.Sprintf("header CRC mismatch (stored %#08x, computed %#08x)", want, got)
	}
	if rec.typ != hopTypeMessageV1 && rec.typ != hopTypeMessageV2 && rec.typ != hopTypeSent {
		return rec, -1, false, fmt.Sprintf("unknown record type %d", rec.typ)
	}
	if bodyLen > uint64(left-hopHeaderLen) {
		return rec, -1, true, ""
	}
	next = off + hopHeaderLen + int(bodyLen)
	body := b[off+hopHeaderLen : next]
	if got := crc32.ChecksumIEEE(body); got != bodyCRC {
		return rec, next, false, fmt.Sprintf("body CRC mismatch (stored %#08x, computed %#08x)", bodyCRC, got)
	}
	d := bodyReader{b: body}
	rec.msg.Seq = d.int("sequence number")
	switch rec.typ {
	case hopTypeMessageV1:
		rec.msg.Version = 1
		rec.msg.Value = d.bytes("value")
		rec.msg.Headers = d.headers()
	case hopTypeMessageV2:
		rec.msg.Version = 2
		rec.msg.Topic = d.text("topic")
		rec.msg.Value = d.bytes("value")
		if k := d.bytes("key"); len(k) > 0 {
			rec.msg.Key = k
		}
		rec.msg.Headers = d.headers()
	}
	if d.err == "" && d.off != len(body) {
		d.err = fmt.Sprintf("body of %d bytes, its fields end at %d", len(body), d.off)
	}
	if d.err != "" {
		return rec, next, false, d.err
	}
	if rec.msg.Value == nil && rec.typ != hopTypeSent {
		rec.msg.Value = []byte{}
	}
	return rec, next, false, ""
}

// resync returns the offset of the first intact record (header and body
// checksums right) at or after from, or len(b).
func resync(b []byte, from int) int {
	for off := from; off+hopHeaderLen <= len(b); off++ {
		if _, next, torn, damage := parseRecord(b, off); !torn && next >= 0 && damage == "" {
			return off
		}
	}
	return len(b)
}

// bodyReader reads the fields of a record body, checking every length
// against the bytes left.
type bodyReader struct {
	b   []byte
	off int
	err string
}

func (d *bodyReader) int(what string) uint64 {
	if d.err != "" {
		return 0
	}
	if len(d.b)-d.off < hopIntLen {
		d.err = fmt.Sprintf("%s overruns the record body", what)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[d.off:])
	d.off += hopIntLen
	return v
}

func (d *bodyReader) bytes(what string) []byte {
	n := d.int(what + " length")
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = fmt.Sprintf("%s of %d bytes overruns the %d bytes left in the record body", what, n, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *bodyReader) text(what string) string {
	s := d.bytes(what)
	if d.err == "" && !utf8.Valid(s) {
		d.err = what + " is not UTF-8"
	}
	return string(s)
}

func (d *bodyReader) headers() []kgo.RecordHeader {
	n := d.int("header count")
	if d.err != "" {
		return nil
	}
	if n > uint64(len(d.b)-d.off)/(2*hopIntLen) {
		d.err = fmt.Sprintf("%d headers cannot fit in the %d bytes left in the record body", n, len(d.b)-d.off)
		return nil
	}
	var hs []kgo.RecordHeader
	for range n {
		k := d.text("header key")
		v := d.bytes("header value")
		if d.err != "" {
			return nil
		}
		hs = append(hs, kgo.RecordHeader{Key: k, Value: v})
	}
	return hs
}
