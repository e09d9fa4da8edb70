#!/usr/bin/env bash
# Builds the peers that Debian does not package, once, into $PEERS (default
# ~/.cache/holdfast-bench): rustic from its crate (LTO off: with it the link needs more
# memory and time than a 2-core machine should spend on a peer) and kopia from its Go module
# (pinned in bench/kopia/go.mod). A peer that cannot be built is reported, with the reason,
# in $PEERS/<name>.unavailable, which bench/report.py puts into RESULTS.md; the benchmark
# runs without it rather than failing.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PEERS="${PEERS:-$HOME/.cache/holdfast-bench}"
RUSTIC_VERSION=0.11.4
KOPIA_VERSION=$(awk '$1 == "github.com/kopia/kopia" {print $2}' "$here/kopia/go.mod")
mkdir -p "$PEERS"

build() { # NAME BINARY VERSION COMMAND...
  local name=$1 bin=$2 version=$3
  shift 3
  if [ -x "$bin" ] && [ "$(cat "$PEERS/$name.version" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  echo "building $name $version (once)…"
  local start=$SECONDS
  if "$@" > "$PEERS/$name.build.log" 2>&1 && [ -x "$bin" ]; then
    echo "$version" > "$PEERS/$name.version"
    rm -f "$PEERS/$name.unavailable"
    echo "built $name in $((SECONDS - start)) s"
  else
    {
      echo "$name $version could not be built here:"
      tail -5 "$PEERS/$name.build.log"
    } > "$PEERS/$name.unavailable"
    cat "$PEERS/$name.unavailable" >&2
  fi
}

build rustic "$PEERS/rustic/bin/rustic" "$RUSTIC_VERSION" \
  env CARGO_PROFILE_RELEASE_LTO=false cargo install --quiet --locked rustic-rs \
  --version "$RUSTIC_VERSION" --root "$PEERS/rustic"
build kopia "$PEERS/kopia/bin/kopia" "$KOPIA_VERSION" \
  bash -c "cd '$here/kopia' && mkdir -p '$PEERS/kopia/bin' && CGO_ENABLED=0 go build -trimpath -o '$PEERS/kopia/bin/kopia' github.com/kopia/kopia"
