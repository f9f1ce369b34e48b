package fuzz

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"

	"github.com/walpub/walpub/wal/index"
	"github.com/walpub/walpub/wal/segment"
)

// A log set is a log directory FuzzLogDir builds from its set input: up
// to five segments (compacted or not, with gaps in ids and seqs, records
// up to index.MaxSpan+1 seqs apart, batches, ack frames), a checkpoint
// and a superblock. The harness computes every checksum, so that the
// fuzzer reaches the checks behind them; the mutations of FuzzLogDir then
// damage one of the files. The input format (part of the seed corpus
// format; past its end every byte reads as zero):
//
//	byte     number of segments - 1 (mod 5)
//	for each segment:
//	  byte   flags: 1 compacted; 2 a gap in ids (a byte follows: the
//	         ids skipped, mod 3); 4 a gap in seqs before it (a span
//	         follows); 8 merged through (a byte follows: ids past its own,
//	         mod 3; compacted only)
//	  byte   number of frames (mod 8), then for each a byte g:
//	         g&3 == 3: an ack frame of 1+(g>>2)%3 ranges, each a span (the
//	         start's delta) and a span (the length - 1);
//	         else a record: in a compacted segment with g&1 a span follows,
//	         the seqs skipped before it; g&4 batch, g&8 commit; g>>4
//	         payload bytes
//	byte     checkpoint flags: 1 present; then a byte (through: the id of
//	         segment b%(n+1)-1, 0 for none), a byte (1: next seq one
//	         lower; 2: sealed end one lower), and for each segment up to
//	         through a byte: its entry's kind (see setEntry)
//	byte     superblock flags: 1 present, 2 generation 2 (slot 0); then a
//	         byte (the segment, mod n) and a byte (the frame whose end is
//	         the mark's offset, mod its frames+1)
//
// A span is a uvarint taken mod 2^30: small mostly, and up to beyond the
// most a segment may span (index.MaxSpan, 2^28).
type setReader struct{ b []byte }

func (r *setReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *setReader) span() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v % (1 << 30)
}

// setSeg is one segment of a log set as built.
type setSeg struct {
	id, first uint64
	compacted bool
	recs      []uint64 // the records' seqs
	ends      []int64  // the offset after each frame
	recsAt    []uint64 // the highest record seq at or before each frame's end, 0 if none
}

// buildLogSet returns the files of the log set described by in.
func buildLogSet(in []byte) snapshot {
	r := &setReader{in}
	files := snapshot{}
	var segs []*setSeg
	id, next := uint64(0), uint64(1)
	for range 1 + int(r.byte()%5) {
		f := r.byte()
		s := &setSeg{compacted: f&1 != 0}
		id++
		if f&2 != 0 {
			id += uint64(r.byte() % 3)
		}
		if f&4 != 0 {
			next += r.span()
		}
		s.id, s.first = id, next
		h := segment.Header{ID: id, FirstSeq: next}
		if s.compacted {
			h.Flags, h.Generation = segment.SegCompacted, 1
			if f&8 != 0 {
				h.MergedThrough = id + 1 + uint64(r.byte()%3)
			}
		}
		var body []byte
		var last uint64
		for range int(r.byte() % 8) {
			g := r.byte()
			var seq uint64
			var flags uint32
			var payload []byte
			if g&3 == 3 {
				k := 1 + int(g>>2%3)
				payload = binary.AppendUvarint(nil, uint64(k))
				for range k {
					payload = binary.AppendUvarint(payload, r.span())
					payload = binary.AppendUvarint(payload, r.span())
				}
				seq, flags = next-1, segment.FlagAck
			} else {
				if s.compacted && g&1 != 0 {
					next += r.span()
				}
				seq = next
				next++
				flags = uint32(g) & (segment.FlagBatch | segment.FlagCommit)
				for range g >> 4 {
					payload = append(payload, g)
				}
				s.recs = append(s.recs, seq)
				last = seq
			}
			fr := make([]byte, segment.FrameSize(len(payload)))
			segment.PutFrame(fr, seq, flags, len(payload), payload)
			body = append(body, fr...)
			s.ends = append(s.ends, int64(segment.HeaderSize+len(body)))
			s.recsAt = append(s.recsAt, last)
		}
		h.Size = int64(segment.HeaderSize + len(body) + 64)
		b := make([]byte, h.Size)
		segment.PutHeader(b, h)
		copy(b[segment.HeaderSize:], body)
		files[segment.Name(id)] = b
		segs = append(segs, s)
	}

	if c := r.byte(); c&1 != 0 {
		files[index.CheckpointName] = buildSetCheckpoint(r, segs, next)
	}
	if sb := r.byte(); sb&1 != 0 {
		s := segs[int(r.byte())%len(segs)]
		i := int(r.byte()) % (len(s.ends) + 1)
		mark := index.Superblock{Generation: 1 + uint64(sb>>1&1), Segment: s.id, Offset: segment.HeaderSize}
		if i > 0 {
			mark.Offset, mark.Seq = s.ends[i-1], s.recsAt[i-1]
		}
		b := make([]byte, index.SuperblockSize)
		index.PutSuperblockSlot(b[mark.Generation%2*index.SuperblockSlot:], mark)
		files[index.SuperblockName] = b
	}
	return files
}

