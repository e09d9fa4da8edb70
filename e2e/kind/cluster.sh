#!/usr/bin/env bash
# A kind cluster for the scenarios: one control-plane node and one worker from the node
# image `build.sh` made (kubelet with `failCgroupV1: false`: these hosts are cgroup v1),
# pod networking by Debian's CNI plugins (ptp + host-local on each node's podCIDR, routes
# between the nodes, masquerade for traffic leaving the pod network: what kindnetd does),
# the scenario directory mounted at the same path in every node (hostPath volumes the
# scenarios fill and read), the Holdfast, shell and S3 images loaded, the CRDs applied, and
# s3s-fs serving a bucket on the kind network's gateway. Writes an `env` file like
# `e2e/cluster.sh` does, plus HOLDFAST_E2E_BACKEND=kind and the images to use.
#
#   bash e2e/kind/cluster.sh up KIND NODE_IMAGE HOLDFAST_IMAGE   prints DIR
#   bash e2e/kind/cluster.sh down DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=e2e/kind/engine.sh
source "$here/engine.sh"

down() {
  local dir="$1"
  if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    source "$dir/env"
    "$HOLDFAST_E2E_KIND" delete cluster --name "$HOLDFAST_E2E_CLUSTER" >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/s3s-fs.pid" ]; then kill "$(cat "$dir/s3s-fs.pid")" 2>/dev/null || true; fi
}

# Run a kubectl wait ($1 the kubectl, the rest its arguments); when it fails, say which
# and show the stack's pods and events before failing.
csi_wait() {
  local kubectl="$1"
  shift
  if "$kubectl" "$@" >/dev/null; then
    return 0
  fi
  echo "the snapshot stack did not come up: kubectl $*" >&2
  "$kubectl" get pods -A -o wide >&2 || true
  "$kubectl" get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2 || true
  return 1
}

# The snapshot stack (e2e/kind/csi, test infrastructure): a btrfs filesystem made on the
# host and loop-mounted in the worker node, the snapshot CRDs and controller, the btrfs
# CSI driver with the provisioner and snapshotter sidecars on that node, the StorageClass
# and VolumeSnapshotClass `holdfast-btrfs`.
csi_up() {
  local kind="$1" cluster="$2" dir="$3" kubectl="$4"
  local stack worker
  stack="$(bash "$here/csi/build.sh" | tail -n 1)"
  # shellcheck disable=SC1091
  source "$stack/images.env"
  # Listed whole, then searched: `grep -m1` stopping early would SIGPIPE kind under pipefail.
  local nodes
  nodes="$("$kind" get nodes --name "$cluster")"
  worker="$(grep -m1 worker <<<"$nodes")"
  truncate -s 4G "$dir/csi-btrfs.img"
  mkfs.btrfs -q "$dir/csi-btrfs.img" >/dev/null
  docker exec "$worker" sh -c "mkdir -p /var/lib/holdfast-csi && mount -o loop $dir/csi-btrfs.img /var/lib/holdfast-csi"
  "$kind" load docker-image --name "$cluster" "$CSI_DRIVER_IMAGE" "$CSI_SNAPSHOTTER_IMAGE" \
    "$CSI_SNAPSHOT_CONTROLLER_IMAGE" "$CSI_PROVISIONER_IMAGE" >>"$dir/logs/kind-load.log" 2>&1
  "$kubectl" apply --server-side -f "$stack/crds/" >/dev/null
  csi_wait "$kubectl" wait --for condition=Established --timeout 180s -f "$stack/crds/"
  "$kubectl" create namespace holdfast-csi >/dev/null
  "$kubectl" apply -f "$stack/rbac/rbac-snapshot-controller.yaml" >/dev/null
  sed 's/namespace: default.*/namespace: holdfast-csi/' "$stack/rbac/rbac-csi-provisioner.yaml" \
    "$stack/rbac/rbac-csi-snapshotter.yaml" | "$kubectl" apply -n holdfast-csi -f - >/dev/null
  sed -e "s|__NODE__|$worker|" -e "s|__DRIVER_IMAGE__|$CSI_DRIVER_IMAGE|" \
    -e "s|__SNAPSHOTTER_IMAGE__|$CSI_SNAPSHOTTER_IMAGE|" \
    -e "s|__SNAPSHOT_CONTROLLER_IMAGE__|$CSI_SNAPSHOT_CONTROLLER_IMAGE|" \
    -e "s|__PROVISIONER_IMAGE__|$CSI_PROVISIONER_IMAGE|" "$here/csi/deploy.yaml" |
    "$kubectl" apply -f - >/dev/null
  csi_wait "$kubectl" -n holdfast-csi rollout status deployment/csi-btrfs --timeout 300s
  csi_wait "$kubectl" -n kube-system rollout status deployment/snapshot-controller --timeout 300s
  # Registered with the worker's kubelet: its CSINode lists the driver.
  for _ in $(seq 1 100); do
    # Read whole, not piped to `grep -q`: with pipefail, kubectl killed by SIGPIPE when grep
    # stops early fails the pipeline (status 141).
    drivers="$("$kubectl" get csinode "$worker" -o jsonpath='{.spec.drivers[*].name}' 2>/dev/null || true)"
    case " $drivers " in *" btrfs.csi.e2e.holdfast.io "*) return 0 ;; esac
    sleep 0.3
  done
  echo "the btrfs CSI driver did not register with the kubelet of $worker" >&2
  "$kubectl" -n holdfast-csi logs deployment/csi-btrfs --all-containers >&2 || true
  return 1
}

