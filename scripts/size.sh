#!/usr/bin/env bash
# The size budget of the static binary (the whole content of the scratch image), for each
# architecture of the image: builds the release binaries for x86_64-unknown-linux-musl and
# aarch64-unknown-linux-musl, checks each is static and of its architecture, prints its size and
# fails above 2.0 MiB. The aim is 1.5 MiB; missing the aim is reported, not failed.
#
# usage: scripts/size.sh [BINARY]   (without BINARY: build both into target/static/TRIPLE, as the
#                                     scratch-image and roles tests do, so they reuse them)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each target triple with the machine `readelf -h` names for it.
readonly -A machines=(
    [x86_64-unknown-linux-musl]="Advanced Micro Devices X86-64"
    [aarch64-unknown-linux-musl]="AArch64"
)
readonly targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
readonly budget=$((2 * 1024 * 1024)) aim=$((3 * 512 * 1024))

mib() { awk -v b="$1" 'BEGIN { printf "%.3f MiB", b / 1048576 }'; }

# check BINARY [MACHINE]: fails unless BINARY is static (and for MACHINE) and within the budget.
check() {
    local binary=$1 machine=${2:-} size headers dynamic static found
    # Explicit returns: errexit does not apply inside a function called as `check || ...`.
    size=$(stat -c %s "$binary") || return 1
    # Static: no program interpreter and no shared library. (A static-pie binary keeps a dynamic
    # section for its own relocations, with no NEEDED entry.)
    if command -v readelf >/dev/null; then
        if ! headers=$(readelf -hlW "$binary" 2>/dev/null); then
            echo "size.sh: $binary is not an ELF executable" >&2
            return 1
        fi
        # Captured, not piped into `grep -q`: with pipefail, grep quitting early fails the pipe.
        dynamic=$(readelf -dW "$binary") || return 1
        if [[ $headers == *INTERP* ]]; then
            echo "size.sh: $binary has a program interpreter: it is not static" >&2
            return 1
        fi
        if [[ $dynamic == *'(NEEDED)'* ]]; then
            echo "size.sh: $binary needs shared libraries: it is not static" >&2
            grep '(NEEDED)' <<<"$dynamic" >&2
            return 1
        fi
        found=$(sed -n 's/^ *Machine: *//p' <<<"$headers")
        if [[ -n $machine && $found != "$machine" ]]; then
            echo "size.sh: $binary is for $found, not $machine" >&2
            return 1
        fi
        static="static (no INTERP, no NEEDED), $found"
    else
        static="not checked here: no readelf (binutils); tests/scratch_image.rs checks it"
    fi

    echo "rolecall static binary: $binary"
    echo "  size:   $size bytes ($(mib "$size")), $static"
    echo "  budget: $budget bytes ($(mib "$budget"))  aim: $aim bytes ($(mib "$aim"))"
    if ((size > budget)); then
        echo "size.sh: over budget by $((size - budget)) bytes; see BENCHMARKS.md for where the bytes go" >&2
        return 1
    fi
    if ((size > aim)); then
        echo "  within budget ($((budget - size)) bytes to spare), above the aim by $((size - aim)) bytes"
    else
        echo "  within the aim ($((aim - size)) bytes to spare)"
    fi
}

if [[ $# -gt 0 ]]; then
    check "$1"
    exit
fi

cargo build --release --locked "${targets[@]/#/--target=}" --target-dir target/static
failed=0
for target in "${targets[@]}"; do
    check "target/static/$target/release/rolecall" "${machines[$target]}" || failed=1
done
exit "$failed"
