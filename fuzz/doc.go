// Package fuzz holds the native Go fuzz targets for every decoder of
// walpub's on-disk formats, and a corruption campaign over whole logs. It
// has no code of its own outside tests.
//
// The targets, each with its invariants in its doc comment:
//
//	FuzzFrame           segment.DecodeFrame
//	FuzzSegmentHeader   segment.DecodeHeader
//	FuzzSegmentScan     one segment file opened by wal.Open and wal.OpenView
//	FuzzLogDir          a real log directory with fuzzer-chosen damage, or
//	                    a set of files built from the input (segments,
//	                    checkpoint, superblock), damaged too
//	FuzzAckPayload      index.DecodeAckPayload
//	FuzzCheckpoint      index.DecodeCheckpoint
//	FuzzSuperblock      index.DecodeSuperblock
//	FuzzEncryptionFile  index.DecodeEncryption
//	FuzzJournalRecord   the robust producer's journal record (adapter/kafka)
//	FuzzEncryptedFrame  segment.Sealer: sealed frames damaged, opened with
//	                    the right key and another
//
// TestExhaustiveBitFlips flips every bit of a small synced log in turn (the
// headers and data of its segments, a sample of their zero tails, the whole
// superblock and checkpoint) and requires each flip to be detected (a
// *wal.CorruptionError) or harmless (exactly the original pending records).
//
// # Seeds
//
// The seed corpora under testdata/fuzz/<Target>/ are generated from real
// logs written by package wal (empty, one record, many segments,
// compressed, batches, acknowledged, compacted), plus maximal lengths and
// valid-plus-garbage inputs, by
//
//	go test ./fuzz -run TestGenerateSeeds -args -gen
//
// which also writes testdata/baselog/, the small log that FuzzLogDir and
// TestExhaustiveBitFlips damage. Regression seeds (crashers found and
// fixed) are named "regression-*" and are never regenerated away.
//
// # Fuzzing
//
// go test runs every seed as a regression test. To fuzz one target:
//
//	GOTOOLCHAIN=go1.27.3 go test ./fuzz -run '^$' -fuzz '^FuzzFrame$' -fuzztime 10m -parallel 2
//
// or every target in turn with fuzz/fuzz.sh [time] [targets...] (20 s each
// by default). Fuzz on Go 1.27 (GOTOOLCHAIN=go1.27.3; fuzz.sh and .ci/run
// set it): Go 1.26's fuzzer can fail a target with a bare "context deadline
// exceeded" as -fuzztime ends (go.dev/issue/75804). New interesting inputs are kept in
// $(go env GOCACHE)/fuzz, so later runs start where earlier ones stopped.
// A failure is written to testdata/fuzz/<Target>/<hash>; rename it
// regression-<what>, fix the bug and keep the file. Targets that decode
// checksummed structures take a "fix" or "mode" argument that makes the
// harness recompute the checksums after mutation, so that the fuzzer gets
// past them to the checks behind.
//
// No target skips an input as a known issue: every bug the fuzzers found
// is fixed, and its input kept as a regression-* seed. Should one be
// reported and left for later, name its seeds regression-known-* and let
// the target skip the inputs that trigger it, saying why, until it is
// fixed.
//
// Run fuzzing under a memory limit (fuzz.sh sets ulimit -v): an input
// that makes a decoder ask for an absurd allocation then fails the worker
// with "out of memory" instead of taking the machine down.
//
// The full bit-flip campaign runs by default; under the race detector it
// flips every 8th bit unless WALPUB_BITFLIP=full.
package fuzz
