#!/usr/bin/env bash
# The quick start on a real kubelet: a kind cluster, the Holdfast image built and loaded,
# the chart installed, then a backup of a PVC to a filesystem StorageSet (kind's
# local-path provisioner) and a restore into a new PVC, compared by checksum in a pod.
# Proves what the local control plane cannot: real images and container runtime, real
# volume mounts, Pod Security admission and the chart's Deployment as a kubelet runs it.
#
#   bash e2e/kind.sh [KIND_NODE_IMAGE]     e.g. kindest/node:v1.30.13
#
# Without Docker or kind it prints one line and exits 0: nothing is claimed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "kind suite skipped: no Docker engine on this machine"
  exit 0
fi
if ! command -v kind >/dev/null 2>&1 || ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  echo "kind suite skipped: kind, helm or kubectl is not installed"
  exit 0
fi

node_image="${1:-}"
cluster="holdfast-e2e-$$"
image="ghcr.io/holdfast-io/holdfast:kind-$$"
ns=shop
started=$SECONDS
cleanup() {
  status=$?
  if [ "$status" != 0 ]; then
    mkdir -p target/kind
    kubectl get all,pvc,backupsets,storagesets,restores,events -A -o yaml >target/kind/objects.yaml 2>&1 || true
    kubectl -n holdfast-system logs deploy/holdfast --all-containers >target/kind/controller.log 2>&1 || true
    echo "kind suite FAILED: objects and logs in target/kind/" >&2
  fi
  kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== cluster"
kind create cluster --name "$cluster" ${node_image:+--image "$node_image"} --wait 120s
echo "== image"
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
echo "== chart"
helm install holdfast helm/holdfast --namespace holdfast-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never --wait --timeout 180s

echo "== quick start"
kubectl create namespace "$ns"
# Backups read every file: the namespace must allow the privileged Pod Security level.
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=privileged
kubectl -n "$ns" create secret generic shop-key --from-literal=passphrase=kind-suite-passphrase
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: backups}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  containers:
  - name: w
    image: docker.io/library/busybox:1.36
    command: [sh, -c, "mkdir -p /data/docs && head -c 3000000 /dev/urandom > /data/docs/big.bin && echo hello > /data/a.txt && chmod 640 /data/a.txt && cd /data && find . -type f | sort | xargs sha256sum > /data/SUMS"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: uploads}}]
YAML
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/writer --timeout 180s
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: holdfast.io/v1alpha1
kind: StorageSet
metadata: {name: offsite}
spec:
  filesystem:
    persistentVolumeClaim: {claimName: backups}
---
apiVersion: holdfast.io/v1alpha1
kind: BackupSet
metadata: {name: shop}
spec:
  storageSetRef: {name: offsite}
  sources:
  - name: uploads
    persistentVolumeClaim: {claimName: uploads}
  encryption:
    keySecretRef: {name: shop-key, key: passphrase}
  manualRun: {token: kind-1, level: full}
YAML
kubectl -n "$ns" wait --for=condition=Ready storageset/offsite --timeout 180s
kubectl -n "$ns" wait --for=jsonpath='{.status.lastRun.phase}'=Complete backupset/shop --timeout 300s
kubectl -n "$ns" get backupsets,storagesets

echo "== restore"
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: holdfast.io/v1alpha1
kind: Restore
metadata: {name: copy}
spec:
  backupSetRef: {name: shop}
  target:
    newPersistentVolumeClaim: {name: uploads-copy, size: 1Gi}
YAML
kubectl -n "$ns" wait --for=condition=Ready restore/copy --timeout 300s
kubectl -n "$ns" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: checker}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: [sh, -c, "cd /data && sha256sum -c SUMS && [ \"$(stat -c %a a.txt)\" = 640 ]"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: uploads-copy}}]
YAML
kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/checker --timeout 180s
kubectl -n "$ns" get restores

echo "== uninstall keeps the data"
helm uninstall holdfast --namespace holdfast-system --wait
kubectl get crd backupsets.holdfast.io >/dev/null
kubectl -n "$ns" get backupset shop >/dev/null
echo "kind suite passed in $((SECONDS - started)) s"
