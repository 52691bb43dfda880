#!/usr/bin/env bash
# Benchmarks rolecall against what users run today, on the same jobs and the same inputs, and
# prints the figures as a Markdown table with the machine they were measured on. Figures, not
# tests: nothing here passes or fails on speed. See BENCHMARKS.md for the last run.
#
# usage: bench/run.sh [--quick] [--binary PATH] [--dir DIR]
#   --binary PATH  the rolecall to measure [default: build the static release binary, as
#                  scripts/size.sh does, into target/static]
#   --dir DIR      where inputs and outputs go [default: a new directory under ${TMPDIR:-/tmp}];
#                  its filesystem matters, as rolecall syncs what it writes. When /dev/shm is a
#                  tmpfs, the MySQL job and the scaling runs are measured there too.
#   --quick        few runs: to try the script, not to quote the figures
#
# Needs hyperfine (Debian package `hyperfine`) and bash; peak RSS needs GNU time at /usr/bin/time
# (Debian package `time`); the Jinja2 comparison needs jinja2-cli (`pip install jinja2-cli`).
# Nothing is installed: what is missing is named, and its rows are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
readonly repo=$PWD

binary= dir= quick=
while (($#)); do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --quick) quick=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

missing=()
command -v hyperfine >/dev/null || missing+=("hyperfine: apt-get install hyperfine")
command -v bash >/dev/null || missing+=("bash: apt-get install bash")
if ((${#missing[@]})); then
    printf 'bench: missing %s\n' "${missing[@]}" >&2
    exit 1
fi
gnu_time=
if [[ -x /usr/bin/time && $(/usr/bin/time -v true 2>&1) == *"Maximum resident"* ]]; then
    gnu_time=/usr/bin/time
else
    missing+=("GNU time at /usr/bin/time (peak RSS rows): apt-get install time")
fi
# A pyenv shim is a shell script that finds the real program on every call: time the program.
jinja2=$(command -v pyenv >/dev/null && pyenv which jinja2 2>/dev/null || command -v jinja2 || true)
[[ -n $jinja2 ]] || missing+=("jinja2 from jinja2-cli (the Jinja2 row): pip install jinja2-cli")

if [[ -z $binary ]]; then
    cargo build --release --locked --target x86_64-unknown-linux-musl --target-dir target/static \
        2>/dev/null
    binary=$repo/target/static/x86_64-unknown-linux-musl/release/rolecall
fi
binary=$(realpath "$binary")

if [[ -n $quick ]]; then
    fast=(--warmup 3 --min-runs 10 --max-runs 20) slow=(--warmup 1 --min-runs 3 --max-runs 3)
else
    fast=(--warmup 20 --min-runs 300) slow=(--warmup 3 --min-runs 20)
fi

# Work directories: the given one (or a new one under TMPDIR), and a tmpfs one if there is one.
if [[ -n $dir ]]; then
    mkdir -p "$dir"
    work=$(realpath "$dir")
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/rolecall-bench.XXXXXX")
fi
places=("$work")
if [[ -z $dir && -d /dev/shm && $(df --output=fstype /dev/shm | tail -n 1) == tmpfs ]]; then
    shm=$(mktemp -d /dev/shm/rolecall-bench.XXXXXX)
    places+=("$shm")
    trap 'rm -rf "$work" "$shm"' EXIT
elif [[ -z $dir ]]; then
    trap 'rm -rf "$work"' EXIT
fi
fs_of() { df --output=fstype "$1" | tail -n 1; }

results=$work/results.csv
: >"$results"
# bench NAME PREPARE COMMAND [HYPERFINE OPTIONS]: one hyperfine run, one CSV row
# (name,mean,stddev,median,user,system,min,max). Commands run without a shell (-N), so PREPARE
# is one program with its arguments.
bench() {
    local name=$1 prepare=$2 command=$3
    shift 3
    local csv=$work/one.csv
    local args=(-N --style none --export-csv "$csv" -n "$name" "$@")
    [[ -n $prepare ]] && args+=(--prepare "$prepare")
    printf '  %-34s' "$name" >&2
    # Its warnings (outliers on a busy machine) would bury the progress lines; its errors are shown.
    if ! hyperfine "${args[@]}" "$command" >/dev/null 2>"$work/hyperfine.err"; then
        cat "$work/hyperfine.err" >&2
        exit 1
    fi
    tail -n 1 "$csv" >>"$results"
    awk -F, '{ printf " median %.2f ms\n", $4 * 1000 }' <(tail -n 1 "$csv") >&2
}
# field NAME COLUMN: a figure of a finished benchmark, in ms.
field() {
    awk -F, -v n="$1" -v c="$2" '$1 == n { printf "%.3f", $c * 1000 }' "$results"
}

# The MySQL tutorial's ConfigMap, and its init container's script with the two mount paths
# (/mnt/config-map, /mnt/conf.d) pointed at this run's directories; nothing else changed.
mysql_setup() {
    local at=$1
    mkdir -p "$at/config-map" "$at/conf.d" "$at/out"
    cp "$repo/bench/inputs/mysql/master.cnf" "$repo/bench/inputs/mysql/slave.cnf" "$at/config-map/"
    sed -e "s#/mnt/conf.d#$at/conf.d#g" -e "s#/mnt/config-map#$at/config-map#g" \
        "$repo/bench/inputs/mysql/init-mysql.sh" >"$at/init-mysql.sh"
}
mysql_render() {
    echo "$binary render --config-dir $1/config-map --out $1/out --id-offset 100 --leader-file master.cnf --follower-file slave.cnf --hostname mysql-2 --replicas 3 -q"
}

echo "rolecall benchmarks: $binary" >&2
# Other work on the machine skews every figure: the load is part of the report.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for place in "${places[@]}"; do
    mysql_setup "$place"
    # Both jobs must produce the same files, or the comparison means nothing.
    $(mysql_render "$place")
    HOSTNAME=mysql-2 bash "$place/init-mysql.sh" 2>/dev/null
    for file in server-id.cnf slave.cnf; do
        cmp -s "$place/out/$file" "$place/conf.d/$file" || {
            echo "bench: rolecall and the tutorial script disagree on $file" >&2
            exit 1
        }
    done
done

# The floor: a process that does nothing.
bench "floor: /bin/true" "" /bin/true "${fast[@]}"
bench "floor: rolecall --version" "" "$binary --version" "${fast[@]}"

# The MySQL tutorial's init job, each run into a fresh empty directory, as a new pod's emptyDir.
for place in "${places[@]}"; do
    fs=$(fs_of "$place")
    bench "mysql ($fs): rolecall render" "bash -c 'rm -rf $place/out && mkdir $place/out'" \
        "$(mysql_render "$place")" "${fast[@]}"
    # Like the script, no fsync (still a temporary file and a rename per file): for an emptyDir.
    bench "mysql ($fs): rolecall render --no-sync" "bash -c 'rm -rf $place/out && mkdir $place/out'" \
        "$(mysql_render "$place") --no-sync" "${fast[@]}"
    # The container runtime sets HOSTNAME to the pod name; the script reads it.
    HOSTNAME=mysql-2 bench "mysql ($fs): bash script" \
        "bash -c 'rm -rf $place/conf.d && mkdir $place/conf.d'" \
        "bash $place/init-mysql.sh" "${fast[@]}"
done

# zoo.cfg for 5 peers from the same template: rolecall's zookeeper role (which also writes myid,
# peers and rolecall.env) against jinja2-cli given the context rolecall computes, precomputed.
zk=(--role zookeeper --hostname zk-1 --replicas 5 --namespace default --cluster-domain cluster.local)
mkdir -p "$work/zk"
"$binary" env --format json "${zk[@]}" >"$work/zk/context.json"
bench "zoo.cfg 5 peers: rolecall render" "bash -c 'rm -rf $work/zk/out && mkdir $work/zk/out'" \
    "$binary render ${zk[*]} --out $work/zk/out -q" "${fast[@]}"
if [[ -n $jinja2 ]]; then
    "$jinja2" "$repo/roles/zookeeper/zoo.cfg" "$work/zk/context.json" --format json \
        -o "$work/zk/jinja.cfg"
    cmp -s "$work/zk/out/zoo.cfg" "$work/zk/jinja.cfg" || {
        echo "bench: rolecall and jinja2 render zoo.cfg differently" >&2
        exit 1
    }
    bench "zoo.cfg 5 peers: jinja2-cli" "" \
        "$jinja2 $repo/roles/zookeeper/zoo.cfg $work/zk/context.json --format json -o $work/zk/jinja.cfg" \
        "${slow[@]}"
fi

# Growth: plan for the whole set, and a render whose template lists every peer.
scale=${places[-1]}
mkdir -p "$scale/peers-config"
cp "$repo/bench/inputs/peers/members.conf" "$scale/peers-config/"
for n in 10 1000 10000; do
    bench "plan $n replicas" "" "$binary plan --name web --replicas $n" "${fast[@]}"
done
for n in 10 1000 10000; do
    bench "render $n peers ($(fs_of "$scale"))" \
        "bash -c 'rm -rf $scale/peers-out && mkdir $scale/peers-out'" \
        "$binary render --config-dir $scale/peers-config --file members.conf --hostname web-0 --replicas $n --out $scale/peers-out -q" \
        "${fast[@]}"
done

# Peak RSS: the largest of 5 runs, each into a fresh directory.
rss_rows=()
peak_rss() {
    local name=$1 out=$2 command=$3 max=0 kb
    for _ in 1 2 3 4 5; do
        [[ -n $out ]] && rm -rf "$out" && mkdir -p "$out"
        kb=$(HOSTNAME=mysql-2 $gnu_time -v $command 2>&1 >/dev/null |
            awk -F: '/Maximum resident set size/ { print $2 + 0 }')
        ((kb > max)) && max=$kb
    done
    rss_rows+=("| $name | $max KiB ($(awk -v k="$max" 'BEGIN { printf "%.2f", k / 1024 }') MiB) |")
    printf '  %-34s %s KiB\n' "peak RSS: $name" "$max" >&2
    [[ $name == "rolecall render, MySQL job" ]] && typical_rss=$max
    return 0
}
typical_rss=
if [[ -n $gnu_time ]]; then
    peak_rss "/bin/true" "" /bin/true
    peak_rss "rolecall --version" "" "$binary --version"
    peak_rss "rolecall render, MySQL job" "$work/out" "$(mysql_render "$work")"
    peak_rss "bash script, MySQL job" "$work/conf.d" "bash $work/init-mysql.sh"
    peak_rss "rolecall render, zoo.cfg 5 peers" "$work/zk/out" \
        "$binary render ${zk[*]} --out $work/zk/out -q"
    [[ -n $jinja2 ]] && peak_rss "jinja2-cli, zoo.cfg 5 peers" "" \
        "$jinja2 $repo/roles/zookeeper/zoo.cfg $work/zk/context.json --format json -o $work/zk/jinja.cfg"
    peak_rss "rolecall plan, 10000 replicas" "" "$binary plan --name web --replicas 10000"
    peak_rss "rolecall render, 10000 peers" "$scale/peers-out" \
        "$binary render --config-dir $scale/peers-config --file members.conf --hostname web-0 --replicas 10000 --out $scale/peers-out -q"
fi

# The report.
cpu=$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME" || uname -s)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
echo
echo "### Machine"
echo
echo "- CPU: $cpu, $(nproc) cores available; memory $mem; $os, kernel $(uname -r)"
echo "- rolecall: $("$binary" --version), $(stat -c %s "$binary") bytes, $(file -b "$binary" 2>/dev/null | cut -d, -f1-2 || echo static)"
echo "- $(bash --version | head -n 1); $(hyperfine --version)${jinja2:+; $("$jinja2" --version 2>&1 | tr '\n' ' ')}"
echo "- directories: ${places[*]/%/ } (filesystems: $(for p in "${places[@]}"; do printf '%s ' "$(fs_of "$p")"; done))"
echo "- load average (1, 5, 15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $(date -u +%Y-%m-%d) ${quick:+(--quick: few runs, not for quoting)}"
echo
echo "### Times"
echo
echo "| job | median | min | mean ± σ | user | system |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
awk -F, '{ printf "| %s | %.2f ms | %.2f ms | %.2f ± %.2f ms | %.2f ms | %.2f ms |\n",
    $1, $4 * 1000, $7 * 1000, $2 * 1000, $3 * 1000, $5 * 1000, $6 * 1000 }' "$results"
if ((${#rss_rows[@]})); then
    echo
    echo "### Peak RSS (largest of 5 runs, /usr/bin/time -v)"
    echo
    echo "| process | peak RSS |"
    echo "| --- | ---: |"
    printf '%s\n' "${rss_rows[@]}"
fi

# The goals, by median and by min (the min is the least disturbed by other work on the machine).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v c="$1" 'BEGIN { print (c ? "met" : "MISSED") }'; }
echo
echo "### Goals (by median; by min)"
echo
for place in "${places[@]}"; do
    fs=$(fs_of "$place")
    for variant in "" " --no-sync"; do
        line="- render${variant} at least 3x faster than the bash script ($fs):"
        for col in 4 7; do
            r=$(field "mysql ($fs): rolecall render$variant" $col)
            b=$(field "mysql ($fs): bash script" $col)
            x=$(ratio "$b" "$r")
            line+=" ${x}x $(verdict "$(awk -v x="$x" 'BEGIN { print x >= 3 }')");"
        done
        echo "${line%;}"
    done
done
fs=$(fs_of "${places[-1]}")
for floor in "floor: rolecall --version" "floor: /bin/true"; do
    line="- render within 2x of the no-op floor (${floor#floor: }, $fs):"
    for col in 4 7; do
        x=$(ratio "$(field "mysql ($fs): rolecall render" $col)" "$(field "$floor" $col)")
        line+=" ${x}x $(verdict "$(awk -v x="$x" 'BEGIN { print x <= 2 }')");"
    done
    echo "${line%;}"
done
p=$(field "plan 10000 replicas" 4)
echo "- plan for 10,000 replicas under 100 ms: $p ms, $(verdict "$(awk -v p="$p" 'BEGIN { print p < 100 }')")"
if [[ -n $typical_rss ]]; then
    echo "- peak RSS of a typical render under 4 MiB: $typical_rss KiB, $(verdict "$((typical_rss < 4096))")"
fi
for what in "plan %s replicas" "render %s peers ($(fs_of "$scale"))"; do
    t10=$(field "$(printf "$what" 10)" 4) t1k=$(field "$(printf "$what" 1000)" 4)
    t10k=$(field "$(printf "$what" 10000)" 4)
    echo "- growth of $(printf "$what" N): 10 -> 1,000 -> 10,000 takes $t10 -> $t1k -> $t10k ms;" \
        "$(awk -v a="$t1k" -v b="$t10k" 'BEGIN { printf "%.1f", (b - a) / 9000 * 1000 }') µs per extra pod from 1,000 to 10,000"
done
if ((${#missing[@]})); then
    echo
    printf -- '- not measured, missing %s\n' "${missing[@]}"
fi
