#!/usr/bin/env bash
# A Kubernetes control plane on loopback, built from source by e2e/build.sh: etcd,
# kube-apiserver (RBAC, service-account signing, a generated CA) and
# kube-controller-manager (the controllers the scenarios need), plus s3s-fs as the bucket.
# All state lives in one directory; nothing listens beyond 127.0.0.1.
#
#   bash e2e/cluster.sh up [DIR]    start; prints DIR, whose `env` file exports KUBECONFIG etc.
#   bash e2e/cluster.sh down DIR    stop everything started in DIR (logs stay in DIR/logs)
#
# The node agent (the kubelet stand-in) is started separately, by e2e/run.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Stop every process recorded in DIR/pids: TERM, a grace period, then KILL.
down() {
  local dir="$1"
  [ -f "$dir/pids" ] || return 0
  local pids
  pids="$(tac "$dir/pids" | awk '{print $2}')"
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

# start NAME COMMAND...: run in the background, log to DIR/logs/NAME.log, record the pid.
start() {
  local name="$1"
  shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 &
  last_pid=$!
  echo "$name $last_pid" >>"$dir/pids"
}

# wait_for NAME TRIES COMMAND...: until COMMAND succeeds, while the last started process lives.
wait_for() {
  local what="$1" tries="$2"
  shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$last_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "$what did not come up; its log:" >&2
  tail -n 40 "$dir/logs/$what.log" >&2 || true
  return 1
}

certs() {
  local d="$dir/pki"
  mkdir -p "$d"
  cd "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3 \
    -keyout ca.key -out ca.crt -subj "/CN=holdfast-e2e-ca" 2>/dev/null
  leaf() { # NAME SUBJECT [SAN]
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    local ext=()
    if [ -n "${3:-}" ]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >"$1.ext"
      ext=(-extfile "$1.ext")
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$1.ext"
      ext=(-extfile "$1.ext")
    fi
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
      -out "$1.crt" "${ext[@]}" 2>/dev/null
  }
  leaf apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  leaf admin "/O=system:masters/CN=holdfast-e2e-admin"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() { # FILE
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
EOF
}

up() {
  local bin
  bin="$(bash "$here/build.sh" | tail -n 1)"
  dir="${1:-$(mktemp -d /tmp/holdfast-e2e.XXXXXX)}"
  mkdir -p "$dir/logs" "$dir/etcd" "$dir/s3/holdfast"
  dir="$(cd "$dir" && pwd)"
  trap 'echo "cluster start failed; logs in $dir/logs" >&2; down "$dir"' ERR
  certs
  local etcd_port peer_port
  etcd_port="$(free_port)"
  peer_port="$(free_port)"
  api_port="$(free_port)"
  local s3_port
  s3_port="$(free_port)"

  start etcd "$bin/etcd" --name e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "e2e=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 150 curl -fsS "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$dir/pki" --tls-cert-file "$dir/pki/apiserver.crt" \
    --tls-private-key-file "$dir/pki/apiserver.key" --client-ca-file "$dir/pki/ca.crt" \
    --authorization-mode RBAC --service-cluster-ip-range 10.0.0.0/24 \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --allow-privileged=true --enable-priority-and-fairness=false \
    --v=1
  wait_for kube-apiserver 600 curl -fsS --cacert "$dir/pki/ca.crt" \
    --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    "https://127.0.0.1:$api_port/readyz"
  kubeconfig "$dir/admin.kubeconfig"

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/admin.kubeconfig" --bind-address 127.0.0.1 --secure-port 0 \
    --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --controllers job-controller,garbage-collector-controller,persistentvolume-binder-controller,persistentvolumeclaim-protection-controller,persistentvolume-protection-controller,namespace-controller,serviceaccount-controller,root-ca-certificate-publisher-controller,ttl-after-finished-controller,replicaset-controller,deployment-controller,disruption-controller,resourcequota-controller \
    --v=1
  # The service-account controller creates `default` in every namespace once it runs.
  wait_for kube-controller-manager 300 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" \
    get serviceaccount default -n default

  start s3s-fs s3s-fs --host 127.0.0.1 --port "$s3_port" \
    --access-key holdfast-e2e --secret-key holdfast-e2e-secret "$dir/s3"
  wait_for s3s-fs 150 python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3_port))"

  cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export HOLDFAST_E2E_DIR=$dir
export HOLDFAST_E2E_BIN=$bin
export HOLDFAST_E2E_API=https://127.0.0.1:$api_port
export HOLDFAST_E2E_CA=$dir/pki/ca.crt
export HOLDFAST_E2E_S3_ENDPOINT=http://127.0.0.1:$s3_port
export HOLDFAST_E2E_S3_BUCKET=holdfast
export HOLDFAST_E2E_S3_DIR=$dir/s3
export HOLDFAST_E2E_S3_ACCESS_KEY=holdfast-e2e
export HOLDFAST_E2E_S3_SECRET_KEY=holdfast-e2e-secret
EOF
  trap - ERR
  echo "control plane up: API https://127.0.0.1:$api_port, etcd :$etcd_port, s3s-fs :$s3_port" >&2
  echo "$dir"
}

case "${1:-}" in
up)
  shift
  up "$@"
  ;;
down)
  [ -n "${2:-}" ] || { echo "usage: $0 down DIR" >&2; exit 2; }
  down "$2"
  ;;
*)
  echo "usage: $0 up [DIR] | down DIR" >&2
  exit 2
  ;;
esac
