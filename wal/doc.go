// Package wal is a general write-ahead log: memory-mapped, preallocated,
// rotating segments; every record framed with its length, flags, sequence
// number and an xxhash64 checksum; optional zstd per record; durable
// acknowledgements; and compaction that reclaims acknowledged records.
//
// # Usage
//
//	l, err := wal.Open("journal", wal.WithSync(wal.SyncEvery(10*time.Millisecond)))
//	seq, err := l.Append([]byte("hello"))
//	for rec, err := range l.Pending() { ... rec.Seq, rec.Data ... }
//	err = l.Ack(seq)
//	err = l.Close()
//
// Sequence numbers start at 1 in a new log and never repeat, across
// restarts and compaction.
//
// # Layout on disk
//
// A log directory holds:
//
//	LOCK                          flock'ed by the Log holding the directory
//	00000000000000000001.seg ...  segments, named by id (see package segment)
//	superblock                    durable high-water mark, double-buffered (package index)
//	checkpoint                    acknowledgement bitmaps of sealed segments (package index)
//	next-N.seg.tmp                the next segment, allocated and mapped ahead of time
//	repair-*.cut                  bytes Repair moved out of the log
//
// Files other than these, and subdirectories, are ignored.
//
// # Durability
//
// Records are copied into a shared mapping of the segment file, which is
// the page cache: once Append returns, the record survives the process
// being killed, whatever the sync policy. SyncNever leaves write-back to
// the kernel (a power cut may lose recent records, as with the reference
// RobustProducer); SyncAlways syncs before Append returns, concurrent
// appenders sharing one fdatasync; SyncEvery(d) syncs in the background.
// Each sync records the durable high-water mark in the superblock. The
// first failed sync or write poisons the log: every later call returns
// that error, because a retried fsync can falsely succeed.
//
// Acknowledgements are ack frames appended like records, so Ack is durable
// on the same terms as Append: after a restart no acknowledged record
// reappears in Pending.
//
// # Recovery
//
// Open verifies every frame of every segment still on disk (sealed
// segments are kept only while at least half live, or compacted, so the
// work grows with live data, not with acknowledged history) and
// classifies damage deterministically:
//
//   - a torn tail — damage at the end of the last segment, beyond the
//     durable high-water mark, with no valid frame after it, including a
//     batch without its commit frame — is cut off, logged, and counted in
//     Stats.TornBytes;
//   - anything else — damage followed by valid frames, damage or missing
//     records below the high-water mark, a segment shorter than its size,
//     a missing segment, a gap in sequence numbers, damaged metadata, a
//     missing checkpoint once compaction reclaimed a segment after the
//     first one left (its ack frames may have held acknowledgements found
//     nowhere else) — is a *CorruptionError naming the file, the offset
//     and the seq expected.
//
// Nothing is deleted on account of damage: Repair cuts the log at the
// damage and moves the cut bytes into a side file, or writes a lost
// checkpoint anew from the ack frames still on disk. Salvage reads every
// record still readable from a damaged log, changing nothing.
//
// # Reclaiming space
//
// A background goroutine writes the checkpoint after each rotation, then
// deletes sealed segments whose records are all acknowledged and rewrites
// ("compacts") sealed segments less than half live into a file holding
// only their live records, renamed into place. Disk use stays within
// about twice the live data plus two segments.
//
// # Caveats
//
//   - A record or batch must fit in one segment; a larger one gets a
//     segment of its own, sized to fit. Records are limited to 1 GiB.
//   - Segment files are mapped: a log uses address space for every
//     segment on disk, and a log on a network file system is unsupported.
//   - The format is little-endian and the mapping code is for Linux
//     (other Unix systems build, without preallocation hints).
package wal
