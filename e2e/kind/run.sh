#!/usr/bin/env bash
# The scenario suite on real kubelets: builds the kind images (build.sh, cached by pins)
# and the Holdfast image (image.sh), creates a two-node kind cluster (cluster.sh), runs
# every scenario of e2e/tests against it (the agent's own tests excepted: they test the
# stand-in; in two lanes) plus the real-node scenarios (e2e/tests/node.rs, alone at the
# end), and deletes the cluster. On
# failure, the kind logs, the controller logs and the objects' YAML are kept under
# target/kind/ and the path is printed.
#
#   bash e2e/kind/run.sh [TEST-NAME-FILTER]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
started=$SECONDS
# shellcheck source=e2e/lib.sh
source e2e/lib.sh
# shellcheck source=e2e/kind/engine.sh
source e2e/kind/engine.sh
engine_start

image=ghcr.io/holdfast-io/holdfast:e2e
# Job pods run the binary the scenarios were built with, as on the loopback plane;
# HOLDFAST_E2E_RELEASE=1 puts a release build in the image instead.
if [ "${HOLDFAST_E2E_RELEASE:-}" = 1 ]; then
  export HOLDFAST_IMAGE_PROFILE=release
else
  export HOLDFAST_IMAGE_PROFILE="${HOLDFAST_IMAGE_PROFILE:-debug}"
fi
echo "== kind images (node image, control plane, test images)"
t=$SECONDS
built="$(bash e2e/kind/build.sh)"
kind="$(echo "$built" | tail -n 2 | head -n 1)"
node_image="$(echo "$built" | tail -n 1)"
echo "kind images ready in $((SECONDS - t)) s"
echo "== the scenarios' binaries"
cargo test --locked --workspace --no-run
target="$(bash scripts/target-dir.sh)"
echo "== the Holdfast image"
t=$SECONDS
bash e2e/kind/image.sh "$image"
echo "Holdfast image built in $((SECONDS - t)) s"

echo "== kind cluster"
t=$SECONDS
dir="$(bash e2e/kind/cluster.sh up "$kind" "$node_image" "$image" | tail -n 1)"
echo "cluster up in $((SECONDS - t)) s"
keep="$target/kind"
status=1
finish() {
  if [ "$status" != 0 ]; then
    rm -rf "$keep"
    mkdir -p "$keep"
    kubectl_bin="$(bash e2e/build.sh 2>/dev/null | tail -n 1)/kubectl"
    KUBECONFIG="$dir/kubeconfig" "$kubectl_bin" get \
      nodes,namespaces,pods,jobs,persistentvolumes,persistentvolumeclaims,volumesnapshots,volumesnapshotcontents,events,backupsets,storagesets,schedules,restores \
      -A -o yaml >"$keep/objects.yaml" 2>&1 || true
    cp -r "$dir/logs" "$keep/logs" 2>/dev/null || true
    # shellcheck disable=SC1091
    (source "$dir/env" && "$HOLDFAST_E2E_KIND" export logs "$keep/kind" --name "$HOLDFAST_E2E_CLUSTER" >/dev/null 2>&1) || true
    echo "kind suite FAILED: logs and objects kept in $keep" >&2
  fi
  bash e2e/kind/cluster.sh down "$dir"
  rm -rf "$dir"
  engine_stop
}
trap finish EXIT
# shellcheck disable=SC1091
source "$dir/env"

echo "== scenarios on kind"
export HOLDFAST_BIN="$target/debug/holdfast" HOLDFAST_E2E_CONTROLLER_PROFILE=debug
# The node agent's own tests (e2e/tests/agent.rs) test the stand-in for the kubelet.
if [ -n "${HOLDFAST_E2E_TESTS:-}" ] || [ $# -gt 0 ]; then
  run_scenarios 3 agent "$@"
else
  # Two lanes, balanced by their times here: the scenarios mostly wait on pods and
  # schedules, each with a controller of its own namespace. The second lane runs the built
  # binaries (a second cargo would wait for the first one's lock on the build directory).
  # node.rs cordons and drains a node, which would move the others' pods: it runs last,
  # alone.
  beside=(scale resilience lifecycle)
  binaries="$(scenario_binaries "${beside[@]}")"
  [ "$(echo "$binaries" | grep -c .)" = "${#beside[@]}" ] ||
    { echo "cannot find the test binaries of ${beside[*]}: $binaries" >&2; exit 1; }
  (
    lane=0
    while read -r name path; do
      echo "     Running tests/$name.rs (beside the other lane)"
      (cd e2e && "$path" --ignored --test-threads 3 </dev/null) || lane=1
    done <<<"$binaries"
    exit "$lane"
  ) >"$dir/logs/beside.log" 2>&1 &
  beside_lane=$!
  rc=0
  run_scenarios 3 "agent node ${beside[*]}" || rc=1
  wait "$beside_lane" || rc=1
  cat "$dir/logs/beside.log"
  HOLDFAST_E2E_TESTS=node run_scenarios 3 agent || rc=1
  [ "$rc" = 0 ]
fi
kstatus_check "$HOLDFAST_E2E_BIN" "$dir"
status=0
echo "kind suite passed in $((SECONDS - started)) s"
