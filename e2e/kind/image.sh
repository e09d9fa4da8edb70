#!/usr/bin/env bash
# Builds the Holdfast image from the project's Dockerfile, here, without a registry: the
# runtime base `build.sh` made from distroless/cc's Debian packages, and the binary of the
# host's `cargo build --release` through the Dockerfile's `prebuilt` stage (same runtime
# stage, user and entrypoint as the release). Then checks what the release promises: it
# runs as 65532, has no shell, and `holdfast --version` names this commit.
#
#   bash e2e/kind/image.sh TAG
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tag="${1:?usage: image.sh TAG}"
# shellcheck source=e2e/kind/engine.sh
source "$here/engine.sh"
engine_start
export DOCKER_BUILDKIT=1
if ! docker image inspect holdfast-e2e/runtime-base:latest >/dev/null 2>&1; then
  echo "no runtime base: run e2e/kind/build.sh first" >&2
  exit 1
fi

cd "$root"
# The release binary by default. The suites pass HOLDFAST_IMAGE_PROFILE=debug to reuse the
# binary the tests just built (a thin-LTO release build costs minutes on two cores), with
# its debug info stripped; the image is the same otherwise.
profile="${HOLDFAST_IMAGE_PROFILE:-release}"
case "$profile" in
  release) cargo build --locked --release -p holdfast ;;
  # The workspace's test build, as the suites make it: a `-p` build would resolve features
  # anew and compile the dependencies a second time.
  debug) cargo test --locked --workspace --no-run >/dev/null 2>&1 ;;
  *) echo "HOLDFAST_IMAGE_PROFILE is release or debug, not '$profile'" >&2; exit 2 ;;
esac
target="$(bash scripts/target-dir.sh)"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$target/$profile/holdfast" "$ctx/holdfast"
if [ "$profile" = debug ]; then strip --strip-debug "$ctx/holdfast"; fi
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
docker build -q -f Dockerfile \
  --build-arg RUNTIME_IMAGE=holdfast-e2e/runtime-base:latest \
  --build-arg BINARY_FROM=prebuilt \
  --build-arg REVISION="$revision" \
  --build-arg VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" \
  -t "$tag" "$ctx" >/dev/null

user="$(docker image inspect -f '{{.Config.User}}' "$tag")"
if [ "$user" != "65532:65532" ]; then
  echo "image check failed: it runs as '$user', not 65532:65532" >&2
  exit 1
fi
if docker run --rm --entrypoint /bin/sh "$tag" -c true >/dev/null 2>&1; then
  echo "image check failed: it has a shell" >&2
  exit 1
fi
version="$(docker run --rm "$tag" --version)"
case "$version" in
  *"$revision"*) ;;
  *)
    echo "image check failed: '$version' does not name commit $revision" >&2
    exit 1
    ;;
esac
echo "image $tag ($profile build): user 65532, no shell, $version" >&2
