#!/bin/sh
# Run every fuzz target of package fuzz in turn, each for the given time
# (default 20s), beyond its seed corpus. A crasher stops the run with the
# failing input written to fuzz/testdata/fuzz/<Target>/.
#
#   fuzz/fuzz.sh              # 20 s per target (.ci/run's fuzz stage has
#                             # its own loop: FUZZ_BUDGET shared by all)
#   fuzz/fuzz.sh 10m          # the issue's 10 minutes each
#   PARALLEL=2 fuzz/fuzz.sh 1h FuzzLogDir FuzzSegmentScan
#
# New interesting inputs are minimized for at most MINIMIZE (default 10s,
# instead of go test's 60s, which starves the slow whole-log targets).
# Fuzzing runs on GOTOOLCHAIN (default go1.27.3, fetched by the go command
# from the module proxy): Go 1.26 can fail a target with a bare "context
# deadline exceeded" as -fuzztime ends (go.dev/issue/75804).
set -eu
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
cd "$(dirname "$0")/.."
time=${1:-20s}
[ $# -gt 0 ] && shift
targets=${*:-$(go test ./fuzz -list '^Fuzz' | grep '^Fuzz')}
# A decoder that asks for an absurd allocation should fail, not take the
# machine down with it.
ulimit -v 16000000 2>/dev/null || true
for t in $targets; do
	echo "=== $t ($time)"
	go test ./fuzz -run '^$' -fuzz "^$t\$" -fuzztime "$time" -fuzzminimizetime "${MINIMIZE:-10s}" -parallel "${PARALLEL:-1}"
done
