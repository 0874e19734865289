#!/usr/bin/env bash
# Start / stop the Logto-shaped oidc-provider used by grpcjwt interop tests.
#
#   interop/oidc-provider/run.sh start   # prints: export GRPCJWT_OIDC_ISSUER=... (etc.)
#   interop/oidc-provider/run.sh stop
#   interop/oidc-provider/run.sh status
#
#   eval "$(interop/oidc-provider/run.sh start)"
#
# Environment (passed through to server.mjs): PORT (default 0 = random),
# ALG (default ES384), AT_TTL (default 600).
# Files: OIDC_STATE_DIR (default: this directory) holds oidc-provider.pid,
# oidc-provider.log (stderr) and oidc-provider.ready (the ready JSON line).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_dir="${OIDC_STATE_DIR:-$here}"
pid_file="$state_dir/oidc-provider.pid"
log_file="$state_dir/oidc-provider.log"
ready_file="$state_dir/oidc-provider.ready"
start_timeout="${OIDC_START_TIMEOUT:-30}"

die() { echo "run.sh: $*" >&2; exit 1; }

# alive PID: the process exists and is not a zombie (an exited child that
# init has not reaped yet still answers kill -0).
alive() {
	local pid="$1" line rest
	[[ -n "$pid" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r "/proc/$pid/stat" ]]; then
		line="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
		rest="${line##*) }"
		[[ "${rest:0:1}" != "Z" ]] || return 1
	fi
	return 0
}

is_running() {
	[[ -f "$pid_file" ]] || return 1
	alive "$(cat "$pid_file" 2>/dev/null || true)"
}

# json_field FIELD < line: extract a top-level string field with node (always present here).
json_field() {
	node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(v===undefined)process.exit(1);process.stdout.write(String(v))})' "$1"
}

print_exports() {
	local line issuer admin
	line="$(head -n 1 "$ready_file")"
	issuer="$(printf '%s' "$line" | json_field issuer)"
	admin="$(printf '%s' "$line" | json_field admin)"
	echo "export GRPCJWT_OIDC_ISSUER=$issuer"
	echo "export GRPCJWT_OIDC_ADMIN=$admin"
}

cmd_start() {
	command -v node >/dev/null || die "node is not installed"
	mkdir -p "$state_dir"
	if is_running; then
		die "already running (pid $(cat "$pid_file")); run '$0 stop' first"
	fi
	rm -f "$pid_file" "$ready_file"

	if [[ ! -d "$here/node_modules/oidc-provider" ]]; then
		(cd "$here" && npm ci --no-audit --no-fund >&2) || die "npm ci failed"
	fi

	# stdout carries exactly one JSON line once the server is ready.
	(cd "$here" && exec node server.mjs >"$ready_file" 2>"$log_file" </dev/null) &
	local pid=$!
	echo "$pid" >"$pid_file"

	local deadline=$((SECONDS + start_timeout))
	until [[ -s "$ready_file" ]] && grep -q '^{"issuer"' "$ready_file"; do
		if ! alive "$pid"; then
			rm -f "$pid_file" "$ready_file"
			echo "--- $log_file ---" >&2
			cat "$log_file" >&2 || true
			die "server exited before becoming ready"
		fi
		if ((SECONDS >= deadline)); then
			kill "$pid" 2>/dev/null || true
			rm -f "$pid_file" "$ready_file"
			echo "--- $log_file ---" >&2
			cat "$log_file" >&2 || true
			die "server not ready within ${start_timeout}s"
		fi
		sleep 0.1
	done
	print_exports
}

cmd_stop() {
	if [[ ! -f "$pid_file" ]]; then
		echo "run.sh: not running (no pid file)" >&2
		return 0
	fi
	local pid
	pid="$(cat "$pid_file")"
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 100; i++)); do
			alive "$pid" || break
			sleep 0.05
		done
		if alive "$pid"; then
			echo "run.sh: pid $pid did not exit after SIGTERM, sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
	fi
	rm -f "$pid_file" "$ready_file"
}

cmd_status() {
	if is_running; then
		echo "running (pid $(cat "$pid_file"))"
		print_exports
	else
		echo "not running"
		return 1
	fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) die "usage: $0 start|stop|status" ;;
esac
