#!/usr/bin/env bash
# Prints cargo's target directory for this workspace (CARGO_TARGET_DIR, a cargo config's
# build.target-dir, or ./target), so scripts find the binaries they build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --locked 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
