#!/usr/bin/env bash
# Runs the comparison benchmarks of this module and the root package's own
# benchmarks (Verify beside its floor, the interceptor over bufconn and TCP,
# the cache, the scaling benchmarks), and summarises both with benchstat.
#
#   COUNT=6 BENCHTIME=500ms bash run.sh
#
# COUNT      samples per benchmark (default 6)
# BENCHTIME  -benchtime of each sample (default 500ms)
# BENCH      -bench pattern of this module (default ".")
# OUT        this module's raw results (default results.txt, overwritten)
# ROOT_BENCH -bench pattern of the root package (default "."; "" skips it)
# ROOT_OUT   the root package's raw results (default results-root.txt)
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
ROOT_BENCH=${ROOT_BENCH-.}
ROOT_OUT=${ROOT_OUT:-results-root.txt}
INTERLEAVE=${INTERLEAVE:-1}

echo "== machine"
go version
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "loadavg before: $(cat /proc/loadavg)"

args=(-run '^$' -bench "$BENCH" -benchmem -benchtime "$BENCHTIME" -timeout 30m)
root_args=(-run '^$' -bench "$ROOT_BENCH" -benchmem -benchtime "$BENCHTIME" -timeout 30m)
: >"$OUT"
: >"$ROOT_OUT"
pass() { # count
	go test "${args[@]}" -count "$1" >>"$OUT"
	if [ -n "$ROOT_BENCH" ]; then
		(cd .. && go test "${root_args[@]}" -count "$1" .) >>"$ROOT_OUT"
	fi
}
start=$(date +%s)
if [ "$INTERLEAVE" = 1 ]; then
	for i in $(seq "$COUNT"); do
		echo "== pass $i/$COUNT" >&2
		pass 1
	done
else
	pass "$COUNT"
fi
echo "loadavg after: $(cat /proc/loadavg) ($(($(date +%s) - start)) s)"

echo
echo "== benchstat ($OUT)"
go tool benchstat "$OUT"

echo
echo "== ratio of median ns/op to the floor's, per algorithm"
go run ./cmd/ratios "$OUT"

if [ -n "$ROOT_BENCH" ]; then
	echo
	echo "== benchstat of the root package ($ROOT_OUT)"
	go tool benchstat "$ROOT_OUT"
fi
