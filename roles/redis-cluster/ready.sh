#!/bin/sh
# ready.sh for {{ hostname }}, rendered by rolecall: the Redis container's readiness probe.
# Ready once this node belongs to a cluster that serves every slot (cluster_state:ok) and is a
# replica, or a master that serves slots: a new shard's master is not ready before its slots
# were moved onto it, so a rolling update waits for join-cluster.sh instead of restarting nodes
# under its migrations; and join-cluster.sh must have ended well (its mark in the data dir).
# With a password, export REDISCLI_AUTH first.
[ -e {{ vars.data_dir | shell }}/join-cluster.done ] || exit 1
info=$(timeout 5 redis-cli -p {{ port }} cluster info 2>/dev/null | tr -d '\r')
case $info in
*cluster_state:ok*) ;;
*) exit 1 ;;
esac
timeout 5 redis-cli -p {{ port }} cluster nodes 2>/dev/null |
    awk '$3 ~ /myself/ && ($3 ~ /slave/ || NF > 8) { ok = 1 } END { exit !ok }'
