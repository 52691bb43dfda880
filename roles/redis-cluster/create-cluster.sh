{%- set masters = replicas // (1 + vars.replicas_per_master) -%}
#!/bin/sh
# create-cluster.sh for {{ hostname }}, rendered by rolecall: creates the Redis Cluster of the
# {{ replicas }} pods of {{ name }}, once. redis-cli makes {{ masters }} of them masters
{%- if masters < replicas %} and the others their replicas,
# at least {{ vars.replicas_per_master }} per master{% endif %}.
# Run it on this pod once redis-server runs (e.g. in the background of its container). It waits
# until every member answers, and does nothing if this node or another already belongs to a
# cluster (then join-cluster.sh, on every pod, does what is needed).
# With a password, export REDISCLI_AUTH first.
set -eu
for host in \
{%- for p in peers %}
    {{ p.fqdn }}{% if not loop.last %} \{% endif %}
{%- endfor %}; do
    until redis-cli -h "$host" -p {{ port }} ping 2>/dev/null | grep -q PONG; do
        echo "create-cluster: waiting for $host:{{ port }}" >&2
        sleep 2
    done
done
known=$(redis-cli -p {{ port }} cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
if [ "${known:-0}" -gt 1 ]; then
    echo "create-cluster: this node already knows $known nodes; nothing to do" >&2
    exit 0
fi
# A new volume on this pod while the cluster runs: join-cluster.sh replaces the lost node.
for host in{% for p in peers %}{% if not p.is_self %} {{ p.fqdn }}{% endif %}{% endfor %}; do
    other=$(redis-cli -h "$host" -p {{ port }} cluster info | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')
    if [ "${other:-0}" -gt 1 ]; then
        echo "create-cluster: $host already belongs to a cluster; join-cluster.sh joins this node to it" >&2
        exit 0
    fi
done
exec redis-cli --cluster create \
{%- for p in peers %}
    {{ p.address }} \
{%- endfor %}
    --cluster-replicas {{ vars.replicas_per_master }} --cluster-yes
