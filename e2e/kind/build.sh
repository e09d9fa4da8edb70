#!/usr/bin/env bash
# Builds, without any image registry, every image a kind cluster of ours needs, into the
# Docker engine `engine.sh` provides:
#
#   runtime base    the Debian packages distroless/cc is made of (libc, libgcc, CA
#                   certificates, tzdata, a nonroot user 65532), no shell: `docker import`
#   node image      Debian bookworm (debootstrap) with systemd, containerd, runc and the CNI
#                   plugins from Debian, kind's own node files (its entrypoint, units,
#                   containerd configuration, from the kind module), kubelet, kubeadm and
#                   kubectl from the Kubernetes module, and these images preloaded:
#   control plane   kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy
#                   (with Debian's iptables), etcd, pause (pause.c from the Kubernetes
#                   module), CoreDNS (the plugins kubeadm's Corefile uses, coredns/main.go):
#                   each from its Go module, tagged as kubeadm expects
#   test images     a shell (Debian's busybox-static) and the S3 server (s3s-fs)
#
# Everything is keyed by its pins (the versions below, the modules' go.sum, kind's files,
# this script) and rebuilt only when a pin changes. Prints the node image on its last line.
# The Holdfast image itself is built from the project's Dockerfile by `image.sh`.
#
#   bash e2e/kind/build.sh               build what is missing
#   bash e2e/kind/build.sh --node-root   only the node's Debian root (no Docker needed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
e2e="$(cd "$here/.." && pwd)"
# shellcheck source=e2e/kind/engine.sh
source "$here/engine.sh"

KUBERNETES_VERSION="$(sed -n 's/^KUBERNETES_VERSION=//p' "$e2e/build.sh")"
KIND_VERSION=0.33.0
COREDNS_VERSION=1.14.7
DEBIAN_SUITE=bookworm
cache="${HOLDFAST_E2E_CACHE:-$HOME/.cache/holdfast-e2e}"
started=$SECONDS

# Debian's debootstrap (the node root) and busybox-static (the shell test image).
if ! command -v debootstrap >/dev/null 2>&1 || ! dpkg -s busybox-static >/dev/null 2>&1; then
  echo "installing debootstrap and busybox-static from Debian…" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get install -y debootstrap busybox-static >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y debootstrap busybox-static >/dev/null; }
fi

# The node's Debian root, cached as a tarball by its suite and packages. debootstrap waits
# on the network for minutes cold, so the test command starts it on its own (--node-root)
# beside the compiles; the lock makes a second build wait for the first instead of
# bootstrapping again.
packages=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,jq,procps,containerd,runc,containernetworking-plugins,e2fsprogs
root_tar="$cache/debootstrap-$DEBIAN_SUITE-$(echo "$packages" | sha256sum | cut -c1-12).tar"
node_root_tar() {
  mkdir -p "$cache"
  exec 9>"$root_tar.lock"
  flock 9
  if [ ! -f "$root_tar" ]; then
    echo "building the node root (debootstrap $DEBIAN_SUITE; about 3 minutes cold)…" >&2
    local tmp
    tmp="$(mktemp -d)"
    debootstrap --variant=minbase --include="$packages" \
      "$DEBIAN_SUITE" "$tmp/root" http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 ||
      { tail -n 20 "$tmp/debootstrap.log" >&2; rm -rf "$tmp"; return 1; }
    tar -C "$tmp/root" --numeric-owner -cf "$root_tar.partial" .
    mv "$root_tar.partial" "$root_tar"
    rm -rf "$tmp"
  fi
  flock -u 9
}
if [ "${1:-}" = "--node-root" ]; then
  node_root_tar
  exit 0
fi

engine_start
export DOCKER_BUILDKIT=1

