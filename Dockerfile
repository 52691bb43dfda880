# syntax=docker/dockerfile:1
# rolecall as an image holding nothing but its static binary (about 3 MB), one image per
# platform, linux/amd64 and linux/arm64:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#       --build-arg REVISION="$(git rev-parse HEAD)" -t registry.example/rolecall:0.1.0 --push .
#
# Use it as an initContainer image, or copy the binary into another image:
#   COPY --from=rolecall /rolecall /usr/local/bin/rolecall
# tests/scratch_image.rs runs the same binaries the same way (alone in an empty root, as
# 65532:65532, the arm64 one through qemu-user) to prove this image works; see docs/image.md.

# The toolchain rolecall is tested with.
ARG RUST_VERSION=1.95

# The build stage runs on the build machine's own platform and cross-compiles for the image's:
# rust-lld, which ships with the toolchain, links both musl targets and clang compiles ring's C
# for them (.cargo/config.toml), so no compiler runs under emulation.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
# clang compiles ring's C and assembly (the TLS of the Kubernetes API client) for either target.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends clang \
    && rm -rf /var/lib/apt/lists/*
RUN case "$TARGETARCH" in \
        amd64) target=x86_64-unknown-linux-musl ;; \
        arm64) target=aarch64-unknown-linux-musl ;; \
        *) echo "rolecall has no build for linux/$TARGETARCH: use linux/amd64 or linux/arm64" >&2; exit 1 ;; \
    esac \
    && rustup target add "$target" \
    && echo "$target" >/target
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY src ./src
COPY roles ./roles
# The build context has no .git: `rolecall --version` takes its revision from here.
ARG REVISION=unknown
# The cache mounts keep downloaded crates and build output between builds; the binary is copied
# out of them because a cache mount is not part of the stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(cat /target)" \
    && ROLECALL_REVISION="$REVISION" cargo build --release --locked --target "$target" \
    && cp "target/$target/release/rolecall" /rolecall

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="rolecall" \
      org.opencontainers.image.description="Give each StatefulSet pod its identity: ordinal, server id, role, peers and rendered config, from one static init-container binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /rolecall /rolecall
# The nonroot uid:gid of distroless images; numeric, as there is no /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/rolecall"]
