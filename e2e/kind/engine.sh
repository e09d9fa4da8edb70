#!/usr/bin/env bash
# Sourced by the kind scripts: makes sure a Docker engine answers. A running engine
# (a developer's, GitHub Actions') is used as it is. Otherwise Debian's docker.io is
# installed when missing and a dockerd of our own is started with its own socket, data
# root (under the cache, so built images survive between runs) and pidfile;
# `engine_stop` stops it again (the kind scripts call it on exit).
#
# Sets DOCKER_HOST when it starts its own engine.

engine_cache="${HOLDFAST_E2E_CACHE:-$HOME/.cache/holdfast-e2e}/docker"
engine_started=""

# Debian's docker client where both are installed: a newer client without buildx cannot
# use this engine's BuildKit. A function, not a PATH change: cargo rebuilds crates whose
# build scripts watch PATH.
engine_docker="$(if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || echo docker; fi)"
docker() { "$engine_docker" "$@"; }

engine_start() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing docker.io (Debian's Docker engine)…" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get install -y docker.io >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y docker.io >/dev/null; }
  fi
  engine_docker="$(if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi)"
  local run="/tmp/holdfast-dockerd"
  mkdir -p "$engine_cache/root" "$run"
  export DOCKER_HOST="unix://$run/docker.sock"
  if [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null && docker info >/dev/null 2>&1; then
    # Ours, started by an earlier step of the same run (a build in the background): the
    # caller that stops engines stops it.
    engine_started=1
    return 0
  fi
  rm -f "$run/pid" "$run/docker.sock"
  # runc-bounded: privileged containers on machines whose bounding set lacks a capability.
  setsid dockerd --data-root "$engine_cache/root" --exec-root "$run/exec" \
    --pidfile "$run/pid" -H "$DOCKER_HOST" \
    --add-runtime "bounded=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/runc-bounded" \
    --default-runtime bounded >"$run/dockerd.log" 2>&1 < /dev/null &
  engine_started=1
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "dockerd did not start; its log:" >&2
  tail -n 30 "$run/dockerd.log" >&2
  return 1
}

engine_stop() {
  if [ -z "$engine_started" ]; then return 0; fi
  local run="/tmp/holdfast-dockerd"
  if [ -f "$run/pid" ]; then
    kill "$(cat "$run/pid")" 2>/dev/null || true
    for _ in $(seq 1 60); do
      [ -f "$run/pid" ] || break
      sleep 0.5
    done
  fi
  rm -rf "$run/exec"
  engine_started=""
}
