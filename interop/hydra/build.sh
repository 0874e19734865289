#!/usr/bin/env bash
# Build Ory Hydra, at the version interop/hydra/tools/go.mod pins, from the Go
# module proxy, and print the binary's absolute path (and nothing else) on
# stdout. The binary is cached by version in interop/hydra/.bin/ (git-ignored):
# an existing one is reused without running go at all.
#
#   bin="$(bash interop/hydra/build.sh)"
#
# Needs Go and a C compiler: Hydra's SQLite driver (for dsn: memory) is cgo.
# A cold module and build cache takes several minutes; Go's output and the
# build time go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
# The version is read from go.mod, not asked of go: this needs no network and
# no module graph.
version="$(awk '$1 == "github.com/ory/hydra/v2" { print $2; exit }' "$tools/go.mod")"
if [[ ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "build.sh: cannot read the Hydra version from $tools/go.mod (got '$version')" >&2
	exit 1
fi
bin="$here/.bin/hydra-$version"
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$here/.bin"
# Build to a temporary name and rename: an interrupted build never leaves a
# file that a later run would take for a finished binary.
tmp="$(mktemp "$here/.bin/.hydra-$version.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
echo "build.sh: building Ory Hydra $version with $(go env GOVERSION) (cold caches: several minutes)" >&2
start=$SECONDS
# sqlite: the driver for dsn: memory; sqlite_omit_load_extension: no dlopen.
# The -X flags set what `hydra version` and Hydra's logs report, as Hydra's
# own Makefile does.
(
	cd "$tools"
	CGO_ENABLED=1 go build -trimpath \
		-tags sqlite,sqlite_omit_load_extension \
		-ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$version" \
		-o "$tmp" github.com/ory/hydra/v2
) >&2
mv -f "$tmp" "$bin"
trap - EXIT
echo "build.sh: built $bin in $((SECONDS - start))s" >&2
echo "$bin"
