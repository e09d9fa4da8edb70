#!/usr/bin/env bash
# Builds the scenarios' snapshot stack (test infrastructure, never shipped) into the Docker
# engine, without any registry: our btrfs CSI driver (main.go), and from their Go modules
# the real snapshot controller and CSI snapshotter sidecar (external-snapshotter) and the
# CSI provisioner sidecar (external-provisioner). Both upstream modules carry replace
# directives, so each is built inside a copy of its own source (the snapshotter's with its
# `client` module put where its replace directive looks). Keyed by the pins and this
# directory; rebuilt only when one changes. Also keeps the snapshot CRDs and the sidecars'
# RBAC files from those modules. Prints the directory holding `images.env`, `crds/` and
# `rbac/` on its last line.
#
#   bash e2e/kind/csi/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=e2e/kind/engine.sh
source "$here/../engine.sh"
SNAPSHOTTER_VERSION=8.7.0
PROVISIONER_VERSION=6.4.0
cache="${HOLDFAST_E2E_CACHE:-$HOME/.cache/holdfast-e2e}"
# The driver by its own sources; the sidecars by their versions alone (a change to the
# driver does not rebuild them).
key="$( (echo "$SNAPSHOTTER_VERSION $PROVISIONER_VERSION"
  cat "$here/go.sum" "$here/go.mod" "$here/main.go" "$here/build.sh") | sha256sum | cut -c1-12)"
out="$cache/csi-$key"
sidecars="$cache/csi-sidecars-snapshotter-$SNAPSHOTTER_VERSION-provisioner-$PROVISIONER_VERSION"
driver_image="holdfast-e2e/csi-btrfs:$key"
snapshotter_image="holdfast-e2e/csi-snapshotter:v$SNAPSHOTTER_VERSION"
controller_image="holdfast-e2e/snapshot-controller:v$SNAPSHOTTER_VERSION"
provisioner_image="holdfast-e2e/csi-provisioner:v$PROVISIONER_VERSION"

# The host makes the btrfs filesystem the driver's volumes live on (mkfs.btrfs).
if ! command -v mkfs.btrfs >/dev/null 2>&1; then
  echo "installing btrfs-progs from Debian…" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get install -y btrfs-progs >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y btrfs-progs >/dev/null; }
fi

engine_start
have_images() {
  local i
  for i in "$driver_image" "$snapshotter_image" "$controller_image" "$provisioner_image"; do
    docker image inspect "$i" >/dev/null 2>&1 || return 1
  done
}
if have_images && [ -f "$out/images.env" ]; then
  echo "snapshot stack images up to date" >&2
  echo "$out"
  exit 0
fi

module_dir() {
  local dir
  dir="$(cd "$here" && go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "cannot find the source of $1 in the Go module cache" >&2
    return 1
  fi
  echo "$dir"
}
mkdir -p "$out/bin" "$out/crds" "$out/rbac" "$sidecars"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
snap_dir="$(module_dir "github.com/kubernetes-csi/external-snapshotter/v8@v$SNAPSHOTTER_VERSION")"
client_dir="$(module_dir "github.com/kubernetes-csi/external-snapshotter/client/v8@v$SNAPSHOTTER_VERSION")"
prov_dir="$(module_dir "github.com/kubernetes-csi/external-provisioner/v6@v$PROVISIONER_VERSION")"
build="CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'"
if [ ! -x "$out/bin/csi-btrfs" ]; then
  echo "building the btrfs test CSI driver…" >&2
  (cd "$here" && eval "GOFLAGS=-mod=readonly $build -o '$out/bin/csi-btrfs' .")
fi
if [ ! -x "$sidecars/csi-snapshotter" ] || [ ! -x "$sidecars/snapshot-controller" ]; then
  echo "building the snapshot controller and CSI snapshotter $SNAPSHOTTER_VERSION (about 4 minutes cold)…" >&2
  cp -r "$snap_dir" "$work/snap"
  cp -r "$client_dir" "$work/snap/client"
  chmod -R u+w "$work/snap"
  (cd "$work/snap" && eval "GOFLAGS=-mod=mod $build -o '$sidecars/' ./cmd/csi-snapshotter ./cmd/snapshot-controller")
fi
if [ ! -x "$sidecars/csi-provisioner" ]; then
  echo "building the CSI provisioner $PROVISIONER_VERSION (about 4 minutes cold)…" >&2
  cp -r "$prov_dir" "$work/prov"
  chmod -R u+w "$work/prov"
  (cd "$work/prov" && eval "GOFLAGS=-mod=mod $build -o '$sidecars/' ./cmd/csi-provisioner")
fi
cp "$sidecars/csi-snapshotter" "$sidecars/snapshot-controller" "$sidecars/csi-provisioner" "$out/bin/"
cp "$client_dir"/config/crd/*.storage.k8s.io_*.yaml "$out/crds/"
cp "$snap_dir/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml" \
  "$snap_dir/deploy/kubernetes/csi-snapshotter/rbac-csi-snapshotter.yaml" "$out/rbac/"
cp "$prov_dir/deploy/kubernetes/rbac.yaml" "$out/rbac/rbac-csi-provisioner.yaml"
chmod -R u+w "$out/crds" "$out/rbac"

# One binary per image, over the runtime base kind/build.sh made; root, as CSI plugins run.
image() {
  local name="$1" binary="$2" ctx="$work/ctx-$2"
  mkdir -p "$ctx"
  cp "$out/bin/$binary" "$ctx/"
  printf 'FROM holdfast-e2e/runtime-base:latest\nUSER 0:0\nCOPY %s /usr/local/bin/%s\n' \
    "$binary" "$binary" >"$ctx/Dockerfile"
  docker build -q -t "$name" "$ctx" >/dev/null
}
image "$driver_image" csi-btrfs
image "$snapshotter_image" csi-snapshotter
image "$controller_image" snapshot-controller
image "$provisioner_image" csi-provisioner
cat >"$out/images.env" <<ENV
CSI_DRIVER_IMAGE=$driver_image
CSI_SNAPSHOTTER_IMAGE=$snapshotter_image
CSI_SNAPSHOT_CONTROLLER_IMAGE=$controller_image
CSI_PROVISIONER_IMAGE=$provisioner_image
ENV
echo "$out"
