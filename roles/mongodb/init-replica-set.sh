#!/bin/sh
# init-replica-set.sh for {{ hostname }}, rendered by rolecall: initiates replica set {{ vars.replica_set or name }}
# once, with every pod of {{ name }} as a member (replica-set.json, beside this script).
# Run it on this pod once mongod runs, e.g. in the background of its container: it waits until
# every member answers, and does nothing when the replica set already exists. Needs mongosh,
# as in the official mongo image.
set -eu
config="$(dirname "$0")/replica-set.json"
for host in \
{%- for p in peers %}
    {{ p.fqdn }}{% if not loop.last %} \{% endif %}
{%- endfor %}; do
    until mongosh --quiet --host "$host" --port {{ port }} --eval 'db.adminCommand({ ping: 1 }).ok' >/dev/null 2>&1; do
        echo "init-replica-set: waiting for $host:{{ port }}" >&2
        sleep 2
    done
done
if mongosh --quiet --port {{ port }} --eval 'rs.status().ok' >/dev/null 2>&1; then
    echo "init-replica-set: replica set {{ vars.replica_set or name }} exists; nothing to do" >&2
    exit 0
fi
exec mongosh --quiet --port {{ port }} --eval "rs.initiate($(cat "$config"))"
