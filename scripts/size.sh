#!/usr/bin/env bash
# The size budget of the static binary (the whole content of the scratch image), for each
# architecture of the image: builds the release binaries for x86_64-unknown-linux-musl and
# aarch64-unknown-linux-musl, each twice: without the Kubernetes API client (cargo feature
# `kube` off, the "lean" build) and as released (the default features). Checks each is static
# and of its architecture, prints its size, and fails above its budget: 2.0 MiB lean, 2.9 MiB
# with the API client. The aim is 1.5 MiB lean; missing the aim is reported, not failed.
#
# usage: scripts/size.sh [BINARY]   (without BINARY: build all four; the released ones land in
#                                     target/static/TRIPLE/release/rolecall, as the scratch-image
#                                     and roles tests build them, so they reuse them; the lean ones
#                                     are kept beside them as rolecall-lean. A BINARY given is
#                                     held to the budget of the released build.)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each target triple with the machine `readelf -h` names for it.
readonly -A machines=(
    [x86_64-unknown-linux-musl]="Advanced Micro Devices X86-64"
    [aarch64-unknown-linux-musl]="AArch64"
)
readonly targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
readonly lean_budget=$((2 * 1024 * 1024)) aim=$((3 * 512 * 1024))
readonly budget=$((29 * 1024 * 1024 / 10))

mib() { awk -v b="$1" 'BEGIN { printf "%.3f MiB", b / 1048576 }'; }

# check BINARY BUDGET [MACHINE]: fails unless BINARY is static (and for MACHINE) and within BUDGET.
check() {
    local binary=$1 limit=$2 machine=${3:-} size headers dynamic static found
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
    if ((limit != lean_budget)); then
        echo "  budget: $limit bytes ($(mib "$limit"))"
    else
        echo "  budget: $limit bytes ($(mib "$limit"))  aim: $aim bytes ($(mib "$aim"))"
    fi
    if ((size > limit)); then
        echo "size.sh: over budget by $((size - limit)) bytes; see BENCHMARKS.md for where the bytes go" >&2
        return 1
    fi
    if ((limit != lean_budget)); then
        echo "  within budget ($((limit - size)) bytes to spare)"
    elif ((size > aim)); then
        echo "  within budget ($((limit - size)) bytes to spare), above the aim by $((size - aim)) bytes"
    else
        echo "  within the aim ($((aim - size)) bytes to spare)"
    fi
}

if [[ $# -gt 0 ]]; then
    check "$1" "$budget"
    exit
fi

# The lean build first, set aside; then the released one, whose binary the tests run. Both share
# the target directory: the dependencies they have in common are built once.
cargo build --release --locked --no-default-features "${targets[@]/#/--target=}" \
    --target-dir target/static
for target in "${targets[@]}"; do
    cp "target/static/$target/release/rolecall" "target/static/$target/release/rolecall-lean"
done
cargo build --release --locked "${targets[@]/#/--target=}" --target-dir target/static
failed=0
for target in "${targets[@]}"; do
    echo "== $target, without the Kubernetes API client (--no-default-features)"
    check "target/static/$target/release/rolecall-lean" "$lean_budget" "${machines[$target]}" || failed=1
    echo "== $target, as released (default features: the Kubernetes API client)"
    check "target/static/$target/release/rolecall" "$budget" "${machines[$target]}" || failed=1
done
# The lean build says --from-api is not in it (exit 2), where this machine runs it natively.
native="target/static/$(uname -m)-unknown-linux-musl/release/rolecall-lean"
if [[ -x $native ]]; then
    set +e
    said=$("$native" get replicas --hostname web-0 --from-api 2>&1)
    code=$?
    set -e
    if [[ $code -ne 2 || $said != *"built without the Kubernetes API client"* ]]; then
        echo "size.sh: $native --from-api: exit $code, not 2 with a message: $said" >&2
        failed=1
    fi
fi
exit "$failed"
