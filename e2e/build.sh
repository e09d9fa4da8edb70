#!/usr/bin/env bash
# Builds the local control plane from Go modules: kube-apiserver, kube-controller-manager
# and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3, and helm from
# helm.sh/helm/v4 (for the chart), the kstatus checker (sigs.k8s.io/cli-utils) and
# actionlint (the workflows), each in its own module (e2e/controlplane, e2e/etcd, e2e/helm,
# e2e/kstatus, e2e/actionlint) so their dependency trees never meet. Binaries go to a cache directory keyed by the
# pinned versions and the modules' go.sum, so a rebuild happens only when a pin changes; the
# Go build and module caches are kept between runs as usual. Prints the directory holding
# the binaries on its last line.
#
#   bash e2e/build.sh            build if needed
#   bash e2e/build.sh --update   re-pin every Go module of both suites to the versions here
#                                and in kind/build.sh (KIND_VERSION, COREDNS_VERSION)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

KUBERNETES_VERSION=1.35.4
ETCD_VERSION=3.6.16
HELM_VERSION=4.3.1
ACTIONLINT_VERSION=1.7.12
cache="${HOLDFAST_E2E_CACHE:-$HOME/.cache/holdfast-e2e}"

if [ "${1:-}" = "--update" ]; then
  kind_build="$here/kind/build.sh"
  KIND_VERSION="$(sed -n 's/^KIND_VERSION=//p' "$kind_build")"
  COREDNS_VERSION="$(sed -n 's/^COREDNS_VERSION=//p' "$kind_build")"
  minor="0.${KUBERNETES_VERSION#1.}"
  # kubernetes_module DIR NAME: a go.mod requiring k8s.io/kubernetes, whose staging modules
  # (replaced by ./staging/src/... in its own go.mod, which a module download does not
  # have) are pinned to their published versions of the same release.
  kubernetes_module() {
    {
      echo "module $2"
      echo
      echo "go 1.25.0"
      echo
      echo "require k8s.io/kubernetes v$KUBERNETES_VERSION"
      echo
      echo "// k8s.io/kubernetes replaces these with ./staging/src/..., which a module download"
      echo "// does not have: use the published staging modules of the same release."
      echo "replace ("
      curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/v$KUBERNETES_VERSION.mod" |
        sed -n '/^replace (/,/^)/p' | grep '=>' | awk -v v="v$minor" '{print "\t"$1" => "$1" "v}'
      echo ")"
    } >"$1/go.mod"
    rm -f "$1/go.sum"
  }
  kubernetes_module "$here/controlplane" holdfast.io/e2e/controlplane
  (cd "$here/controlplane" && go get "k8s.io/kubernetes/cmd/kube-apiserver@v$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@v$KUBERNETES_VERSION")
  kubernetes_module "$here/kind/node" holdfast.io/e2e/kind/node
  (cd "$here/kind/node" && go get -tool "k8s.io/kubernetes/cmd/kubelet@v$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kubeadm@v$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-proxy@v$KUBERNETES_VERSION")
  (cd "$here/etcd" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" && go mod tidy)
  (cd "$here/helm" && go get -tool "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION")
  (cd "$here/actionlint" && go get -tool "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION")
  (cd "$here/kind/tools" && go get -tool "sigs.k8s.io/kind@v$KIND_VERSION")
  (cd "$here/kind/coredns" && go get "github.com/coredns/coredns@v$COREDNS_VERSION" && go mod tidy)
  echo "updated; commit the go.mod and go.sum of e2e/{controlplane,etcd,helm,actionlint} and e2e/kind/{node,tools,coredns}"
  exit 0
fi

key="$(cat "$here/controlplane/go.sum" "$here/etcd/go.sum" "$here/etcd/main.go" "$here/helm/go.sum" \
  "$here/kstatus/go.sum" "$here/kstatus/main.go" "$here/actionlint/go.sum" |
  sha256sum | cut -c1-16)"
out="$cache/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-$key/bin"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] &&
  [ -x "$out/kubectl" ] && [ -x "$out/etcd" ] && [ -x "$out/helm" ] &&
  [ -x "$out/kstatus-check" ] && [ -x "$out/actionlint" ]; then
  echo "control plane binaries up to date" >&2
  echo "$out"
  exit 0
fi

started=$SECONDS
mkdir -p "$out.partial"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
echo "building etcd $ETCD_VERSION…" >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" .)
echo "building kube-apiserver, kube-controller-manager, kubectl $KUBERNETES_VERSION (a cold build takes about 7 minutes on 2 cores)…" >&2
# shellcheck source=e2e/lib.sh
source "$here/lib.sh"
ldflags="$(kube_ldflags "$KUBERNETES_VERSION")"
(cd "$here/controlplane" && go build -trimpath -ldflags "$ldflags" -o "$out.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl)
echo "building helm $HELM_VERSION…" >&2
(cd "$here/helm" && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
  -o "$out.partial/helm" helm.sh/helm/v4/cmd/helm)
echo "building kstatus-check (sigs.k8s.io/cli-utils)…" >&2
(cd "$here/kstatus" && go build -trimpath -ldflags "-s -w" -o "$out.partial/kstatus-check" .)
echo "building actionlint (the workflows' linter)…" >&2
(cd "$here/actionlint" && go build -trimpath -ldflags "-s -w" -o "$out.partial/actionlint" \
  github.com/rhysd/actionlint/cmd/actionlint)
rm -rf "$out"
mv "$out.partial" "$out"
echo "built the control plane and Go tools in $((SECONDS - started)) s" >&2
echo "$out"
