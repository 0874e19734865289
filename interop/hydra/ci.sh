#!/usr/bin/env bash
# Run grpcjwt's interop suite against Ory Hydra (interop/hydra/*_test.go):
# build Hydra if its binary is not cached yet (build.sh), then
#
#   go test -count=1 -race -v ./interop/hydra/
#
# with GRPCJWT_HYDRA_BIN set and GRPCJWT_HYDRA_REQUIRED=1. The tests start and
# stop their own Hydra processes. The script fails if the build fails, if any
# test fails or is skipped, or if a Hydra process outlives go test (each one is
# then killed by its PID). The last line is always
#
#   hydra: N passed, M failed
#
# counting top-level tests and subtests (a skip counts as failed; so does a
# go test run that failed without reporting a failed test, e.g. a build error
# or a panic). Without the Go toolchain it prints a skip notice and exits 0.
#
#   bash interop/hydra/ci.sh
#   GO_TEST_FLAGS='-run TestHydraRestart' bash interop/hydra/ci.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if ! command -v go >/dev/null 2>&1; then
	echo "hydra: SKIPPED: the Go toolchain is not installed"
	exit 0
fi
read -r -a go_flags <<<"${GO_TEST_FLAGS:-}"

work="$(mktemp -d "${TMPDIR:-/tmp}/grpcjwt-hydra.XXXXXX")"
piddir="$work/pids"
mkdir "$piddir"
go_pid=""

# alive PID: the process exists and is not a zombie (a Hydra whose test
# binary died is killed by the kernel, then reaped late by init).
alive() {
	local pid="$1" line
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -d /proc/self ]]; then
		line="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
		line="${line##*) }"
		[[ "${line:0:1}" != "Z" ]] || return 1
	fi
	return 0
}

# kill_leftovers kills, by PID, every Hydra a test started and did not stop
# (its PID file is still there, and it is alive); it counts them.
leftovers=0
kill_leftovers() {
	local f pid
	for f in "$piddir"/*; do
		[[ -e "$f" ]] || continue
		pid="$(basename "$f")"
		if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
			echo "hydra: Hydra pid $pid is still running after go test; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			leftovers=$((leftovers + 1))
		fi
		rm -f "$f"
	done
}

on_exit() {
	if [[ -n "$go_pid" ]]; then
		local kids
		kids="$(ps -o pid= --ppid "$go_pid" 2>/dev/null || true)"
		# shellcheck disable=SC2086 # kids is a list of PIDs
		kill -TERM "$go_pid" $kids 2>/dev/null || true
		wait "$go_pid" 2>/dev/null || true
	fi
	kill_leftovers
	rm -rf "$work"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
echo "=== hydra: build (cached in interop/hydra/.bin/)"
if ! bin="$(bash interop/hydra/build.sh)"; then
	echo "hydra: building Ory Hydra failed"
	echo "hydra: 0 passed, 1 failed"
	exit 1
fi
echo "hydra binary: $bin ($("$bin" version 2>/dev/null | awk '/^Version:/ { print $2 }')); build step took $((SECONDS - start))s"

echo "=== hydra: go test -count=1 -race -v ./interop/hydra/"
t0=$SECONDS
rc=0
# In the background, so that a signal reaches the traps at once.
GRPCJWT_HYDRA_BIN="$bin" GRPCJWT_HYDRA_REQUIRED=1 GRPCJWT_HYDRA_PIDDIR="$piddir" \
	go test -count=1 -race -v -timeout 5m "${go_flags[@]}" ./interop/hydra/ >"$work/test.log" 2>&1 &
go_pid=$!
tail -n +1 -f --pid="$go_pid" "$work/test.log" &
tail_pid=$!
wait "$go_pid" || rc=$?
go_pid=""
wait "$tail_pid" 2>/dev/null || true
kill_leftovers

passed="$(grep -cE '^ *--- PASS: ' "$work/test.log" || true)"
failed="$(grep -cE '^ *--- FAIL: ' "$work/test.log" || true)"
skipped="$(grep -cE '^ *--- SKIP: ' "$work/test.log" || true)"
echo
echo "=== hydra: go test exit $rc in $((SECONDS - t0))s; $passed passed, $failed failed, $skipped skipped; $leftovers Hydra processes left over"
if ((skipped > 0)); then
	echo "hydra: skipped tests count as failed (GRPCJWT_HYDRA_REQUIRED=1 should make a missing binary fail):"
	grep -E '^ *--- SKIP: ' "$work/test.log" || true
	failed=$((failed + skipped))
fi
if ((rc != 0 && failed == 0)); then
	failed=1 # go test failed without a failed test: a build error, a panic, a timeout
fi
if ((passed == 0 && failed == 0)); then
	echo "hydra: no test ran"
	failed=1
fi
if ((leftovers > 0)); then
	failed=$((failed + leftovers))
fi
echo "hydra: $passed passed, $failed failed"
((failed == 0))
