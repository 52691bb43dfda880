# syntax=docker/dockerfile:1
# rolecall as an image holding nothing but its static binary (about 2 MB).
#
#   docker build -t rolecall .
#
# Use it as an initContainer image, or copy the binary into another image:
#   COPY --from=rolecall /rolecall /usr/local/bin/rolecall
# tests/scratch_image.rs runs the same binary the same way (alone in an empty root, as
# 65532:65532) to prove this image works; see docs/image.md.

# The toolchain rolecall is tested with; the binary is x86_64 (linux/amd64) only.
ARG RUST_VERSION=1.95

FROM --platform=linux/amd64 rust:${RUST_VERSION}-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY src ./src
COPY roles ./roles
# The cache mounts keep downloaded crates and build output between builds; the binary is copied
# out of them because a cache mount is not part of the stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl \
    && cp target/x86_64-unknown-linux-musl/release/rolecall /rolecall

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
