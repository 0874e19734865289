#!/usr/bin/env bash
# Static analysis (staticcheck) and known-vulnerability scan (govulncheck),
# both installed with `go install` at pinned versions. Exits non-zero on any
# finding, in the root module or in the separate bench/, connectjwt/ and
# examples/connect/ modules.
#
# govulncheck's default database (vuln.go.dev) is not reachable from this
# project's machines, so the database is built offline from the Go module
# proxy: the module golang.org/x/vulndb (pinned pseudo-version below) ships
# every entry as OSV JSON under data/osv/, and its own command
# golang.org/x/vulndb/cmd/indexdb turns that folder into the v1 database
# layout (index/db.json, index/modules.json, ID/GO-*.json) that
# `govulncheck -db file:///dir` reads. To refresh the database, bump
# VULNDB_VERSION to the output of `go list -m golang.org/x/vulndb@latest`.
#
# Building indexdb costs 2 to 4.5 min and ~0.9 GB of modules on a machine
# with cold caches, so by default (GRPCJWT_VULNDB_BUILD=osv) the step is
# skipped and govulncheck is pointed at data/osv itself: govulncheck then
# builds the same index in memory (same entries, same results, checked
# against the indexdb database). GRPCJWT_VULNDB_BUILD=indexdb builds the
# official layout instead (cached per version).
#
# Tools and the built database are cached under $GRPCJWT_CI_CACHE
# (default ~/.cache/grpcjwt-ci), keyed by tool version and Go version.
# Run from anywhere: bash .ci/security.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATICCHECK_VERSION=v0.8.2
GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
VULNDB_BUILD=${GRPCJWT_VULNDB_BUILD:-osv} # osv (default: fast on a cold machine) or indexdb

# Modules checked: the root module, the benchmark module, and the
# connect-go module with its example.
MODULES=(. bench connectjwt examples/connect)

start=$SECONDS
step() { echo; echo "-- $* ($((SECONDS - start))s)"; }

