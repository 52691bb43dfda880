{%- set r = vars.replicas_per_master -%}
{%- set shard = 1 + r -%}
{%- set first = index - index % shard -%}
{%- set script = "join-cluster" -%}
{%- set timeout = vars.join_timeout -%}
#!/bin/sh
# join-cluster.sh for {{ hostname }}, rendered by rolecall: makes this pod's node a member of
# the running Redis Cluster of {{ name }} when it is not one, and does nothing when it is (a
# restart: nodes.conf in the data dir keeps its membership) or while no cluster exists yet
# (create-cluster.sh on the first pod creates it). Run it on every pod, in the background of
# the Redis container, like create-cluster.sh; it gives up after {{ vars.join_timeout }} s.
#  - A new volume on a pod the cluster knows (lost volume): the node has a new id. The old id
#    is forgotten by every node, once its slots have gone to its replica (failover after
#    cluster-node-timeout), and the node becomes a replica of the master with the fewest
#    replicas: the one the old node served, or that took over its slots.
#  - A pod of a new shard (scale-up by whole shards of {{ shard }} pods): the shard's first pod
#    joins as a master and rebalances slots onto it (redis-cli --cluster rebalance
#    --cluster-use-empty-masters); the others join as its replicas.
# `join-cluster.sh before-start`, run in the foreground before redis-server starts, guards the
# lost-volume case: a new node that answers at the old node's address before its replica took
# over would be taken by that replica for its master, and the replica would copy its empty
# dataset. So while the cluster still has a master with this pod's hostname that serves slots,
# and this data dir has no nodes.conf, it waits (at most {{ vars.join_timeout }} s) for the
# failover.
# With a password, export REDISCLI_AUTH first.
set -u
port={{ port }}
me={{ fqdn }}
index={{ index }}
shard={{ shard }}
shard_master={% for p in peers %}{% if p.index == first %}{{ p.fqdn }}{% endif %}{% endfor %}
peers="{% for p in peers %}{% if not p.is_self %}{{ p.fqdn }} {% endif %}{% endfor %}"
{% include "cluster-helpers.sh" -%}
info() { cli "$1" cluster info | sed -n "s/^$2://p"; }
# The id of the node whose announced hostname is $1, in the cluster view $2.
id_of() { printf '%s\n' "$2" | awk -v h="$1" '{ split($2, a, ","); if (a[2] == h) print $1 }'; }
# Makes this node a replica of master $1: meets the cluster through the seed (redis-cli
# --cluster add-node), then CLUSTER REPLICATE, again until it holds; slots a concurrent
# rebalance gave it while it was an empty master are moved away first.
replicate() {
    until cli 127.0.0.1 cluster nodes | awk -v m="$1" '$3 ~ /myself/ && $3 ~ /slave/ && $4 == m { found = 1 } END { exit !found }'; do
        check_time "could not become a replica of $1"
        if [ "$(info 127.0.0.1 cluster_known_nodes)" = 1 ]; then
            timeout 60 redis-cli --cluster add-node "$me:$port" "$seed:$port" >&2 || { sleep 2; continue; }
        fi
        if has_slots; then
            timeout 300 redis-cli --cluster rebalance "$seed:$port" --cluster-weight "$myid=0" --cluster-yes >&2
        fi
        cli 127.0.0.1 cluster replicate "$1" >&2
        sleep 1
    done
}

if [ "${1:-}" = before-start ]; then
    [ -e {{ vars.data_dir | shell }}/nodes.conf ] && exit 0
    for host in $peers; do
        while cli "$host" cluster nodes | awk -v h="$me" '
            { split($2, a, ",") } a[2] == h && $3 ~ /master/ && $3 !~ /myself/ && NF > 8 { found = 1 }
            END { exit !found }'; do
            check_time "a master with this pod's hostname still serves slots; starting anyway"
            say "waiting until a replica takes over the slots of this pod's lost node"
            sleep 2
        done
    done
    exit 0
