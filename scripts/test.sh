#!/usr/bin/env bash
# The test command (README.md). Installs what the tests need the first time — s3s-fs from
# crates.io (an S3 server the tests start on loopback), moto and kubernetes-validate from
# PyPI, Lua 5.1 and shellcheck from Debian — then runs formatting, lints, every test of the
# workspace, an independent schema check of the CRDs and examples, builds the control plane
# and Go tools (helm, kstatus, actionlint) from their modules, lints the workflows, and runs
# the end-to-end suite (chart checks included). Ends with one line: passed / failed /
# ignored counts and the time each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

start=$SECONDS
phases=()
phase_start=$SECONDS
phase() {
  if [ -n "${current:-}" ]; then phases+=("$current $((SECONDS - phase_start))s"); fi
  current="$1"
  phase_start=$SECONDS
  echo
  echo "== $1"
}

phase "test tools"
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "installing s3s-fs 0.14.1 (the S3 server the tests start on loopback)…"
  cargo install --locked s3s-fs --version 0.14.1 --features binary
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  echo "installing moto (a second S3 implementation) from PyPI…"
  python3 -m pip install --disable-pip-version-check --progress-bar off 'moto[server]'
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing kubernetes-validate from PyPI…"
  python3 -m pip install --disable-pip-version-check --progress-bar off kubernetes-validate
fi
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get install -y "$@" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y "$@" >/dev/null; }
}
if ! command -v lua5.1 >/dev/null 2>&1; then
  echo "installing lua5.1 (Argo CD's Lua, for the health script tests) from Debian…"
  apt_install lua5.1
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck (the scripts and the workflows' run steps) from Debian…"
  apt_install shellcheck
fi
# With the servers installed, an S3 test that cannot start one fails instead of skipping.
export HOLDFAST_REQUIRE_S3=1

phase "format"
cargo fmt --all -- --check

phase "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

phase "unit and integration tests"
log="$(mktemp)"
status=0
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

phase "schemas of CRDs and examples"
# CRDs against apiextensions.k8s.io/v1; Secrets and other core kinds in the examples against
# their Kubernetes schemas (Holdfast kinds are validated against the CRDs by the Rust tests).
kubernetes-validate --strict --quiet crds/*.yaml
kubernetes-validate --strict --quiet --no-warn examples/*.yaml

phase "control plane and Go tools from their modules"
bin="$(bash e2e/build.sh | tail -n 1)"

# The kind images (node image, control plane, test images; cached by their pins) build in
# the background from here on, beside the script checks and the loopback run.
kind_build_log="$(mktemp)"
if [ "${HOLDFAST_SKIP_KIND:-}" != 1 ]; then
  (bash e2e/kind/build.sh >"$kind_build_log" 2>&1; echo $? >"$kind_build_log.rc") &
  kind_build=$!
fi

phase "scripts and workflows"
shellcheck -S warning scripts/*.sh e2e/*.sh e2e/kind/*.sh bench/*.sh .ci/run
"$bin/actionlint"

phase "end-to-end on a control plane built from source"
# The scenarios are the ignored tests above; here they run against a real API server,
# with the chart checks (they need the helm built above).
e2e_log="$(mktemp)"
if [ "${HOLDFAST_SKIP_KIND:-}" = 1 ]; then
  bash e2e/run.sh 2>&1 | tee "$e2e_log" || status=1
else
  # The kind suite below runs every other scenario on real kubelets: here only the tests of
  # the node agent itself, which kind has no use for (and CI stays within its time).
  HOLDFAST_E2E_TESTS=agent bash e2e/run.sh 2>&1 | tee "$e2e_log" || status=1
fi

phase "end-to-end on kind (real kubelets, images built here)"
# The same scenarios and the real-node ones on a two-node kind cluster: Docker from
# Debian's packages, started and stopped by the suite; every image built from source or
# Debian packages (e2e/README.md). HOLDFAST_SKIP_KIND=1 leaves it out on a machine without
# a container engine; the counts then say so.
if [ "${HOLDFAST_SKIP_KIND:-}" = 1 ]; then
  echo "skipped: HOLDFAST_SKIP_KIND=1"
else
  wait "$kind_build" || true
  cat "$kind_build_log"
  if [ "$(cat "$kind_build_log.rc" 2>/dev/null)" != 0 ]; then
    echo "building the kind images failed" >&2
    status=1
  else
    bash e2e/kind/run.sh 2>&1 | tee -a "$e2e_log" || status=1
  fi
fi
rm -f "$kind_build_log" "$kind_build_log.rc"
phase "done"

# Scenario tests count as passed or failed in each end-to-end run (loopback, kind), not as
# ignored: a scenario that ran on either backend leaves the ignored count.
counts="$(cat "$log" "$e2e_log" | awk '/^test result:/ {p+=$4; f+=$6; i+=$8} END {print p+0, f+0, i+0}')"
read -r passed failed ignored <<<"$counts"
scenarios="$(grep -hE '^test .* \.\.\. (ok|FAILED)$' "$e2e_log" | awk '{print $2}' | sort -u | wc -l)"
counts="$passed passed, $failed failed, $((ignored - scenarios)) ignored"
rm -f "$log" "$e2e_log"
echo
echo "tests: $counts; phases: ${phases[*]}; total $((SECONDS - start))s"
exit "$status"