goversion=$(go env GOVERSION)
cache=${GRPCJWT_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grpcjwt-ci}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=$(mktemp -d)
fi
work=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# install_tool PACKAGE VERSION: go install PACKAGE@VERSION into the cache
# (once per version and Go version) and print the binary's path.
install_tool() {
  local pkg=$1 ver=$2 name=${1##*/}
  local dir="$cache/bin/$name@$ver-$goversion"
  if [ ! -x "$dir/$name" ]; then
    local tmp
    tmp=$(mktemp -d "$cache/tmp.XXXXXX")
    # Outside the repository so neither module's go.mod is involved.
    if ! (cd "$tmp" && GOBIN="$tmp" go install "$pkg@$ver") >&2; then
      rm -rf "$tmp"
      return 1
    fi
    mkdir -p "$cache/bin"
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$dir/$name"
}

failed=()

# ---------------------------------------------------------------- staticcheck
step "install staticcheck@$STATICCHECK_VERSION"
staticcheck=$(install_tool honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION")
"$staticcheck" -version

for mod in "${MODULES[@]}"; do
  step "staticcheck ./... in module $mod"
  if (cd "$mod" && "$staticcheck" ./...); then
    echo "staticcheck ($mod): no findings"
  else
    echo "staticcheck ($mod): FINDINGS (see above)"
    failed+=("staticcheck:$mod")
  fi
done

# ---------------------------------------------------------------- govulncheck
step "install govulncheck@$GOVULNCHECK_VERSION"
govulncheck=$(install_tool golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION")

step "vulnerability database: golang.org/x/vulndb@$VULNDB_VERSION from the module proxy"
skip_reason=""
db=""
osv=""
if ! dl=$(cd "$work" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" 2>&1); then
  skip_reason="cannot download golang.org/x/vulndb@$VULNDB_VERSION from the module proxy: $(echo "$dl" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -1)"
else
  vulndb_dir=$(echo "$dl" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  osv="$vulndb_dir/data/osv"
  if [ -z "$vulndb_dir" ] || ! compgen -G "$osv/GO-*.json" >/dev/null; then
    skip_reason="golang.org/x/vulndb@$VULNDB_VERSION has no OSV entries under data/osv"
  fi
fi

if [ -z "$skip_reason" ]; then
  # Freshness: the pseudo-version's timestamp is the vulndb commit's time.
  stamp=${VULNDB_VERSION#v0.0.0-}; stamp=${stamp%%-*}
  iso="${stamp:0:4}-${stamp:4:2}-${stamp:6:2}T${stamp:8:2}:${stamp:10:2}:${stamp:12:2}Z"
  age_days=$(( ($(date -u +%s) - $(date -u -d "$iso" +%s)) / 86400 ))
  entries=$(find "$osv" -maxdepth 1 -name 'GO-*.json' | wc -l)
  newest=$(find "$osv" -maxdepth 1 -name 'GO-*.json' -printf '%f\n' | sort -V | tail -1)
  echo "database snapshot: $iso ($age_days days old), $entries entries, newest ${newest%.json}"
  if latest=$(cd "$work" && timeout 30 go list -m -f '{{.Version}}' golang.org/x/vulndb@latest 2>/dev/null) \
     && [ -n "$latest" ] && [ "$latest" != "$VULNDB_VERSION" ]; then
    echo "note: a newer snapshot is on the module proxy: $latest (bump VULNDB_VERSION in .ci/security.sh)"
  fi

  db="$cache/vulndb/$VULNDB_VERSION"
  if [ "$VULNDB_BUILD" = osv ]; then
    db="$osv"
  elif [ ! -f "$db/index/modules.json" ]; then
    rm -rf "$work/db"
    if indexdb=$(install_tool golang.org/x/vulndb/cmd/indexdb "$VULNDB_VERSION") \
       && "$indexdb" -vulns "$osv" -out "$work/db"; then
      # The module zip has no git history, so every entry's "modified" is
      # zero and so is the database's; record the snapshot's time instead
      # (shown by govulncheck -version).
      printf '{"modified":"%s"}' "$iso" > "$work/db/index/db.json"
      gzip -n -c "$work/db/index/db.json" > "$work/db/index/db.json.gz"
      mkdir -p "$cache/vulndb"
      rm -rf "$db"
      mv "$work/db" "$db"
    else
      # govulncheck also reads a plain folder of OSV files (building its
      # index in memory); same entries, same results.
      echo "indexdb could not be installed or run: pointing govulncheck at the OSV folder itself"
      db="$osv"
    fi
  fi
  echo "database: $db"
fi

if [ -n "$skip_reason" ]; then
  echo "govulncheck: skipped: no vulnerability database reachable offline ($skip_reason)"
else
  "$govulncheck" -db "file://$db" -version
  for mod in "${MODULES[@]}"; do
    step "govulncheck ./... in module $mod"
    rc=0
    (cd "$mod" && "$govulncheck" -db "file://$db" ./...) > "$work/govulncheck.out" 2>&1 || rc=$?
    cat "$work/govulncheck.out"
    if [ "$rc" -eq 0 ]; then
      echo "govulncheck ($mod): no vulnerabilities reached from the code"
    else
      if [ "$rc" -eq 3 ]; then
        echo "govulncheck ($mod): FINDINGS, in short:"
        awk '/^Vulnerability #/ { id = $3; summary = ""; insum = 1; next }
             insum && /^  More info:/ { insum = 0 }
             insum { sub(/^ +/, ""); summary = summary (summary == "" ? "" : " ") $0 }
             /^ +Found in:/ { found = $3 }
             /^ +Fixed in:/ { printf "  %s  %s, fixed in %s  (%s)\n", id, found, $3, summary }' \
          "$work/govulncheck.out"
      else
        echo "govulncheck ($mod): failed with exit code $rc"
      fi
      failed+=("govulncheck:$mod")
    fi
  done
fi

step "security checks done"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "staticcheck and govulncheck: no findings"
