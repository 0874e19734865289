#!/usr/bin/env bash
# Runs the verification benchmarks and summarises them.
#
#   COUNT=6 BENCHTIME=500ms bash run.sh
#
# COUNT      samples per benchmark (default 6)
# BENCHTIME  -benchtime of each sample (default 500ms)
# BENCH      -bench pattern (default ".")
# OUT        raw results file (default results.txt, overwritten)
# INTERLEAVE 1 (default): COUNT separate `go test -count 1` passes, so that a
#            burst of load from other processes spreads over every
#            implementation instead of hitting all samples of one;
#            0: one `go test -count $COUNT` pass.
set -euo pipefail
cd "$(dirname "$0")"

COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-500ms}
BENCH=${BENCH:-.}
OUT=${OUT:-results.txt}
INTERLEAVE=${INTERLEAVE:-1}

echo "== machine"
go version
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "loadavg before: $(cat /proc/loadavg)"

args=(-run '^$' -bench "$BENCH" -benchmem -benchtime "$BENCHTIME" -timeout 30m)
: >"$OUT"
start=$(date +%s)
if [ "$INTERLEAVE" = 1 ]; then
	for i in $(seq "$COUNT"); do
		echo "== pass $i/$COUNT" >&2
		go test "${args[@]}" -count 1 >>"$OUT"
	done
else
	go test "${args[@]}" -count "$COUNT" >>"$OUT"
fi
echo "loadavg after: $(cat /proc/loadavg) ($(($(date +%s) - start)) s)"

echo
echo "== benchstat ($OUT)"
go tool benchstat "$OUT"

echo
echo "== ratio of median ns/op to the floor's, per algorithm"
go run ./cmd/ratios "$OUT"
