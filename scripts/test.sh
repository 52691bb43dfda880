#!/usr/bin/env bash
# The test command (see README): formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the toolchain must have: rustfmt and clippy, and the musl targets of the static binaries,
# one per architecture of the image. A fresh clone with rustup gets them here; without rustup,
# say what to install and stop.
readonly components=(rustfmt clippy) targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
if command -v rustup >/dev/null; then
    installed_components=$(rustup component list --installed)
    for component in "${components[@]}"; do
        if ! grep -q "^$component" <<<"$installed_components"; then
            rustup component add "$component"
        fi
    done
    installed_targets=$(rustup target list --installed)
    for target in "${targets[@]}"; do
        if ! grep -qx "$target" <<<"$installed_targets"; then
            rustup target add "$target"
        fi
    done
else
    sysroot=$(rustc --print sysroot)
    for target in "${targets[@]}"; do
        if [[ ! -d $sysroot/lib/rustlib/$target ]]; then
            echo "test.sh: the Rust target $target is missing and there is no rustup to add it; install the Rust standard library for $target (and rustfmt, clippy), then rerun" >&2
            exit 1
        fi
    done
fi
# clang compiles ring's C and assembly for the musl targets (.cargo/config.toml).
if ! command -v clang >/dev/null; then
    echo "test.sh: clang is missing; it builds the TLS of the static binaries (Debian package clang)" >&2
    exit 1
fi
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The lean build (no API or membership client, scripts/size.sh) and its tests must keep compiling.
cargo clippy --locked --all-targets --no-default-features -- -D warnings
# The fuzz targets must keep compiling; checked without libFuzzer they cost seconds (fuzz/README.md).
# Not --locked: fuzz/Cargo.lock follows whatever dependencies rolecall gains.
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --manifest-path fuzz/Cargo.toml --no-default-features --target-dir target -- -D warnings
# The static musl binaries, x86_64 and aarch64: built once into target/static, size budget
# checked; the scratch-image and roles tests of `cargo test` run those same binaries (the aarch64
# one under qemu-user).
scripts/size.sh
cargo test --locked
