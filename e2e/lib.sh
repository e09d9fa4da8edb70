#!/usr/bin/env bash
# Sourced by both suites' scripts (e2e/run.sh, e2e/kind/run.sh) and both control-plane
# builds (e2e/build.sh, e2e/kind/build.sh): what they do the same way.

# The -ldflags that stamp a Kubernetes binary with its version, as a release build does.
kube_ldflags() {
  local version="$1" minor
  minor="${version#1.}"
  minor="${minor%%.*}"
  echo "-s -w -X k8s.io/component-base/version.gitVersion=v$version" \
    "-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "-X k8s.io/component-base/version.gitTreeState=clean" \
    "-X k8s.io/client-go/pkg/version.gitVersion=v$version"
}

# run_scenarios THREADS LEFT_OUT [TEST-NAME-FILTER...]: the scenario files of e2e/tests as
# test binaries, selected within the workspace build (a `-p` build would resolve features
# anew and compile kube and its dependencies a second time), run with --ignored.
# HOLDFAST_E2E_TESTS names the files to run; otherwise every file but those LEFT_OUT names
# (space-separated).
run_scenarios() {
  local threads="$1" left_out="$2" f name
  shift 2
  local tests=()
  for f in e2e/tests/*.rs; do
    name="$(basename "$f" .rs)"
    if [ -n "${HOLDFAST_E2E_TESTS:-}" ]; then
      case " $HOLDFAST_E2E_TESTS " in *" $name "*) ;; *) continue ;; esac
    else
      case " $left_out " in *" $name "*) continue ;; esac
    fi
    tests+=(--test "$name")
  done
  cargo test --locked --workspace --no-fail-fast "${tests[@]}" -- --ignored --test-threads "$threads" "$@"
}

# scenario_binaries NAME...: "NAME PATH" per built test binary of e2e/tests/NAME.rs (to run
# them beside a cargo that holds the build directory's lock).
scenario_binaries() {
  local tests=() name
  for name in "$@"; do tests+=(--test "$name"); done
  cargo test --locked --workspace --no-run "${tests[@]}" --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
names = set(sys.argv[1:])
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in names and m.get("executable"):
        print(m["target"]["name"], m["executable"])' "$@"
}

# kstatus_check BIN DIR: how kstatus (Flux, kubectl-style waiters) reads what the scenarios
# captured under DIR/statuses, with the health they expected (Argo CD's reading was checked
# as each was captured).
kstatus_check() {
  local bin="$1" dir="$2"
  if [ -d "$dir/statuses" ]; then
    echo "== kstatus over the captured objects"
    "$bin/kstatus-check" "$dir/statuses" helm/holdfast/argocd/testdata
  fi
}
