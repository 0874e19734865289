#!/usr/bin/env bash
# Run the grpcjwt interop tests (interop/interop_test.go) against the real
# identity provider in interop/oidc-provider, once per signing algorithm.
#
#   bash interop/ci.sh                    # ES384 (Logto's default) RS256 PS256 ES256 EdDSA
#   ALGS="ES384 EdDSA" bash interop/ci.sh
#   GO_TEST_FLAGS=-v bash interop/ci.sh
#
# Every algorithm gets its own provider (interop/oidc-provider/run.sh start,
# with its own OIDC_STATE_DIR and ALG). One algorithm at a time, the script
# evaluates that provider's exports, runs `go test -count=1 -race ./interop/`
# against it and stops it; since a start takes seconds, the next algorithm's
# provider starts in the background while the tests run. Every provider still
# running is stopped, by its PID, when the script exits, however it exits.
# The script fails if a provider cannot be started or if any go test run
# fails (the remaining algorithms still run, so one log shows every failure).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_sh="$root/interop/oidc-provider/run.sh"
read -r -a algs <<<"${ALGS:-ES384 RS256 PS256 ES256 EdDSA}"
read -r -a go_flags <<<"${GO_TEST_FLAGS:-}"
((${#algs[@]} > 0)) || { echo "ci.sh: ALGS is empty" >&2; exit 1; }

declare -A state_dirs # alg -> OIDC_STATE_DIR of its provider, while it may run
declare -A starters   # alg -> PID of its run.sh start, while it runs

# alive PID: the process exists and is not a zombie (the providers are
# reparented once run.sh exits, and their new parent may reap them late).
alive() {
	local pid="$1" line
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -d /proc/self ]]; then
		# Gone from /proc (reaped since kill -0) counts as dead.
		line="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
		line="${line##*) }"
		[[ "${line:0:1}" != "Z" ]] || return 1
	fi
	return 0
}

stop_provider() {
	local alg="$1" dir pid=""
	dir="${state_dirs[$alg]:-}"
	[[ -n "$dir" ]] || return 0
	# A start still in progress writes its PID file before it returns.
	if [[ -n "${starters[$alg]:-}" ]]; then
		wait "${starters[$alg]}" 2>/dev/null || true
		unset "starters[$alg]"
	fi
	unset "state_dirs[$alg]"
	pid="$(cat "$dir/oidc-provider.pid" 2>/dev/null || true)"
	OIDC_STATE_DIR="$dir" "$run_sh" stop || true
	# run.sh stop signals the recorded PID; make sure that PID is gone.
	if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
		echo "ci.sh: provider $alg (pid $pid) still running after stop; sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}

stop_all() {
	local alg
	for alg in "${!state_dirs[@]}"; do
		stop_provider "$alg"
	done
}

# go test runs in the background (so that a signal reaches the traps at
# once); on an early exit, end it and the test binary it runs, by PID.
go_pid=""
stop_go_test() {
	[[ -n "$go_pid" ]] || return 0
	local kids
	kids="$(ps -o pid= --ppid "$go_pid" 2>/dev/null || true)"
	# shellcheck disable=SC2086 # kids is a list of PIDs
	kill -TERM "$go_pid" $kids 2>/dev/null || true
	wait "$go_pid" 2>/dev/null || true
	go_pid=""
}

on_exit() {
	stop_go_test
	stop_all
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$root"
for tool in go node; do
	command -v "$tool" >/dev/null || { echo "ci.sh: $tool is not installed" >&2; exit 1; }
done

# start_provider ALG starts ALG's provider in the background; run.sh writes
# the exports, and nothing else, on stdout.
start_provider() {
	local alg="$1"
	state_dirs[$alg]="$(mktemp -d "${TMPDIR:-/tmp}/grpcjwt-oidc.$alg.XXXXXX")"
	OIDC_STATE_DIR="${state_dirs[$alg]}" ALG="$alg" "$run_sh" start \
		>"${state_dirs[$alg]}/exports" 2>"${state_dirs[$alg]}/start.err" &
	starters[$alg]=$!
}

# await_provider ALG waits for ALG's start to finish; exits if it failed.
await_provider() {
	local alg="$1" pid="${starters[$1]:-}"
	unset "starters[$alg]"
	[[ -n "$pid" ]] || return 0
	if ! wait "$pid"; then
		echo "ci.sh: starting the provider with ALG=$alg failed:" >&2
		cat "${state_dirs[$alg]}/start.err" >&2 || true
		exit 1
	fi
}

# A loaded CI machine can take a while to load oidc-provider.
export OIDC_START_TIMEOUT="${OIDC_START_TIMEOUT:-90}"
start_provider "${algs[0]}"

declare -A result took
failed=0
for i in "${!algs[@]}"; do
	alg="${algs[i]}"
	echo "=== interop: ALG=$alg"
	t0=$SECONDS
	await_provider "$alg"
	if ((i + 1 < ${#algs[@]})); then
		start_provider "${algs[i + 1]}"
	fi
	dir="${state_dirs[$alg]}"
	exports="$(cat "$dir/exports")"
	# Evaluate exactly the two expected lines and nothing else.
	n=0
	while IFS= read -r line; do
		if [[ ! "$line" =~ ^export\ GRPCJWT_OIDC_(ISSUER|ADMIN)=http://127\.0\.0\.1:[0-9]+/(oidc|admin)$ ]]; then
			echo "ci.sh: unexpected output from run.sh start: $line" >&2
			exit 1
		fi
		n=$((n + 1))
	done <<<"$exports"
	((n == 2)) || { echo "ci.sh: run.sh start printed $n lines, want 2" >&2; exit 1; }
	eval "$exports"
	export GRPCJWT_OIDC_EXPECT_ALG="$alg" GRPCJWT_OIDC_REQUIRED=1
	echo "provider: $GRPCJWT_OIDC_ISSUER (pid $(cat "$dir/oidc-provider.pid"))"

	rc=0
	go test -count=1 -race -v -timeout 3m "${go_flags[@]}" ./interop/ >"$dir/go-test.out" 2>&1 &
	go_pid=$!
	wait "$go_pid" || rc=$?
	go_pid=""
	# -v shows every test's outcome: print the summary lines, and fail on
	# a skip, which means a check did not run.
	grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok )' "$dir/go-test.out" | grep -v '^=== RUN' || true
	if grep -q -- '--- SKIP' "$dir/go-test.out"; then
		echo "ci.sh: ALG=$alg: a test was skipped; the suite must run every check:" >&2
		grep -A3 -- '--- SKIP' "$dir/go-test.out" >&2 || true
		((rc == 0)) && rc=3
	fi
	if ((rc != 0)); then
		tail -n 60 "$dir/go-test.out" >&2
	fi
	if ((rc != 0)); then
		failed=1
		result[$alg]="FAIL (go test exit $rc)"
		echo "--- provider log, ALG=$alg (last 50 lines) ---" >&2
		grep -v "quick start development-only in-memory adapter" "$dir/oidc-provider.log" | tail -n 50 >&2 || true
	else
		result[$alg]="ok"
	fi

	stop_provider "$alg"
	unset GRPCJWT_OIDC_ISSUER GRPCJWT_OIDC_ADMIN GRPCJWT_OIDC_EXPECT_ALG
	took[$alg]=$((SECONDS - t0))
done

echo
echo "=== interop summary (seconds per ALG: waiting for its provider, go test incl. build, stop)"
for alg in "${algs[@]}"; do
	printf '%-6s %-24s %3ss\n' "$alg" "${result[$alg]}" "${took[$alg]}"
done
if ((failed)); then
	echo "interop: FAIL" >&2
	exit 1
fi
echo "interop: PASS"