// Kinds of a log set's checkpoint entry (setEntry), taken mod setKinds.
const (
	setNoEntry  = iota // no entry: below the sealed end, every seq acknowledged
	setNone            // flagged no seq acknowledged
	setAll             // flagged every seq acknowledged
	setRecords         // only the records may be unacknowledged; a byte follows, bit j: record j acknowledged
	setBits            // a bitmap of the range (up to 4096 seqs, else as setNone), seqs between records not acknowledged; a byte as for setRecords
	setNoneLong        // flagged no seq acknowledged, over a span more than the segment's
	setKinds
)

// buildSetCheckpoint returns the checkpoint of a log set: through the
// segment a byte names, an entry of the kind a byte names for each segment
// up to it, each encoded by index.AppendCheckpoint (so in its one
// canonical encoding) or, when flagged, by hand (24 bytes, whatever the
// span).
func buildSetCheckpoint(r *setReader, segs []*setSeg, next uint64) []byte {
	c := index.Checkpoint{NextSeq: next, SealedEnd: next}
	n := int(r.byte()) % (len(segs) + 1)
	if n > 0 {
		c.Through = segs[n-1].id
	}
	if n < len(segs) {
		c.SealedEnd = segs[n].first
	}
	adj := r.byte()
	c.NextSeq -= uint64(adj & 1)
	c.SealedEnd -= uint64(adj >> 1 & 1)
	var entries []byte
	count, version := 0, uint16(index.Version)
	for _, s := range segs[:n] {
		e, v := setEntry(r, s)
		if e == nil {
			continue
		}
		entries = append(entries, e...)
		count++
		version = max(version, v)
	}
	b := index.AppendCheckpoint(nil, index.Checkpoint{Through: c.Through, NextSeq: c.NextSeq, SealedEnd: c.SealedEnd})
	b = append(b[:len(b)-8], entries...)
	binary.LittleEndian.PutUint16(b[8:], version)
	binary.LittleEndian.PutUint32(b[12:], uint32(count))
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// setEntry returns the checkpoint entry of s of the kind r names, and the
// checkpoint version it needs; nil for none.
func setEntry(r *setReader, s *setSeg) ([]byte, uint16) {
	kind := r.byte() % setKinds
	if len(s.recs) == 0 || kind == setNoEntry {
		return nil, 0
	}
	n := s.recs[len(s.recs)-1] + 1 - s.first
	flagged := func(n, flag uint64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, s.id)
		b = binary.LittleEndian.AppendUint64(b, s.first)
		return binary.LittleEndian.AppendUint64(b, flag|n&(1<<62-1))
	}
	switch kind {
	case setNone:
		return flagged(n, 1<<63), index.Version
	case setNoneLong:
		return flagged(n+r.span(), 1<<63), index.Version
	case setAll:
		return flagged(n, 1<<62), index.Version
	case setBits:
		if n > 4096 {
			return flagged(n, 1<<63), index.Version
		}
	}
	var a *index.Acks
	if kind == setRecords {
		a = index.NewAcksOf(s.first, n, s.recs)
	} else {
		a = index.NewAcks(s.first, n)
	}
	bits := r.byte()
	for j, q := range s.recs {
		if bits>>(j%8)&1 != 0 {
			a.Set(q)
		}
	}
	one := index.AppendCheckpoint(nil, index.Checkpoint{Segments: []index.SegmentAcks{{ID: s.id, Acks: a}}})
	return one[40 : len(one)-8], binary.LittleEndian.Uint16(one[8:])
}

