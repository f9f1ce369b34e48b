// Package segment owns the bytes of one segment file of a walpub log: the
// segment header, the record frames, preallocation, memory mapping and
// scanning. It knows nothing about acknowledgements or other segments.
//
// # Segment file
//
// A segment is a file of fixed size, allocated in full (fallocate, or zeros
// written out where the file system cannot) before it is mapped, so that a
// store into the mapping never meets a full disk. It starts with a 64-byte
// header; frames follow from offset 64, each aligned to 8 bytes; the rest
// of the file is zero. All integers are little-endian. Everything below is
// part of the on-disk format.
//
//	offset size field
//	0      8    magic "WALPUBSG"
//	8      2    format version (2; version 1 is read too)
//	10     2    flags: bit 0 = compacted (seqs may have gaps)
//	12     4    reserved, zero
//	16     8    segment id (1, 2, ...; the file is named after it)
//	24     8    first seq: the seq of the first record the segment was opened for
//	32     8    size: the file's size in bytes
//	40     8    generation: 0, then +1 each time the segment is compacted
//	48     8    merged through: the last segment id whose records compaction
//	            merged into this file (0: only its own; else > id, compacted)
//	56     8    xxhash64 of bytes 0..55
//
// # Frame
//
//	offset size field
//	0      8    checksum of the header fields below and the payload
//	            (see Checksum)
//	8      4    stored length: payload bytes as stored (max 1 GiB)
//	12     4    flags (below)
//	16     8    seq
//	24     4    raw length: payload bytes after decompression
//	28     4    reserved, zero
//	32     n    payload, then zero padding to a multiple of 8
//
// Flags:
//
//	bit 0  zstd: the payload is one zstd frame of raw length bytes
//	bit 1  batch: the frame belongs to a batch of AppendBatch
//	bit 2  commit: the last frame of a batch (set together with batch)
//	bit 3  ack: the payload lists acknowledged seqs (see package index);
//	       seq holds the last record seq written before it
//	bit 4  encrypted: the payload is sealed with AES-256-GCM (below)
//	bit 5  payload sum: the checksum is the folded one (below); set on
//	       every frame a log of format version 2 writes
//
// # Checksum
//
// With the payload sum flag (bit 5), the checksum is the xxhash64 of the
// payload alone, h, xored with a mix of each of the header's three 8-byte
// words after the checksum (offsets 8, 16 and 24, each read as a
// little-endian uint64: w8, w16, w24). With xxhash64's primes
// P1 = 11400714785074694791, P2 = 14029467366897019727,
// P3 = 1609587929392839161 and P4 = 9650029242287828579, arithmetic
// modulo 2^64 and rotl a left rotation:
//
//	h ^ rotl(w8*P2, 31)*P1 ^ rotl(w16*P3, 29)*P2 ^ rotl(w24*P4, 27)*P1
//
// Each word's mix is a bijection, so a change in any one header field
// always changes the checksum. A writer hashes the payload where it has
// it, rather than reading it back from where it copied it. Without the
// flag (format version 1), the checksum is the xxhash64 of bytes
// 8..(32+stored length) of the frame: the header fields and the payload.
// A reader takes each frame's scheme from its flags: a version 1 segment
// that a version 2 log went on writing holds frames of both.
//
// An encrypted payload (the record after compression, if compressed) is
// stored as:
//
//	offset size field
//	0      12   nonce: random, fresh for every frame
//	12     n    ciphertext: as many bytes as the sealed payload
//	12+n   16   tag: authenticates the ciphertext and the associated data
//
// Its stored length is the sealed payload's plus 28, so that raw length =
// stored length - 28 unless the frame is compressed too. The associated
// data is the 20 frame header bytes from offset 8 (stored length, flags,
// seq, raw length) with every flag bit but zstd and encrypted cleared:
// the batch and commit flags, which compaction clears, are not bound. The
// key is derived from the log's key with HKDF-SHA256 (no salt, info
// "walpub frame key v1"). The checksum covers the stored bytes, so a log
// is verified, and a torn tail cut, without the key. Ack frames are never
// encrypted. See Sealer for why nonces never repeat under one key.
//
// Because the checksum covers the length and flags, a damaged length is
// caught by the checksum of the frame it claims to describe. A frame whose
// first 32 bytes are all zero marks the end of the data.
//
// A batch is recovered whole or not at all: its frames carry the batch
// flag, and only the last carries commit. Frames of a batch with no commit
// frame after them are an unfinished batch.
//
// # Caveats
//
// Segments are mapped read-write for the writer and read-only for readers.
// A reader of a file that another process might truncate must turn faults
// into errors (runtime/debug.SetPanicOnFault); DecodeFrame and Scanner do not
// do that themselves.
package segment
