// Package index owns the log's lookup and acknowledgement state: where each
// record of a segment lives (seq -> offset, and the stored and raw lengths
// its frame header gives, so that Log.Ack and Open's count of pending
// bytes read no frame), which records are acknowledged, and the small
// metadata files that persist them.
//
// # Acknowledgements
//
// An acknowledgement is durable on the same terms as a record: Log.Ack
// appends an ack frame (package segment, flag ack) whose payload lists the
// acknowledged seqs as ranges. In memory each segment has a bitmap with a
// bit per seq of its range; a compacted segment whose range is larger
// than a word per record (its records are few and far apart: up to
// MaxSpan seqs in a file of a few KiB) has a sparse one, a bit per record,
// every other seq of its range acknowledged, so that memory follows the
// bytes on disk, not the spans they claim. When there is something to
// record (an acknowledgement since the last checkpoint, a sealed segment
// with acknowledged records, one to delete or compact, or Close), and
// before any segment is deleted or compacted, the bitmaps of all sealed
// segments are written to the checkpoint file, so that Open replays ack
// frames only from segments the checkpoint does not cover, and never
// re-reads acknowledged history. A rotation alone writes none: a segment
// sealed with every record pending gets in with the first acknowledgement
// after it (see wal's writeCheckpoint).
//
// Ack frame payload (part of the on-disk format):
//
//	uvarint  number of ranges n (1..2^20; an Ack of more writes several
//	         frames, one after the other)
//	n times: uvarint start delta (from one past the previous range's last
//	         seq; the first from 0), uvarint length-1
//
// The ranges are ascending, neither overlapping nor adjacent (a delta of 0
// after the first range is refused), and their seqs positive (a first
// delta of 0 is refused too).
//
// # Checkpoint file "checkpoint"
//
// Written whole to "checkpoint.tmp", then renamed over "checkpoint". All
// integers little-endian; part of the on-disk format.
//
//	offset size field
//	0      8    magic "WALPUBCK"
//	8      2    version: 2 if an entry is sparse (below), else 1, which
//	            code older than sparse entries reads too
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
//	            bit 63 = none acknowledged, bit 62 = all acknowledged (each
//	            only with a non-zero count); both = sparse (version 2)
//	24     ...  with neither flag: ceil(bits/64) u64 bitmap words (bit i of
//	            the whole = seq first+i acknowledged; bits past the count are
//	            zero). With a flag, no words: a bitmap with no bit or every
//	            bit set is always written as its flag, never spelled out.
//
// A sparse entry lists its unacknowledged seqs instead of words; every
// other seq of its range is acknowledged. It is written exactly when the
// list is shorter than the words (count+1 < ceil(bits/64)), and a version
// 2 checkpoint spells out no bitmap that a sparse entry would hold.
// After its three u64s, a sparse entry holds:
//
//	offset size field
//	24     8    count: the number of unacknowledged seqs, at least 1
//	32     ...  count u64 seqs, ascending, each in [first, first+bits)
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
//
// # Encryption file "encryption"
//
// Present when the log is encrypted (wal.WithEncryption): written whole
// to "encryption.tmp", synced and renamed into place by the first Open
// with a key, before any record is encrypted; never changed after. It
// holds no key, only a check that tells the log's key from another.
//
//	offset size field
//	0      8    magic "WALPUBEN"
//	8      2    version (2; version 1 files are read as well)
//	10     2    cipher: 1 = AES-256-GCM, a random 96-bit nonce each frame
//	12     4    reserved, zero
//	16     16   salt: random, drawn when the file is written
//	32     16   key check: HMAC-SHA256(K, salt || from seq, 8 bytes little
//	            endian), first 16 bytes, where K is HKDF-SHA256 of the key
//	            (no salt, info "walpub key check v1"); version 1: of the
//	            salt alone
//	48     8    from seq: every record from this seq on is encrypted, so
//	            that an unencrypted frame there is an alteration (the key
//	            check covers it); version 1: zero, not said
//	56     8    xxhash64 of bytes 0..55
package index
