#!/usr/bin/env bash
# What the Kubernetes API client (cargo feature `kube`) costs a run that does not use it: the
# static x86_64 binary with the client (as released) against the same tree built without it,
# on `--version` and on the MySQL tutorial's job (bench/run.sh's, on tmpfs, --no-sync so the
# disk does not blur the start-up), timed by hyperfine without a shell, the two binaries
# alternating in one hyperfine run. Prints hyperfine's Markdown table, the sizes, and the load.
#
# usage: bench/api-cost.sh [--quick] [RELEASED LEAN [BASELINE]]
#   RELEASED, LEAN  the two binaries [default: those scripts/size.sh builds into target/static]
#   BASELINE        a third binary to time beside them (e.g. a build of an earlier revision)
#   --quick         few runs: to try the script, not to quote the figures
set -euo pipefail
cd "$(dirname "$0")/.."
readonly repo=$PWD

runs=(--warmup 30 --min-runs 500)
if [[ ${1:-} == --quick ]]; then
    runs=(--warmup 3 --min-runs 20 --max-runs 20)
    shift
fi
command -v hyperfine >/dev/null || { echo "api-cost: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
if (($# >= 2)); then
    binaries=("$1" "$2")
    [[ -n ${3:-} ]] && binaries+=("$3")
else
    scripts/size.sh >/dev/null
    release=target/static/x86_64-unknown-linux-musl/release
    binaries=("$release/rolecall" "$release/rolecall-lean")
fi
for i in "${!binaries[@]}"; do
    binaries[i]=$(realpath "${binaries[i]}")
done

place=$(mktemp -d "${TMPDIR:-/dev/shm}/rolecall-api-cost.XXXXXX")
trap 'rm -rf "$place"' EXIT
mkdir -p "$place/config-map"
cp "$repo/bench/inputs/mysql/master.cnf" "$repo/bench/inputs/mysql/slave.cnf" "$place/config-map/"

version=() render=()
for binary in "${binaries[@]}"; do
    version+=(-n "$(basename "$binary") --version" "$binary --version")
    render+=(-n "$(basename "$binary") render (MySQL job)"
        "$binary render --config-dir $place/config-map --out $place/out --id-offset 100 --leader-file master.cnf --follower-file slave.cnf --hostname mysql-2 --replicas 3 --no-sync -q")
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(df --output=fstype "$place" | tail -n 1) at $place"
for binary in "${binaries[@]}"; do
    echo "$(basename "$binary"): $(stat -c %s "$binary") bytes, $("$binary" --version)"
done
hyperfine -N "${runs[@]}" --export-markdown "$place/version.md" "${version[@]}" >/dev/null
hyperfine -N "${runs[@]}" --prepare "rm -rf $place/out" --export-markdown "$place/render.md" \
    "${render[@]}" >/dev/null
cat "$place/version.md" "$place/render.md"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
