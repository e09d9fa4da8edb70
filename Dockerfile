# The Holdfast image: one binary for the controller, the job pods (`holdfast job run`) and
# the entrypoint helper command sources get through an init container.
#
# The release builds it as it is (BuildKit). Where no registry is reachable the bases are
# build arguments: `e2e/kind/image.sh` passes a runtime base made from the same Debian
# packages distroless/cc is made of and `BINARY_FROM=prebuilt` with a context holding only
# the host's release binary. No `# syntax=` line: that would pull a frontend image.
ARG RUST_VERSION=1.95
ARG BUILDER_IMAGE=docker.io/library/rust:${RUST_VERSION}-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# Which stage provides /out/holdfast: `build` compiles it here, `prebuilt` copies it from
# the build context.
ARG BINARY_FROM=build

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# Reproducible: no timestamps or build paths in the binary.
ARG SOURCE_DATE_EPOCH=0
# What `holdfast --version` prints (the .git directory is not copied in).
ARG REVISION=unknown
ARG BUILD_DATE=unknown
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    HOLDFAST_COMMIT=${REVISION} \
    HOLDFAST_BUILD_DATE=${BUILD_DATE} \
    CARGO_INCREMENTAL=0 \
    RUSTFLAGS="--remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p holdfast \
 && install -D -m 0755 target/release/holdfast /out/holdfast

FROM scratch AS prebuilt
COPY holdfast /out/holdfast

FROM ${BINARY_FROM} AS binary

# glibc and nothing else: no shell, no package manager.
FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="holdfast" \
      org.opencontainers.image.description="Declarative, GitOps-style backups for Kubernetes" \
      org.opencontainers.image.source="https://github.com/holdfast-io/holdfast" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binary /out/holdfast /usr/local/bin/holdfast
# Non-root by default (the controller). Job pods that must read every file run as root
# with only the capabilities their operation needs (see the README).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/holdfast"]