# The Kubernetes and etcd binaries of the loopback plane, plus the node's.
bin="$(bash "$e2e/build.sh" | tail -n 1)"
export GOFLAGS=-mod=mod
# The source directory of a module in the module cache, downloaded first: `go list -m`
# alone answers nothing for a module a cold cache does not hold yet.
module_dir() {
  local dir
  dir="$(cd "$1" && go mod download "$2" && go list -m -f '{{.Dir}}' "$2")"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "cannot find the source of $2 (module of $1) in the Go module cache" >&2
    return 1
  fi
  echo "$dir"
}
kind_dir="$(module_dir "$here/tools" sigs.k8s.io/kind)"
# The images keep the names kubeadm and kind's containerd configuration run them by; the
# content is ours, built from the pins here (the cluster's kubeadm patch names our etcd and
# CoreDNS versions).
PAUSE_TAG="$(sed -n 's|.*sandbox_image = "registry.k8s.io/pause:\(.*\)"|\1|p' \
  "$kind_dir/images/base/files/etc/containerd/config.toml")"
if [ ! -x "$cache/kind-$KIND_VERSION/kind" ]; then
  echo "building kind $KIND_VERSION…" >&2
  (cd "$here/tools" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
    -o "$cache/kind-$KIND_VERSION/kind" sigs.k8s.io/kind)
fi

# Binaries by their pins; images also by this script and kind's node files.
bin_key="$( (cat "$here/coredns/go.sum" "$here/coredns/main.go" "$here/node/go.sum"
  echo "$KUBERNETES_VERSION $COREDNS_VERSION $PAUSE_TAG") | sha256sum | cut -c1-12)"
key="$( (echo "$bin_key"; cat "$here/build.sh" "$here/runc-bounded" "$here/tools/go.sum" "$e2e/controlplane/go.sum" \
  "$e2e/etcd/go.sum" "$(command -v s3s-fs 2>/dev/null || echo /dev/null)"
  echo "$DEBIAN_SUITE"
  find "$kind_dir/images/base/files" -type f | sort | xargs cat) | sha256sum | cut -c1-12)"
node_image="holdfast-e2e/node:v$KUBERNETES_VERSION-$key"
out="$cache/kind-$KUBERNETES_VERSION-$bin_key"
if docker image inspect "$node_image" >/dev/null 2>&1 &&
  docker image inspect "holdfast-e2e/runtime-base:$key" >/dev/null 2>&1 &&
  [ -x "$out/bin/kubelet" ]; then
  echo "kind images up to date" >&2
  echo "$cache/kind-$KIND_VERSION/kind"
  echo "$node_image"
  exit 0
fi
mkdir -p "$out/bin"
work="$(mktemp -d)"
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

