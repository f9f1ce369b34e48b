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
// restarts and compaction. One exception: the seqs of records a power cut
// took (records no sync had made durable, see Durability) are handed out
// again by the appends after it. Code that passes seqs on before they are
// durable (under SyncNever or SyncEvery) must not rely on them staying
// unique across a power cut; Sync first, or use SyncAlways.
//
// # Layout on disk
//
// A log directory holds:
//
//	LOCK                          flock'ed by the Log holding the directory
//	00000000000000000001.seg ...  segments, named by id (see package segment)
//	superblock                    durable high-water mark, double-buffered (package index)
//	checkpoint                    acknowledgement bitmaps of sealed segments (package index)
//	encryption                    an encrypted log's key check (package index; WithEncryption)
//	next-N.seg.tmp                the next segment, allocated and mapped ahead of time
//	repair-*.cut                  bytes Repair moved out of the log
//
// Files other than these, and subdirectories, are ignored.
//
// Close removes the prepared next segment and, when no record of the
// active segment is pending, seals it behind a one-page segment that
// holds only a header (which carries the next seq) and reclaims it like
// any fully acknowledged segment: a closed log whose records are all
// acknowledged takes a few KiB on disk, and its seqs go on after Open.
//
// # Durability
//
// Records are copied into a shared mapping of the segment file, which is
// the page cache: once Append returns, the record survives the process
// being killed, whatever the sync policy. A power cut (or a kernel crash)
// keeps only what reached the device, and each policy promises how much
// that is:
//
//   - SyncAlways: every Append and AppendBatch that returned, and every
//     Ack that returned (appenders running at once share one fdatasync);
//   - SyncEvery(d): all but at most the last d, plus the time one sync
//     takes (a background goroutine syncs every d);
//   - SyncNever: everything up to the last Sync or Close, and the sealed
//     segments once the background work has synced them after a rotation
//     (the active segment is left alone), never more; the kernel writes
//     back the rest when it likes.
//
// Each sync records the durable high-water mark in the superblock
// (written after the data sync, itself synced by Close only: on disk the
// mark may be older than the last sync, never newer). Metadata never
// claims more than the data it covers, under every policy: the checkpoint
// is written only after the data it names is synced, and synced before it
// is renamed into place; a compacted copy is synced before it replaces the
// original. The first failed sync or write poisons the log: every later
// call returns that error, because a retried fsync can falsely succeed.
//
// Acknowledgements are ack frames appended like records, so Ack is durable
// on the same terms as Append: after a restart no acknowledged record
// reappears in Pending, and an Ack a power cut took only makes its record
// pending again (a duplicate, never a loss).
//
// # Recovery
//
// Open verifies every frame of every segment still on disk (sealed
// segments are kept only while at least half live, or compacted, so the
// work grows with live data, not with acknowledged history) and
// classifies damage deterministically by where it lies relative to the
// durable mark (the superblock's high-water mark, or the start of the
// segment that was active when the checkpoint on disk was written,
// whichever is later):
//
//   - beyond the mark, damage is what a crash or a power cut leaves: a
//     torn tail, a batch without its commit frame, pages never written
//     back with valid frames after them (written back out of order), a
//     segment whose name reached the disk before its header. Open cuts
//     the log at the first such hole — the rest of that segment and every
//     later segment file — logs it and counts the bytes in
//     Stats.TornBytes, without Repair. What survives is a prefix in seq
//     order: never a record after one that was lost;
//   - anything else — damage at or below the mark, missing records below
//     it, a damaged compacted segment, a segment shorter than its size, a
//     missing segment, a gap in sequence numbers below the mark, damaged
//     metadata, a missing checkpoint once compaction reclaimed a segment
//     after the first one left (its ack frames may have held
//     acknowledgements found nowhere else) — is a *CorruptionError naming
//     the file, the offset and the seq expected.
//
// Because the superblock on disk may be older than the last sync, damage
// in data synced after it is taken for a power cut's too: the mark is as
// recent as the last Close, checkpoint or superblock write-back.
//
// Apart from a power cut's leftovers, nothing is deleted on account of
// damage: Repair cuts the log at the damage and moves the cut bytes into a
// side file, or writes a lost checkpoint anew from the ack frames still on
// disk. Salvage reads every record still readable from a damaged log,
// changing nothing.
//
// # Reclaiming space
//
// After each rotation a background goroutine syncs the sealed segment.
// Once acknowledgements give it something to record (a sealed segment
// with acknowledged records, or none pending), it writes the checkpoint,
// then deletes sealed segments whose records are all acknowledged and
// rewrites ("compacts") sealed segments less than half live into a file
// holding only their live records, renamed into place. Disk use stays within
// about twice the live data plus two segments. It does so at every
// moment, not only once the background work has caught up: an Append or
// Ack that rotates to a new segment while a sealed one waits to be
// reclaimed does that reclamation itself before it returns (it then waits
// for the syncs the checkpoint needs).
//
// # Encryption
//
// With WithEncryption each record's payload is sealed with AES-256-GCM
// (package segment, Sealer), and Open refuses an encrypted log without its
// key with ErrKey (see the file encrypt.go for how the key is checked).
// Verify, OpenView, Salvage and Repair work without the key; View.SetKey
// and SalvageWithKey read the records, and RepairWithKey also cuts the
// log at a record that does not authenticate.
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
