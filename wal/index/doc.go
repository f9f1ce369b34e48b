// Package index owns the log's lookup and acknowledgement state: where each
// record of a segment lives (seq -> offset), which records are
// acknowledged, and the small metadata files that persist them.
//
// # Acknowledgements
//
// An acknowledgement is durable on the same terms as a record: Log.Ack
// appends an ack frame (package segment, flag ack) whose payload lists the
// acknowledged seqs as ranges. In memory each segment has a bitmap with a
// bit per seq of its range. At every segment rotation, and before any
// segment is deleted or compacted, the bitmaps of all sealed segments are
// written to the checkpoint file, so that Open replays ack frames only from
// segments the checkpoint does not cover, and never re-reads acknowledged
// history.
//
// Ack frame payload (part of the on-disk format):
//
//	uvarint  number of ranges n (1..2^20; an Ack of more writes several
//	         frames, one after the other)
//	n times: uvarint start delta (from the previous range's end; the first
//	         from 0), uvarint length-1
//
// # Checkpoint file "checkpoint"
//
// Written whole to "checkpoint.tmp", then renamed over "checkpoint". All
// integers little-endian; part of the on-disk format.
//
//	offset size field
//	0      8    magic "WALPUBCK"
//	8      2    version (1)
//	10     2    reserved, zero
//	12     4    number of segment entries
//	16     8    through: ack frames of segments up to this id are included
//	24     8    next seq when written
//	32     8    sealed end: seqs below it that no entry covers are acknowledged
//	            (their segments were reclaimed)
//	40     ...  entries, by ascending segment id and seq (below)
//	end-8  8    xxhash64 of everything before
//
// An entry is three u64s, then its bitmap words if it has any:
//
//	offset size field
//	0      8    segment id
//	8      8    first seq: the seq of bit 0
//	16     8    bits: the number of seqs the entry covers in the low 62 bits;
//	            bit 63 = none acknowledged, bit 62 = all acknowledged (never
//	            both; each only with a non-zero count)
//	24     ...  with neither flag: ceil(bits/64) u64 bitmap words (bit i of
//	            the whole = seq first+i acknowledged; bits past the count are
//	            zero). With a flag, no words: a bitmap with no bit or every
//	            bit set is always written as its flag, never spelled out.
//
// # Superblock file "superblock"
//
// Two 64-byte slots at offsets 0 and 512, written alternately (the slot is
// generation%2), so that a torn write leaves the other slot intact. The
// valid slot with the higher generation wins.
//
//	offset size field
//	0      8    magic "WALPUBSB"
//	8      2    version (1)
//	10     6    reserved, zero
//	16     8    generation
//	24     8    durable high-water mark: segment id
//	32     8    durable high-water mark: offset in that segment
//	40     8    durable high-water mark: last record seq
//	48     8    reserved, zero
//	56     8    xxhash64 of bytes 0..55
//
// An empty slot is all zeros.
package index