fi
# ready.sh holds the pod unready until this run ends well; leave-cluster.sh stops this run
# before it moves slots away.
data={{ vars.data_dir | shell }}
rm -f "$data/join-cluster.done"
echo $$ >"$data/join-cluster.pid"
done_ok() {
    say "$1"
    touch "$data/join-cluster.done"
    rm -f "$data/join-cluster.pid"
    exit 0
}
until [ "$(cli 127.0.0.1 ping)" = PONG ]; do
    check_time "this pod's redis-server does not answer"
    sleep 1
done
myid=$(cli 127.0.0.1 cluster myid)
# Wait for a cluster: this node in one (done), or another node of a cluster that serves.
seed=""
while :; do
    if [ "$(info 127.0.0.1 cluster_known_nodes)" != 1 ]; then
        done_ok "this node belongs to a cluster; nothing to do"
    fi
    for host in $peers; do
        if [ "$(info "$host" cluster_state)" = ok ]; then
            seed=$host
            break
        fi
    done
    if [ -n "$seed" ]; then
        # The cluster's creation meets every node before its state is ok; a meeting on its way
        # to this node is not a reason to join on its own.
        sleep 2
        if [ "$(info 127.0.0.1 cluster_known_nodes)" != 1 ]; then
            done_ok "this node belongs to a cluster; nothing to do"
        fi
        break
    fi
    check_time "no node of a running cluster answered"
    sleep 2
done

nodes=$(cli "$seed" cluster nodes)
old=$(id_of "$me" "$nodes" | grep -v -x "$myid")
if [ -n "$old" ]; then
    for id in $old; do
        say "this pod's node was $id before its volume was lost; replacing it"
        # A failed master keeps its slots until its replica takes over.
        while cli "$seed" cluster nodes | awk -v id="$id" '$1 == id && NF > 8 { found = 1 } END { exit !found }'; do
            check_time "$id still serves slots and no replica took them over"
            sleep 1
        done
        for ip in $(cli "$seed" cluster nodes | awk -v id="$id" -v me="$myid" '$1 != id && $1 != me { split($2, a, ":"); print a[1] }'); do
            cli "$ip" cluster forget "$id" >/dev/null
        done
        say "forgot $id on every node"
    done
    until master=$(cli "$seed" cluster nodes | awk '
        $3 ~ /master/ && $3 !~ /fail/ && NF > 8 { m[$1] = 0 }
        $3 ~ /slave/ && $3 !~ /fail/ { c[$4]++ }
        END {
            for (id in m) { n = (id in c) ? c[id] : 0; if (best == "" || n < bn) { best = id; bn = n } }
            if (best == "") exit 1
            print best
        }'); do
        check_time "no master serves slots"
        sleep 2
    done
    replicate "$master"
    done_ok "joined as a replica of $master"
elif [ "$me" = "$shard_master" ]; then
    say "joining as the master of a new shard"
    until timeout 60 redis-cli --cluster add-node "$me:$port" "$seed:$port" >&2; do
        check_time "could not join as a master"
        sleep 2
    done
    # The shard's replicas first: while one of them is still an empty master (add-node meets
    # it before it replicates), a rebalance would give it slots.
    until [ "$(cli 127.0.0.1 cluster nodes | awk -v id="$myid" '$4 == id && $3 !~ /fail/ { n++ } END { print n + 0 }')" -ge {{ r }} ]; do
        check_time "the shard's {{ r }} replicas did not join"
        sleep 2
    done
    # Every node must know the new master before the rebalance's cluster check passes.
    until timeout 300 redis-cli --cluster rebalance "$seed:$port" --cluster-use-empty-masters --cluster-yes >&2 &&
        [ "$(info 127.0.0.1 cluster_slots_assigned)" = 16384 ] &&
        has_slots; do
        check_time "could not move slots onto this master"
        sleep 2
        fix_open_slots "$seed"
    done
    done_ok "joined as a master and took its share of the slots"
else
    say "joining as a replica of $shard_master, the first pod of its shard"
    until master=$(cli "$seed" cluster nodes | awk -v h="$shard_master" '
        { split($2, a, ",") } a[2] == h && $3 ~ /master/ { print $1; found = 1 } END { exit !found }'); do
        check_time "$shard_master is not a master of the cluster"
        sleep 2
    done
    replicate "$master"
    done_ok "joined as a replica of $master"
fi