up() {
  local kind="$1" node_image="$2" image="$3"
  local started=$SECONDS
  engine_start
  local dir
  dir="$(mktemp -d /tmp/holdfast-kind.XXXXXX)"
  chmod 755 "$dir"
  mkdir -p "$dir/logs" "$dir/s3/holdfast" "$dir/volumes"
  local cluster
  cluster="hf-$(basename "$dir" | tr -dc 'a-z0-9' | tail -c 6)"
  local bin
  bin="$(bash "$root/e2e/build.sh" | tail -n 1)"
  export KUBECONFIG="$dir/kubeconfig"
  cat >"$dir/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
nodes:
- role: control-plane
  extraMounts: [{hostPath: $dir, containerPath: $dir}]
- role: worker
  extraMounts: [{hostPath: $dir, containerPath: $dir}]
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  etcd:
    local:
      imageTag: "$(docker image ls --format '{{.Tag}}' registry.k8s.io/etcd | head -n 1)"
  dns:
    imageTag: "$(docker image ls --format '{{.Tag}}' registry.k8s.io/coredns/coredns | head -n 1)"
- |
  kind: KubeletConfiguration
  failCgroupV1: false
EOF
  "$kind" create cluster --name "$cluster" --image "$node_image" --config "$dir/kind.yaml" \
    --kubeconfig "$KUBECONFIG" --retain >"$dir/logs/kind-create.log" 2>&1 ||
    { cat "$dir/logs/kind-create.log" >&2; "$kind" export logs "$dir/logs/kind" --name "$cluster" >/dev/null 2>&1 || true; return 1; }

  # Pod networking, per node.
  local nodes node cidr ip other
  nodes="$("$kind" get nodes --name "$cluster")"
  for node in $nodes; do
    cidr="$("$bin/kubectl" get node "$node" -o jsonpath='{.spec.podCIDR}')"
    docker exec -i "$node" sh -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-holdfast.conflist' <<EOF
{"cniVersion": "1.0.0", "name": "holdfast", "plugins": [
  {"type": "ptp", "mtu": 1500,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
    docker exec "$node" iptables -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE
    for other in $nodes; do
      [ "$other" = "$node" ] && continue
      ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$other")"
      docker exec "$node" ip route add "$("$bin/kubectl" get node "$other" -o jsonpath='{.spec.podCIDR}')" via "$ip"
    done
  done
  "$bin/kubectl" wait --for condition=Ready --timeout 180s node --all >/dev/null
  # Both nodes take job pods, as the agent's two nodes do (the scenarios pin pods to either).
  "$bin/kubectl" taint nodes --all node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null 2>&1 || true

  "$kind" load docker-image --name "$cluster" "$image" holdfast-e2e/shell:1 holdfast-e2e/s3s-fs:0.14.1 \
    >/dev/null
  "$bin/kubectl" apply --server-side -f "$root/crds/" >/dev/null
  "$bin/kubectl" wait --for condition=Established --timeout 60s -f "$root/crds/" >/dev/null
  csi_up "$kind" "$cluster" "$dir" "$bin/kubectl"

  # The bucket, on the kind network's gateway: reachable from the host and from pods.
  local gateway s3_port
  gateway="$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')"
  s3_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])')"
  setsid s3s-fs --host "$gateway" --port "$s3_port" --access-key holdfast-e2e \
    --secret-key holdfast-e2e-secret "$dir/s3" >"$dir/logs/s3s-fs.log" 2>&1 </dev/null &
  echo $! >"$dir/s3s-fs.pid"
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('$gateway', $s3_port))" 2>/dev/null && break
    sleep 0.1
  done

  "$bin/kubectl" config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' |
    base64 -d >"$dir/ca.crt"
  cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/kubeconfig
export HOLDFAST_E2E_BACKEND=kind
export HOLDFAST_E2E_KIND=$kind
export HOLDFAST_E2E_CLUSTER=$cluster
export HOLDFAST_E2E_DIR=$dir
export HOLDFAST_E2E_BIN=$bin
export HOLDFAST_E2E_API=$("$bin/kubectl" config view -o jsonpath='{.clusters[0].cluster.server}')
export HOLDFAST_E2E_CA=$dir/ca.crt
export HOLDFAST_E2E_HOST_IP=$gateway
export HOLDFAST_E2E_S3_ENDPOINT=http://$gateway:$s3_port
export HOLDFAST_E2E_S3_BUCKET=holdfast
export HOLDFAST_E2E_S3_DIR=$dir/s3
export HOLDFAST_E2E_S3_ACCESS_KEY=holdfast-e2e
export HOLDFAST_E2E_S3_SECRET_KEY=holdfast-e2e-secret
export HOLDFAST_E2E_JOB_IMAGE=$image
export HOLDFAST_E2E_SHELL_IMAGE=holdfast-e2e/shell:1
export HOLDFAST_E2E_S3_IMAGE=holdfast-e2e/s3s-fs:0.14.1
EOF
  echo "kind cluster $cluster up in $((SECONDS - started)) s" >&2
  echo "$dir"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: cluster.sh up KIND NODE_IMAGE IMAGE | down DIR" >&2; exit 2 ;;
esac
