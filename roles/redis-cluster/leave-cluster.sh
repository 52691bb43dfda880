{%- set r = vars.replicas_per_master -%}
{%- set shard = 1 + r -%}
{%- set script = "leave-cluster" -%}
{%- set timeout = vars.leave_timeout -%}
#!/bin/sh
# leave-cluster.sh for {{ hostname }}, rendered by rolecall: the preStop hook of the Redis
# container, `leave-cluster.sh SIZE` with SIZE the set's size now (spec.replicas, which the
# pod's own environment does not have once it changed). When the set still includes this pod,
# or is scaled to 0, it does nothing. Otherwise (a scale-down by whole shards of {{ shard }}
# pods) it moves this node's slots to the other masters (redis-cli --cluster rebalance with
# this node's weight 0), then removes it (redis-cli --cluster del-node: every other node
# forgets it, a replica of it replicates another master, and it is reset). It gives up after
# {{ vars.leave_timeout }} s: keep terminationGracePeriodSeconds above that.
# With a password, export REDISCLI_AUTH first.
set -u
port={{ port }}
me={{ fqdn }}
index={{ index }}
shard={{ shard }}
size=${1:-}
{% include "cluster-helpers.sh" %}
case $size in
'' | *[!0-9]*)
    say "usage: leave-cluster.sh SIZE (the set's spec.replicas now)"
    exit 2
    ;;
esac
if [ "$size" -eq 0 ]; then
    say "the set is scaled to 0: a pause, staying in the cluster"
    exit 0
fi
if [ "$index" -lt "$size" ]; then
    say "the set of $size still includes {{ hostname }}: staying in the cluster"
    # A restart: a master hands its slots to its replica first (CLUSTER FAILOVER, which waits
    # until the replica has every write), so its slots pause for a handover, not for
    # cluster-node-timeout and an election.
    myid=$(cli 127.0.0.1 cluster myid)
    replica=$(cli 127.0.0.1 cluster nodes | awk -v id="$myid" '$4 == id && $3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected" { split($2, a, ":"); print a[1]; exit }')
    if [ -n "$replica" ] && has_slots; then
        deadline=$(($(date +%s) + 20))
        if [ "$(cli "$replica" cluster failover)" = OK ]; then
            until cli 127.0.0.1 cluster nodes | awk '$3 ~ /myself/ && $3 ~ /slave/ { f = 1 } END { exit !f }'; do
                [ "$(date +%s)" -lt "$deadline" ] || break
                sleep 0.2
            done
            say "handed this master's slots to its replica $replica"
        fi
    fi
    exit 0
fi
if [ $((size % shard)) -ne 0 ] || [ $((size / shard)) -lt 3 ]; then
    say "refusing to leave: $size pods are not whole shards of $shard with at least 3 masters"
    exit 1
fi
# A join still running in this container (say, moving slots onto this new master) ends first.
pidfile={{ vars.data_dir | shell }}/join-cluster.pid
if [ -e "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if grep -q join-cluster "/proc/$pid/cmdline" 2>/dev/null; then
        say "stopping join-cluster.sh ($pid) first"
        kill "$pid" 2>/dev/null
    fi
fi
myid=$(cli 127.0.0.1 cluster myid)
# A node of a pod that stays, to run the cluster commands through.
other=""
until [ -n "$other" ]; do
    for host in{% for p in peers %}{% if not p.is_self %} {{ p.fqdn }}{% endif %}{% endfor %}; do
        ordinal=${host%%.*}
        ordinal=${ordinal##*-}
        if [ $((ordinal - {{ start_ordinal }})) -lt "$size" ] && [ "$(cli "$host" ping)" = PONG ]; then
            other=$host
            break
        fi
    done
    [ -n "$other" ] || { check_time "no node of the pods that stay answers"; sleep 1; }
done
if has_slots; then
    say "moving this master's slots to the other masters"
    while has_slots; do
        timeout 300 redis-cli --cluster rebalance "$other:$port" --cluster-weight "$myid=0" --cluster-yes >&2
        has_slots || break
        check_time "could not move this master's slots away"
        sleep 2
        fix_open_slots "$other"
    done
fi
say "removing node $myid from the cluster"
until timeout 60 redis-cli --cluster del-node "$other:$port" "$myid" >&2; do
    check_time "could not remove this node"
    sleep 2
done
say "removed; every other node forgot $myid"
