#!/usr/bin/env bash
# The test command (README.md). Installs what the tests need the first time — s3s-fs from
# crates.io (an S3 server the tests start on loopback), moto and kubernetes-validate from
# PyPI, Lua 5.1 and shellcheck, and for the kind suite Docker, debootstrap and
# busybox-static from Debian — then runs formatting, lints, every test of the workspace, an
# independent schema check of the CRDs and examples, builds the control plane and Go tools
# (helm, kstatus, actionlint) from their modules, lints the workflows, and runs the
# end-to-end suites (chart checks included). Ends with one line: passed / failed / ignored
# counts and the time each phase took.
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

# The Go builds (the control plane and Go tools, then the kind images) run in the background
# from the start: their module downloads wait on the network, and their compiles share the
# cores with the Rust builds, filling what a link or a long crate leaves idle. Before the
# tests run they are reniced, so timing-sensitive tests keep the CPU. Each writes its log
# and exit status beside go_log; the phases that need them wait for them.
go_log="$(mktemp -d)"
(
  bash e2e/build.sh >"$go_log/controlplane" 2>&1
  echo $? >"$go_log/controlplane.rc"
  if [ "${HOLDFAST_SKIP_KIND:-}" != 1 ]; then
    bash e2e/kind/build.sh >"$go_log/kind" 2>&1
    rc=$?
    # The snapshot stack's images (e2e/kind/csi) sit over the runtime base built above.
    if [ "$rc" = 0 ]; then
      bash e2e/kind/csi/build.sh >>"$go_log/kind" 2>&1
      rc=$?
    fi
    echo "$rc" >"$go_log/kind.rc"
  fi
) &
go_builds=$!
node_root=""
s3s_fs=""
# On an early exit (a failed lint, say), the background builds stop with this script, and
# the Docker engine the kind build started (kind/run.sh stops it when the suite runs).
kill_tree() {
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null || true
}
# A process before its children: a child forked meanwhile inherits the new priority.
renice_tree() {
  local child
  renice -n 19 -p "$1" >/dev/null 2>&1 || true
  for child in $(pgrep -P "$1" || true); do renice_tree "$child"; done
}
stop_background() {
  kill_tree "$go_builds"
  if [ -n "$node_root" ]; then kill_tree "$node_root"; fi
  if [ -n "$s3s_fs" ]; then kill_tree "$s3s_fs"; fi
  if [ -f /tmp/holdfast-dockerd/pid ]; then
    kill "$(cat /tmp/holdfast-dockerd/pid)" 2>/dev/null || true
  fi
}
trap stop_background EXIT
# wait_for_build NAME: wait for the background build NAME, print its log; fails with it.
wait_for_build() {
  while [ ! -f "$go_log/$1.rc" ]; do
    if ! kill -0 "$go_builds" 2>/dev/null && [ ! -f "$go_log/$1.rc" ]; then
      echo "the background builds ended before $1" >&2
      return 1
    fi
    sleep 2
  done
  cat "$go_log/$1"
  return "$(cat "$go_log/$1.rc")"
}

phase "test tools"
# s3s-fs compiles beside the workspace (cargo install builds in a directory of its own);
# the tests wait for it.
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "installing s3s-fs 0.14.1 (the S3 server the tests start on loopback), in the background…"
  cargo install --locked s3s-fs --version 0.14.1 --features binary >"$go_log/s3s-fs" 2>&1 &
  s3s_fs=$!
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  echo "installing moto (a second S3 implementation) from PyPI…"
  python3 -m pip install --disable-pip-version-check --progress-bar off 'moto[server]'
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing kubernetes-validate from PyPI…"
  python3 -m pip install --disable-pip-version-check --progress-bar off kubernetes-validate
fi
# Debian's packages in one apt run (two at once would fight over dpkg's lock): Lua 5.1
# (Argo CD's, for the health script tests), shellcheck (the scripts and the workflows' run
# steps), and for the kind suite Docker, debootstrap (the node root), busybox-static and
# btrfs-progs (the test CSI driver's filesystem).
debs=()
if ! command -v lua5.1 >/dev/null 2>&1; then debs+=(lua5.1); fi
if ! command -v shellcheck >/dev/null 2>&1; then debs+=(shellcheck); fi
if [ "${HOLDFAST_SKIP_KIND:-}" != 1 ]; then
  if ! command -v dockerd >/dev/null 2>&1 && ! command -v docker >/dev/null 2>&1; then debs+=(docker.io); fi
  if ! command -v debootstrap >/dev/null 2>&1; then debs+=(debootstrap); fi
  if ! dpkg -s busybox-static >/dev/null 2>&1; then debs+=(busybox-static); fi
  if ! command -v mkfs.btrfs >/dev/null 2>&1; then debs+=(btrfs-progs); fi
fi
if [ "${#debs[@]}" -gt 0 ]; then
  echo "installing ${debs[*]} from Debian…"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get install -y "${debs[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y "${debs[@]}" >/dev/null; }
fi
# The kind node's Debian root downloads for minutes: started now, beside the compiles (the
# kind build waits for it, or bootstraps it itself if this fails).
if [ "${HOLDFAST_SKIP_KIND:-}" != 1 ]; then
  bash e2e/kind/build.sh --node-root >"$go_log/node-root" 2>&1 &
  node_root=$!
fi
# With the servers installed, an S3 test that cannot start one fails instead of skipping.
export HOLDFAST_REQUIRE_S3=1

phase "format"
cargo fmt --all -- --check

phase "clippy and test build"
# One compile that lints and builds: clippy's driver compiles the workspace's own crates
# (what `cargo clippy` does, plus code generation) and the dependencies are compiled once,
# not checked and then built. Every cargo run below, the end-to-end suites' included,
# inherits the same wrapper, so none rebuilds the workspace without it. The lints are
# those of `cargo clippy --all-targets -- -D warnings` (no benches or examples here), and
# a few more: some lints see more of the dependencies in a full build.
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
log="$(mktemp)"
status=0
cargo test --locked --workspace --no-run

phase "unit and integration tests"
if [ -n "$s3s_fs" ]; then
  wait "$s3s_fs" || { cat "$go_log/s3s-fs"; echo "installing s3s-fs failed" >&2; exit 1; }
fi
renice_tree "$go_builds"
if [ -n "$node_root" ]; then renice_tree "$node_root"; fi
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

phase "schemas of CRDs and examples"
# CRDs against apiextensions.k8s.io/v1; Secrets and other core kinds in the examples against
# their Kubernetes schemas (Holdfast kinds are validated against the CRDs by the Rust tests).
kubernetes-validate --strict --quiet crds/*.yaml
kubernetes-validate --strict --quiet --no-warn examples/*.yaml

phase "control plane and Go tools from their modules"
# Built in the background since the start; the kind images build on from here.
wait_for_build controlplane
bin="$(tail -n 1 "$go_log/controlplane")"

phase "scripts and workflows"
shellcheck -S warning scripts/*.sh e2e/*.sh e2e/kind/*.sh e2e/kind/csi/*.sh bench/*.sh .ci/run
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
  if ! wait_for_build kind; then
    echo "building the kind images failed" >&2
    status=1
  else
    bash e2e/kind/run.sh 2>&1 | tee -a "$e2e_log" || status=1
  fi
fi
wait "$go_builds" || true
rm -rf "$go_log"
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