// setInput builds a log set input (for seeds), byte by byte as
// buildLogSet reads it.
type setInput []byte

// b and span return a new input (never sharing in's array), so that one
// prefix can start several inputs.
func (in setInput) b(v ...byte) setInput { return append(in[:len(in):len(in)], v...) }

func (in setInput) span(v uint64) setInput { return binary.AppendUvarint(in[:len(in):len(in)], v) }

// logSetSeeds adds FuzzLogDir seeds with a log set: compacted segments
// spanning index.MaxSpan seqs with few records, their acknowledgements in
// ack frames and in checkpoint entries of every kind, batches, a merged
// segment, superblocks in either slot.
func logSetSeeds(c *corpus) {
	const span = index.MaxSpan
	// Three compacted segments of two records span-1 apart, then an
	// active one whose ack frame acknowledges the seqs between the records
	// of the first and the third; the checkpoint flags the first and third
	// "no seq acknowledged" and has no entry for the second.
	in := setInput{}.b(3)
	for range 3 {
		in = in.b(1, 2, 0x20).b(0x21).span(span - 2)
	}
	in = in.b(0, 2, 3|1<<2).span(2).span(span - 3).span(span + 2).span(span - 3).b(0x20)
	in = in.b(1, 3, 0, setNone, setNoEntry, setNone)
	in = in.b(1, 3, 2)
	c.add("set-spanning", uint8(0), []byte{}, []byte(in))
	// The same with the checkpoint listing the records (sparse entries,
	// version 2), some acknowledged.
	in = setInput{}.b(2)
	for range 2 {
		in = in.b(1, 3, 0x20, 0x21).span(span / 2).b(0x21).span(span/2 - 3)
	}
	in = in.b(0, 1, 0x10)
	in = in.b(1, 2, 0, setRecords, 0b101, setRecords, 0b010)
	in = in.b(3, 2, 1)
	c.add("set-sparse-entries", uint8(0), []byte{}, []byte(in))
	// Small segments: batches, a bitmap entry, an entry claiming more
	// than its segment, a merged compacted segment, ids apart.
	in = setInput{}.b(3)
	in = in.b(0, 4, 0x12, 0x16, 0x10, 0x03).span(1).span(0)
	in = in.b(1|8, 1, 2, 0x10, 0x11).span(5)
	in = in.b(2|4, 2).span(7).b(1, 0x10)
	in = in.b(0, 1, 0x30)
	small := in
	in = in.b(1, 3, 0, setBits, 0b1, setRecords, 0b10, setAll)
	in = in.b(1, 3, 1)
	c.add("set-small", uint8(0), []byte{}, []byte(in))
	// An entry claiming seqs past its segment, none acknowledged.
	in = small.b(1, 3, 0, setBits, 0b1, setRecords, 0b10, setNoneLong).span(3)
	c.add("set-claim-beyond", uint8(0), []byte{}, []byte(in))
	// A spanning set damaged: its checkpoint's entry count flipped.
	c.add("set-damaged-checkpoint", uint8(0), mutation{mutFlip, 12, 1}.bytes(), []byte(setInput{}.b(0, 1, 2, 0x20, 0x21).span(span-2).b(1, 1, 0, setNone)))
}
