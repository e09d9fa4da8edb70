#!/usr/bin/env bash
# The test command (README.md): formatting, lints, every test of the workspace, and the
# generated CRDs and examples checked by an independent Kubernetes schema validator.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi
# CRDs against apiextensions.k8s.io/v1; Secrets and other core kinds in the examples against
# their Kubernetes schemas (Holdfast kinds are validated against the CRDs by the Rust tests).
kubernetes-validate --strict --quiet crds/*.yaml
kubernetes-validate --strict --quiet --no-warn examples/*.yaml