# --- binaries -------------------------------------------------------------------------
# shellcheck source=e2e/lib.sh
source "$e2e/lib.sh"
ldflags="$(kube_ldflags "$KUBERNETES_VERSION")"
if [ ! -x "$out/bin/kubelet" ]; then
  echo "building kubelet, kubeadm, kube-scheduler, kube-proxy $KUBERNETES_VERSION…" >&2
  (cd "$here/node" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
    -ldflags "$ldflags" -o "$out/bin/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy)
fi
if [ ! -x "$out/bin/coredns" ]; then
  echo "building CoreDNS $COREDNS_VERSION…" >&2
  (cd "$here/coredns" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
    -o "$out/bin/coredns" .)
fi
if [ ! -x "$out/bin/pause" ]; then
  k8s_dir="$(module_dir "$here/node" k8s.io/kubernetes)"
  gcc -Os -static -DVERSION="$PAUSE_TAG" -o "$out/bin/pause" "$k8s_dir/build/pause/linux/pause.c"
fi

# --- the runtime base: distroless/cc's Debian packages, no shell ---------------------
echo "building the runtime base from Debian packages…" >&2
mkdir -p "$work/debs" "$work/runtime" "$work/iptables-debs"
# apt-get download fetches as the unprivileged _apt user where it can write.
chmod 777 "$work/debs" "$work/iptables-debs"
(cd "$work/debs" && apt-get download -q=2 base-files netbase tzdata ca-certificates \
  libc6 libgcc-s1 libssl3 >/dev/null)
runtime_root() {
  local root="$1"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$root"; done
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot" "$root/root"
  # What ca-certificates' postinst (update-ca-certificates) would write.
  find "$root/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat \
    >"$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
}
runtime_root "$work/runtime"
tar -C "$work/runtime" --numeric-owner -c . |
  docker import --change 'USER 65532:65532' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    - "holdfast-e2e/runtime-base:$key" >/dev/null
docker tag "holdfast-e2e/runtime-base:$key" holdfast-e2e/runtime-base:latest

# kube-proxy's base: the runtime base plus Debian's iptables (nft backend, as the node's).
mkdir -p "$work/proxy"
(cd "$work/iptables-debs" && apt-get download -q=2 iptables libip4tc2 libip6tc2 libxtables12 \
  libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11 conntrack >/dev/null)
runtime_root "$work/proxy"
for deb in "$work"/iptables-debs/*.deb; do dpkg-deb -x "$deb" "$work/proxy"; done
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "$work/proxy/usr/sbin/$t"
done
tar -C "$work/proxy" --numeric-owner -c . |
  docker import --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "holdfast-e2e/iptables-base:$key" >/dev/null

# --- images of single binaries ----------------------------------------------------------
# binary_image NAME BASE BINARY [ENTRYPOINT]: BINARY at /usr/local/bin (and / for pause and
# CoreDNS, where their manifests look), run as root as kubeadm's static pods expect.
binary_image() {
  local name="$1" base="$2" binary="$3" entry="${4:-}"
  local ctx
  ctx="$work/ctx-$(basename "$binary")"
  mkdir -p "$ctx"
  cp "$binary" "$ctx/"
  {
    echo "FROM $base"
    echo "USER 0:0"
    if [ -n "$entry" ]; then
      echo "COPY $(basename "$binary") $entry"
      echo "ENTRYPOINT [\"$entry\"]"
    else
      echo "COPY $(basename "$binary") /usr/local/bin/$(basename "$binary")"
    fi
  } >"$ctx/Dockerfile"
  docker build -q -t "$name" "$ctx" >/dev/null
}
rt="holdfast-e2e/runtime-base:$key"
v="v$KUBERNETES_VERSION"
echo "building the control-plane, etcd, pause and CoreDNS images…" >&2
binary_image "registry.k8s.io/kube-apiserver:$v" "$rt" "$bin/kube-apiserver"
binary_image "registry.k8s.io/kube-controller-manager:$v" "$rt" "$bin/kube-controller-manager"
binary_image "registry.k8s.io/kube-scheduler:$v" "$rt" "$out/bin/kube-scheduler"
binary_image "registry.k8s.io/kube-proxy:$v" "holdfast-e2e/iptables-base:$key" "$out/bin/kube-proxy"
etcd_version="$(sed -n 's/^ETCD_VERSION=//p' "$e2e/build.sh")"
binary_image "registry.k8s.io/etcd:$etcd_version-0" "$rt" "$bin/etcd"
binary_image "registry.k8s.io/pause:$PAUSE_TAG" "$rt" "$out/bin/pause" /pause
binary_image "registry.k8s.io/coredns/coredns:v$COREDNS_VERSION" "$rt" "$out/bin/coredns" /coredns

# The test images: a shell (busybox-static) and the S3 server.
mkdir -p "$work/shell"
cp /bin/busybox "$work/shell/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n' \
  >"$work/shell/Dockerfile"
docker build -q -t holdfast-e2e/shell:1 "$work/shell" >/dev/null
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "installing s3s-fs 0.14.1 (the S3 server of the scenarios) from crates.io…" >&2
  cargo install --locked s3s-fs --version 0.14.1 --features binary >&2
fi
binary_image holdfast-e2e/s3s-fs:0.14.1 "$rt" "$(command -v s3s-fs)" /s3s-fs

# --- the node image -------------------------------------------------------------------
root="$work/node"
node_root_tar
mkdir -p "$root"
tar -C "$root" --numeric-owner -xf "$root_tar"
files="$kind_dir/images/base/files"
install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
mkdir -p "$root/kind/bin" "$root/etc/containerd" "$root/etc/systemd/system/kubelet.service.d" \
  "$root/etc/kubernetes/manifests" "$root/opt/cni"
install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
install -m 0644 "$files/etc/crictl.yaml" "$root/etc/"
install -m 0644 "$files/etc/containerd/config.toml" "$root/etc/containerd/"
# Privileged pods (kube-proxy) where the bounding set lacks a capability: see runc-bounded.
install -m 0755 "$here/runc-bounded" "$root/usr/local/bin/runc-bounded"
sed -i 's|^\( *\)SystemdCgroup = true|&\n\1BinaryName = "/usr/local/bin/runc-bounded"|' \
  "$root/etc/containerd/config.toml"
# Without CAP_SYS_RESOURCE nothing may lower its OOM score: pods of the Guaranteed class and
# static pods ask for a negative one. Clamp it, as kind does for rootless nodes.
if ! (( (16#$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24) & 1 )); then
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$root/etc/containerd/config.toml"
fi
install -m 0644 "$files/etc/default/kubelet" "$root/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice \
  "$root/etc/systemd/system/"
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
# Debian's containerd and CNI plugins where kind's files expect its own builds.
ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
ln -sf /usr/bin/ctr "$root/usr/local/bin/ctr"
ln -sfn /usr/lib/cni "$root/opt/cni/bin"
chroot "$root" sh -euc '
  find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
  rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/*
  rm -f /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev*
  rm -f /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
  echo ReadKMsg=no >> /etc/systemd/journald.conf
  ln -sf /usr/lib/systemd/systemd /sbin/init
  systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  systemctl mask systemd-binfmt.service >/dev/null 2>&1
  ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" |
    jq "del(.process.rlimits)" > /etc/containerd/cri-base.json
  apt-get clean
  rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
'
for b in kubelet kubeadm; do install -m 0755 "$out/bin/$b" "$root/usr/bin/$b"; done
install -m 0755 "$bin/kubectl" "$root/usr/bin/kubectl"
echo "v$KUBERNETES_VERSION" >"$root/kind/version"
tar -C "$root" --numeric-owner -c . | docker import - "holdfast-e2e/node-root:$key" >/dev/null
# What kind's base image declares (`docker import` cannot set a stop signal).
printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' \
  "holdfast-e2e/node-root:$key" | docker build -q -t "holdfast-e2e/node-base:$key" - >/dev/null
docker rmi "holdfast-e2e/node-root:$key" >/dev/null

# Preload the images into the node's containerd, as kind's own node-image build does.
echo "preloading images into the node image…" >&2
images=("registry.k8s.io/kube-apiserver:$v" "registry.k8s.io/kube-controller-manager:$v"
  "registry.k8s.io/kube-scheduler:$v" "registry.k8s.io/kube-proxy:$v"
  "registry.k8s.io/etcd:$etcd_version-0" "registry.k8s.io/pause:$PAUSE_TAG"
  "registry.k8s.io/coredns/coredns:v$COREDNS_VERSION")
build_ctr="holdfast-node-build-$$"
docker run -d --name "$build_ctr" --entrypoint=sleep --security-opt seccomp=unconfined \
  "holdfast-e2e/node-base:$key" infinity >/dev/null
trap 'docker rm -f -v "$build_ctr" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
docker exec "$build_ctr" bash -c 'nohup containerd >/dev/null 2>&1 &'
docker exec "$build_ctr" bash -c 'for i in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done; ctr version >/dev/null'
docker save "${images[@]}" | docker exec -i "$build_ctr" ctr --namespace=k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
docker exec "$build_ctr" pkill containerd
# Nothing reaps it in this container (its pid 1 is sleep): gone once only a zombie is left.
docker exec "$build_ctr" bash -c 'for i in $(seq 1 50); do ps -C containerd -o stat= | grep -qv Z || exit 0; sleep 0.2; done; exit 1'
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  "$build_ctr" "$node_image" >/dev/null
docker rm -f -v "$build_ctr" >/dev/null
docker rmi "holdfast-e2e/node-base:$key" >/dev/null 2>&1 || true
echo "built the kind images in $((SECONDS - started)) s" >&2
echo "$cache/kind-$KIND_VERSION/kind"
echo "$node_image"
