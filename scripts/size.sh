#!/usr/bin/env bash
# The size budget of the static binary (the whole content of the scratch image): builds the
# release binary for x86_64-unknown-linux-musl, checks it is static, prints its size and fails
# above 2.0 MiB. The aim is 1.5 MiB; missing the aim is reported, not failed.
#
# usage: scripts/size.sh [BINARY]   (without BINARY: build it into target/static, as the
#                                     scratch-image test does, so that test reuses it)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly target=x86_64-unknown-linux-musl
readonly budget=$((2 * 1024 * 1024)) aim=$((3 * 512 * 1024))

if [[ $# -gt 0 ]]; then
    binary=$1
else
    cargo build --release --locked --target "$target" --target-dir target/static
    binary=target/static/$target/release/rolecall
fi

size=$(stat -c %s "$binary")
mib() { awk -v b="$1" 'BEGIN { printf "%.3f MiB", b / 1048576 }'; }

# Static: no program interpreter and no shared library. (A static-pie binary keeps a dynamic
# section for its own relocations, with no NEEDED entry.)
if command -v readelf >/dev/null; then
    if ! readelf -h "$binary" >/dev/null 2>&1; then
        echo "size.sh: $binary is not an ELF executable" >&2
        exit 1
    fi
    # Captured, not piped into `grep -q`: with pipefail, grep quitting early fails the pipe.
    headers=$(readelf -lW "$binary") dynamic=$(readelf -dW "$binary")
    if [[ $headers == *INTERP* ]]; then
        echo "size.sh: $binary has a program interpreter: it is not static" >&2
        exit 1
    fi
    if [[ $dynamic == *'(NEEDED)'* ]]; then
        echo "size.sh: $binary needs shared libraries: it is not static" >&2
        grep '(NEEDED)' <<<"$dynamic" >&2
        exit 1
    fi
    static="static (no INTERP, no NEEDED)"
else
    static="not checked here: no readelf (binutils); tests/scratch_image.rs checks it"
fi

echo "rolecall static binary: $binary"
echo "  size:   $size bytes ($(mib "$size")), $static"
echo "  budget: $budget bytes ($(mib "$budget"))  aim: $aim bytes ($(mib "$aim"))"
if ((size > budget)); then
    echo "size.sh: over budget by $((size - budget)) bytes; see BENCHMARKS.md for where the bytes go" >&2
    exit 1
fi
if ((size > aim)); then
    echo "  within budget ($((budget - size)) bytes to spare), above the aim by $((size - aim)) bytes"
else
    echo "  within the aim ($((aim - size)) bytes to spare)"
fi
