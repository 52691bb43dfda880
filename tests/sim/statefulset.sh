#!/usr/bin/env bash
# A simulated StatefulSet on one machine, without Docker or Kubernetes: N "pods", each with
#   - its own network namespace and address on a private bridge (no address in the host's
#     namespace: pods reach only each other and their own loopback),
#   - its own hostname NAME-ORDINAL (a persistent UTS namespace),
#   - an /etc/hosts with the headless-service names and a resolv.conf with a Kubernetes `search`
#     line (`ip netns exec` bind-mounts /etc/netns/NS/* over /etc),
#   - a private /tmp and private copies of the --volume directories (bind mounts made in the
#     mount namespace `ip netns exec` gives every command),
#   - its own directory DIR/pods/POD/ with config/ for the init step to write into.
#
# Usage (as root):
#   statefulset.sh up --name NAME --replicas N [--start-ordinal K] [--service SVC]
#                     [--namespace NS] [--cluster-domain DOMAIN] [--volume PATH]...
#                     [--host-address]
#       Make the pods and print the set's directory DIR. Remove them with `down DIR`.
#   statefulset.sh run OPTIONS...
#       Like up, then hold the pods until stdin closes or INT, TERM or HUP arrives, and tear
#       everything down. The tests use this: when the test process ends, however it ends, its
#       end of the pipe closes and the pods go with it. By hand: run it, use the pods from
#       another shell, press Ctrl-C.
#   statefulset.sh exec DIR ORDINAL [VAR=VALUE]... -- CMD [ARG]...
#       Run CMD in pod ORDINAL with an environment of PATH, HOME and the given variables only,
#       as a container's would be. The command replaces this script (same PID).
#   statefulset.sh down DIR
#       Kill every process in the pods (by PID, from `ip netns pids`), delete veths, bridge,
#       namespaces, /etc/netns entries, UTS namespaces and DIR; check nothing is left.
#       Safe to repeat.
#
# --host-address gives the bridge the address NET.X.1, so that this machine (a test's client,
# standing for one in another pod) reaches the pods by their addresses NET.X.10, NET.X.11, ...
#
# Sets get distinct subnets 10.213.X.0/24 (ROLECALL_SIM_NET changes 10.213) and names rcsimX*,
# so several can run at once. A set whose owner process died is reaped by the next `up`.
set -euo pipefail

ROOT=${ROLECALL_SIM_ROOT:-/run/rolecall-sim}
LOCK=/run/lock/rolecall-sim.lock
NET=${ROLECALL_SIM_NET:-10.213}
POD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SELF=$(realpath "$0")

die() {
    printf 'statefulset.sh: %s\n' "$*" >&2
    exit 2
}

need_root() {
    [[ $(id -u) == 0 ]] || die "must run as root (network, UTS and mount namespaces)"
    local tool
    for tool in ip unshare nsenter mount umount flock; do
        command -v "$tool" >/dev/null || die "\`$tool\` not found; install iproute2 and util-linux"
    done
}

