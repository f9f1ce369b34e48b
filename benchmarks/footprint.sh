#!/usr/bin/env bash
# footprint.sh: the peak resident memory of `walpub` (and of kcat and of a
# bare franz-go client, for comparison) publishing N lines of 1 KiB, and
# what its journal keeps on disk once it exits. Run from the repository root:
#
#   benchmarks/footprint.sh [-n "20000 200000"] [-b HOST:PORT]
#
# With -b, all three publish to that broker (topics footprint-walpub-N,
# footprint-kcat-N and footprint-kgo-N; the broker must create topics on
# first use, as scripts/kafka.sh's does); without it walpub uses its
# embedded broker (whose records count in walpub's memory) and the others
# are skipped. The bare client is benchmarks/peers/kgolines: franz-go, the
# client walpub is built on, every option at its default, no journal. Peak RSS
# is /usr/bin/time -v's "Maximum resident set size" (what top shows,
# mapped journal pages included); the journal's size is its allocated
# blocks (du), not its files' apparent sizes.
set -euo pipefail

counts="20000 200000"
broker=""
while getopts "n:b:" o; do
	case $o in
	n) counts=$OPTARG ;;
	b) broker=$OPTARG ;;
	*) echo "usage: $0 [-n COUNTS] [-b HOST:PORT]" >&2; exit 2 ;;
	esac
done
[ -x /usr/bin/time ] || { echo "$0: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/walpub" ./tools/walpub
[ -z "$broker" ] || go build -C benchmarks/peers -o "$work/kgolines" ./kgolines

peak() { # the peak RSS in MiB of the command's run, from time -v's report
	awk -F: '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"
}

printf '%-8s %-10s %14s %16s\n' lines program "peak RSS MiB" "journal after"
for n in $counts; do
	# N lines of 1 KiB: a line number, then filler, 1023 bytes and a newline.
	awk -v n="$n" 'BEGIN { f = sprintf("%1015s", ""); gsub(/ /, "x", f); for (i = 0; i < n; i++) printf "%08d%s\n", i, f }' >"$work/in"
	rm -rf "$work/journal"
	url=()
	[ -n "$broker" ] && url=("kafka://$broker/footprint-walpub-$n")
	/usr/bin/time -v -o "$work/time" "$work/walpub" --journal "$work/journal" "${url[@]}" <"$work/in" >/dev/null 2>"$work/err" ||
		{ cat "$work/err" >&2; exit 1; }
	printf '%-8s %-10s %14s %16s\n' "$n" walpub "$(peak "$work/time")" "$(du -sh "$work/journal" | cut -f1)"
	if [ -n "$broker" ] && command -v kcat >/dev/null; then
		/usr/bin/time -v -o "$work/time" kcat -P -b "$broker" -t "footprint-kcat-$n" <"$work/in" 2>"$work/err" ||
			{ cat "$work/err" >&2; exit 1; }
		printf '%-8s %-10s %14s %16s\n' "$n" kcat "$(peak "$work/time")" -
	fi
	if [ -n "$broker" ]; then
		/usr/bin/time -v -o "$work/time" "$work/kgolines" "$broker" "footprint-kgo-$n" <"$work/in" 2>"$work/err" ||
			{ cat "$work/err" >&2; exit 1; }
		printf '%-8s %-10s %14s %16s\n' "$n" "bare kgo" "$(peak "$work/time")" -
	fi
done
