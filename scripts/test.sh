#!/usr/bin/env bash
# The test command (see README): formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The fuzz targets must keep compiling; checked without libFuzzer they cost seconds (fuzz/README.md).
# Not --locked: fuzz/Cargo.lock follows whatever dependencies rolecall gains.
cargo fmt --check --manifest-path fuzz/Cargo.toml
cargo clippy --manifest-path fuzz/Cargo.toml --no-default-features --target-dir target -- -D warnings
# The static musl binary: built once into target/static, size budget checked; the scratch-image
# test of `cargo test` runs that same binary in an empty root.
scripts/size.sh
cargo test --locked