is_label() { [[ $1 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ && ${#1} -le 63 ]]; }
is_number() { [[ $1 =~ ^(0|[1-9][0-9]{0,8})$ ]]; }

# A set is described by DIR/spec (`declare` lines); every name below is derived from it, so
# `down` needs nothing else. Callers `source` it themselves: the declarations become their locals.
check_spec() {
    [[ -f $1/spec ]] || die "$1 is not a simulated StatefulSet (no spec file)"
}
pod_of() { printf '%s-%s' "$name" $((start + $1)); }
ns_of() { printf '%s-%s' "$id" "$(pod_of "$1")"; }
veth_of() { printf '%sv%s' "$id" "$1"; }
ip_of() { printf '%s.%s.%s' "$net" "$octet" $((10 + $1)); }
fqdn_of() { printf '%s.%s.%s.svc.%s' "$(pod_of "$1")" "$service" "$namespace" "$domain"; }
# A volume's private directory in a pod: /var/lib/etcd -> vol/var_lib_etcd.
vol_dir() { printf '%s/pods/%s/vol/%s' "$dir" "$(pod_of "$1")" "$(tr / _ <<<"${2#/}")"; }

# Serialises set creation and removal of the shared directories between concurrent runs.
lock_fd=""
lock() {
    [[ -z $lock_fd ]] || return 0
    exec {lock_fd}>"$LOCK"
    flock -w 60 "$lock_fd" || die "another statefulset.sh has held $LOCK for a minute; is one stuck?"
}
unlock() {
    [[ -n $lock_fd ]] || return 0
    exec {lock_fd}>&-
    lock_fd=""
}

# /etc/hosts as the kubelet writes it, plus what cluster DNS would answer for the headless
# service. /etc/hosts ignores the `search` line, so every short form is listed. Pod lines come
# before service lines so that a reverse lookup gives the pod's name.
hosts_file() {
    local me=$1 j pod svc
    printf '# /etc/hosts of pod %s (simulated StatefulSet, tests/sim/statefulset.sh)\n' "$(pod_of "$me")"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    for ((j = 0; j < replicas; j++)); do
        pod=$(pod_of "$j")
        svc="$pod.$service"
        printf '%s\t%s %s.%s.svc %s.%s %s' "$(ip_of "$j")" "$(fqdn_of "$j")" \
            "$svc" "$namespace" "$svc" "$namespace" "$svc"
        # Only its own pod name resolves in a pod, as in Kubernetes.
        if ((j == me)); then printf ' %s' "$pod"; fi
        printf '\n'
    done
    svc="$service.$namespace.svc"
    for ((j = 0; j < replicas; j++)); do
        printf '%s\t%s.%s %s %s.%s %s\n' "$(ip_of "$j")" "$svc" "$domain" "$svc" \
            "$service" "$namespace" "$service"
    done
}

# A pod's resolv.conf. There is no DNS server in the pod: nothing listens on its 127.0.0.1:53,
# so a name missing from /etc/hosts fails at once instead of timing out.
resolv_conf() {
    printf 'search %s.svc.%s svc.%s %s\nnameserver 127.0.0.1\noptions ndots:5\n' \
        "$namespace" "$domain" "$domain" "$domain"
}

# Picks a free subnet octet: no other set's directory, link or namespace, no host route or
# address in NET.X.0/24. Called with the lock held.
free_octet() {
    local o routes
    routes=$(ip -4 -o route show; ip -4 -o addr show)
    for ((o = 1; o <= 254; o++)); do
        [[ -e $ROOT/rcsim$o ]] && continue
        grep -q -E "(^| )${NET//./\\.}\\.$o\\." <<<"$routes" && continue
        ip link show "rcsim$o" >/dev/null 2>&1 && continue
        ip netns list | grep -q "^rcsim$o-" && continue
        printf '%s' "$o"
        return 0
    done
    die "no free subnet in $NET.0.0/16; remove old sets with \`statefulset.sh down DIR\`"
}

# Removes sets whose owner process is gone (a run killed with SIGKILL). Called with the lock held.
reap_stale() {
    local d owner
    for d in "$ROOT"/rcsim*; do
        [[ -f $d/owner ]] || continue
        owner=$(<"$d/owner")
        if ! kill -0 "$owner" 2>/dev/null; then
            printf 'statefulset.sh: removing %s, left by process %s\n' "$d" "$owner" >&2
            (teardown "$d" nolock) || true
        fi
    done
}

# make_set OWNER OPTIONS...: creates the set and sets DIR. On failure the caller's EXIT trap
# removes the part already made.
make_set() {
    local owner=$1
    shift
    local name="" replicas="" start=0 service="" namespace=default domain=cluster.local
    local volumes=() host_address=""
    while (($#)); do
        if [[ $1 == --host-address ]]; then
            host_address=yes
            shift
            continue
        fi
        (($# >= 2)) || die "$1 needs a value"
        case $1 in
        --name) name=$2 ;;
        --replicas) replicas=$2 ;;
        --start-ordinal) start=$2 ;;
        --service) service=$2 ;;
        --namespace) namespace=$2 ;;
        --cluster-domain) domain=$2 ;;
        --volume) volumes+=("$2") ;;
        *) die "unknown option $1 (see the top of $SELF)" ;;
        esac
        shift 2
    done
    is_label "$name" || die "--name \`$name\` must be a DNS label"
    [[ $replicas =~ ^[1-9][0-9]*$ ]] && ((replicas <= 240)) || die "--replicas must be 1..240"
    is_number "$start" || die "--start-ordinal must be a whole number"
    service=${service:-$name}
    is_label "$service" || die "--service \`$service\` must be a DNS label"
    is_label "$namespace" || die "--namespace \`$namespace\` must be a DNS label"
    [[ $domain =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "--cluster-domain \`$domain\` must be a DNS name"
    is_label "$(pod_of $((replicas - 1)))" || die "pod name $(pod_of $((replicas - 1))) is too long"
    local v
    for v in "${volumes[@]}"; do
        [[ $v == /?* && -d $v && $v != /tmp ]] ||
            die "--volume $v must be an existing directory on this machine (the mount point)"
    done
    need_root

    local octet id dir net=$NET
    lock
    reap_stale
    mkdir -p "$ROOT" /etc/netns
    octet=$(free_octet)
    id=rcsim$octet
    dir=$ROOT/$id
    mkdir "$dir"
    DIR=$dir
    # Everything `down` needs, from here on, even if the rest fails.
    declare -p name replicas start service namespace domain volumes octet id net >"$dir/spec"
    printf '%s\n' "$owner" >"$dir/owner"

    local bridge=$id idx pod ns veth
    ip link add "$bridge" type bridge
    ip link set "$bridge" up
    if [[ -n $host_address ]]; then
        ip addr add "$net.$octet.1/24" dev "$bridge"
    fi
    mkdir "$dir/uts"
    # UTS namespace files must live on a private mount, as `ip netns` keeps /run/netns.
    mount --bind "$dir/uts" "$dir/uts"
    mount --make-private "$dir/uts"
    for ((idx = 0; idx < replicas; idx++)); do
        pod=$(pod_of "$idx")
        ns=$(ns_of "$idx")
        veth=$(veth_of "$idx")
        ip netns add "$ns"
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip link set "$veth" master "$bridge" up
        ip -n "$ns" addr add "$(ip_of "$idx")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        mkdir -p "/etc/netns/$ns"
        hosts_file "$idx" >"/etc/netns/$ns/hosts"
        resolv_conf >"/etc/netns/$ns/resolv.conf"
        touch "$dir/uts/$pod"
        unshare --uts="$dir/uts/$pod" hostname "$pod"
        mkdir -p "$dir/pods/$pod/config" "$dir/pods/$pod/tmp"
        chmod 1777 "$dir/pods/$pod/tmp"
        for v in "${volumes[@]}"; do
            mkdir -p -m 0700 "$(vol_dir "$idx" "$v")"
        done
    done
    unlock
}

# Kills every process in a pod's network namespace, by PID, until none is left.
kill_pod_processes() {
    local ns=$1 pids try
    for ((try = 0; try < 100; try++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && return 0
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.05
    done
    printf 'statefulset.sh: processes still in %s: %s\n' "$ns" "$pids" >&2
    return 1
}

# teardown DIR [nolock]: removes a set, also a half-made one, and releases the lock if held.
# Returns 1 if anything is left.
teardown() {
    local dir=$1 lockmode=${2:-lock} idx ns pod left=""
    if [[ ! -f $dir/spec ]]; then
        [[ -d $dir ]] && rm -rf --one-file-system "$dir"
        return 0
    fi
    # shellcheck source=/dev/null
    source "$dir/spec"
    for ((idx = 0; idx < replicas; idx++)); do
        kill_pod_processes "$(ns_of "$idx")" || left+=" processes"
    done
    for ((idx = 0; idx < replicas; idx++)); do
        ns=$(ns_of "$idx")
        pod=$(pod_of "$idx")
        # Deleting our end removes the pair at once; a deleted namespace frees its end later.
        ip link del "$(veth_of "$idx")" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
        umount "$dir/uts/$pod" 2>/dev/null || true
    done
    ip link del "$id" 2>/dev/null || true
    umount "$dir/uts" 2>/dev/null || true
    rm -rf --one-file-system "$dir" || true
    if [[ $lockmode == lock ]]; then lock; fi
    rmdir /etc/netns "$ROOT" 2>/dev/null || true
    unlock

    ip netns list | grep -q "^$id-" && left+=" namespaces"
    ip link show "$id" >/dev/null 2>&1 && left+=" bridge"
    ip -o link show | grep -q ": ${id}v[0-9]" && left+=" veths"
    compgen -G "/etc/netns/$id-*" >/dev/null && left+=" /etc/netns"
    grep -q -F " $dir/" /proc/self/mountinfo && left+=" mounts"
    [[ -e $dir ]] && left+=" $dir"
    if [[ -n $left ]]; then
        printf 'statefulset.sh: could not remove set %s:%s\n' "$id" "$left" >&2
        return 1
    fi
}

cmd_up() {
    DIR=""
    trap '[[ -z $DIR ]] || teardown "$DIR"' EXIT
    make_set "$PPID" "$@"
    trap - EXIT
    printf '%s\n' "$DIR"
}

cmd_run() {
    DIR=""
    on_exit() {
        local status=$?
        trap '' INT TERM HUP
        if [[ -n $DIR ]]; then teardown "$DIR" || status=1; fi
        exit "$status"
    }
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    make_set "$$" "$@"
    printf '%s\n' "$DIR"
    # A trapped signal interrupts `read`; end of input ends the loop.
    while IFS= read -r _; do :; done
}

cmd_exec() {
    (($# >= 2)) || die "usage: exec DIR ORDINAL [VAR=VALUE]... -- CMD [ARG]..."
    local dir=$1 ordinal=$2
    shift 2
    check_spec "$dir"
    # shellcheck source=/dev/null
    source "$dir/spec"
    is_number "$ordinal" && ((ordinal >= start && ordinal < start + replicas)) ||
        die "no pod with ordinal $ordinal in $dir (ordinals $start..$((start + replicas - 1)))"
    local idx=$((ordinal - start))
    exec ip netns exec "$(ns_of "$idx")" nsenter --uts="$dir/uts/$(pod_of "$idx")" -- \
        "$BASH" "$SELF" _enter "$dir" "$idx" "$@"
}

# Inside the pod's namespaces: private mounts, a container-like environment, then the command.
cmd__enter() {
    local dir=$1 idx=$2 v
    shift 2
    # shellcheck source=/dev/null
    source "$dir/spec"
    mount --bind "$dir/pods/$(pod_of "$idx")/tmp" /tmp
    for v in "${volumes[@]}"; do
        mount --bind "$(vol_dir "$idx" "$v")" "$v"
    done
    local env=()
    while (($#)) && [[ $1 != -- ]]; do
        [[ $1 == [A-Za-z_]*=* ]] || die "expected VAR=VALUE or --, got \`$1\`"
        env+=("$1")
        shift
    done
    (($# >= 2)) || die "exec needs -- CMD"
    shift
    # A container starts with stdin, stdout and stderr only. An inherited descriptor, such as
    # the caller's end of a `run` pipe, would keep the set alive as long as a server runs.
    local fd path
    for path in /proc/self/fd/*; do
        fd=${path##*/}
        if ((fd > 2)) && [[ -e $path ]]; then exec {fd}>&-; fi
    done
    cd /
    exec env -i PATH="$POD_PATH" HOME=/root "${env[@]}" "$@"
}

cmd_down() {
    (($# == 1)) || die "usage: down DIR"
    need_root
    teardown "$1"
}

main() {
    (($#)) || die "usage: statefulset.sh up|run|exec|down ... (see the top of $SELF)"
    local cmd=$1
    shift
    case $cmd in
    up) cmd_up "$@" ;;
    run) cmd_run "$@" ;;
    exec) cmd_exec "$@" ;;
    _enter) cmd__enter "$@" ;;
    down) cmd_down "$@" ;;
    *) die "unknown command $cmd (see the top of $SELF)" ;;
    esac
}

main "$@"
