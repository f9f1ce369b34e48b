// Package powercut holds the power-cut test of package wal on a real
// kernel: ext4 in a loop-mounted image with write-back switched off, so
// that only what was forced to the device survives the cut. It needs root
// and a loop device, changes vm sysctls for its duration, and is built
// only with the "powercut" tag:
//
//	go test -tags powercut -count=1 -v ./wal/powercut/
//
// .ci/run runs it in its own stage and fails if it skips.
package powercut
