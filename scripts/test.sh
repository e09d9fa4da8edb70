#!/usr/bin/env bash
# The test command (README.md). Installs the test servers and validators it needs the first
# time (s3s-fs from crates.io, moto and kubernetes-validate from PyPI), then runs formatting,
# lints, every test of the workspace, and an independent schema check of the CRDs and examples.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "installing s3s-fs (the S3 server the tests start on loopback)…"
  cargo install --quiet --locked s3s-fs --version 0.14.1 --features binary
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
# With the servers installed, an S3 test that cannot start one fails instead of skipping.
export HOLDFAST_REQUIRE_S3=1

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace

# CRDs against apiextensions.k8s.io/v1; Secrets and other core kinds in the examples against
# their Kubernetes schemas (Holdfast kinds are validated against the CRDs by the Rust tests).
kubernetes-validate --strict --quiet crds/*.yaml
kubernetes-validate --strict --quiet --no-warn examples/*.yaml
