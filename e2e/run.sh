#!/usr/bin/env bash
# The end-to-end suite: builds the control plane (e2e/build.sh) and the binaries under
# test, starts the control plane (e2e/cluster.sh) and the node agent, runs the scenario
# tests (Rust tests of the holdfast-e2e crate marked #[ignore], run here with --ignored),
# and stops everything. On failure, every component's log and the objects' YAML are kept
# under target/e2e/ and the path is printed.
#
#   bash e2e/run.sh [TEST-NAME-FILTER]
#   HOLDFAST_E2E_TESTS="agent guards" bash e2e/run.sh   only these scenario files
#
# HOLDFAST_E2E_RELEASE=1 runs the controller from a release build, HOLDFAST_E2E_CONTROLLER_BIN
# from a given binary (with HOLDFAST_E2E_CONTROLLER_PROFILE naming its build profile), for
# measurements; the job pods keep the debug build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
started=$SECONDS

echo "== building the control plane"
bin="$(bash e2e/build.sh | tail -n 1)"
echo "== building holdfast and the node agent"
# One build for the workspace's tests: it also builds the binaries (integration tests run
# them), with the same features as `cargo test --workspace`, so nothing builds twice.
cargo test --locked --workspace --no-run
target="$(bash scripts/target-dir.sh)"

echo "== starting the control plane"
dir="$(bash e2e/cluster.sh up | tail -n 1)"
keep="$target/e2e"
status=1
finish() {
  if [ "$status" != 0 ]; then
    rm -rf "$keep"
    mkdir -p "$keep"
    "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get \
      nodes,namespaces,pods,jobs,persistentvolumes,persistentvolumeclaims,events,backupsets,storagesets,schedules,restores \
      -A -o yaml >"$keep/objects.yaml" 2>&1 || true
    cp -r "$dir/logs" "$keep/logs" 2>/dev/null || true
    find "$dir/agent/pods" -name log -path '*containers*' 2>/dev/null | while read -r f; do
      rel="${f#"$dir/agent/pods/"}"
      mkdir -p "$keep/containers/$(dirname "$rel")"
      cp "$f" "$keep/containers/$rel"
    done
    echo "end-to-end suite FAILED: logs and objects kept in $keep" >&2
  fi
  bash e2e/cluster.sh down "$dir"
  rm -rf "$dir"
}
trap finish EXIT
# shellcheck disable=SC1091
source "$dir/env"
api_port="${HOLDFAST_E2E_API##*:}"
setsid "$target/debug/holdfast-node-agent" --state-dir "$dir/agent" \
  --holdfast-bin "$target/debug/holdfast" --api-port "$api_port" \
  >"$dir/logs/node-agent.log" 2>&1 &
echo "node-agent $!" >>"$dir/pids"
# The agent registers the nodes a moment after it starts; `wait` needs them to exist.
for _ in $(seq 1 120); do
  "$bin/kubectl" get node node-a node-b >/dev/null 2>&1 && break
  sleep 0.5
done
"$bin/kubectl" wait --for condition=Ready --timeout 60s node/node-a node/node-b

# The CRDs, as an installation puts them first (the crds scenarios check them in detail).
"$bin/kubectl" apply --server-side -f crds/ >/dev/null
"$bin/kubectl" wait --for condition=Established --timeout 60s -f crds/ >/dev/null

echo "== scenarios"
controller_bin="${HOLDFAST_E2E_CONTROLLER_BIN:-$target/debug/holdfast}"
# The build profile measurements report: say it when giving a binary.
export HOLDFAST_E2E_CONTROLLER_PROFILE="${HOLDFAST_E2E_CONTROLLER_PROFILE:-debug}"
if [ "${HOLDFAST_E2E_RELEASE:-}" = 1 ]; then
  cargo build --locked --release -p holdfast
  controller_bin="$target/release/holdfast"
  HOLDFAST_E2E_CONTROLLER_PROFILE=release
fi
export HOLDFAST_BIN="$controller_bin" HOLDFAST_E2E_BIN="$bin"
# Every scenario but the real-node ones (e2e/tests/node.rs: kind only). scripts/test.sh
# keeps here only the agent's own tests (HOLDFAST_E2E_TESTS=agent) when the kind suite runs
# every other scenario on real kubelets.
run_scenarios 4 node "$@"
kstatus_check "$bin" "$dir"
if [ -d "$dir/statuses" ]; then
  rm -rf "$target/e2e-statuses"
  cp -r "$dir/statuses" "$target/e2e-statuses"
fi
status=0
echo "end-to-end suite passed in $((SECONDS - started)) s"
