{%- include "checks" -%}
{%- set rs = vars.replica_set or name -%}
{%- set others = [p.fqdn for p in peers if not p.is_self] -%}
#!/bin/sh
# join-replica-set.sh for {{ hostname }}, rendered by rolecall. Run it before mongod starts: it asks
# the other members (db.hello()) whether replica set {{ rs }} exists, and refuses (exit 1) when
# it does but does not list this pod: the set grew, and MongoDB adds a member only by a reconfig
# on its primary (rs.add). mongod may start when this pod is listed (a restart, or a new volume,
# which then syncs from the others) or when no other member has a config (the set's first
# boot). Needs mongosh, as in the official mongo image.
set -u
{% if others -%}
for host in{% for h in others %} {{ h }}{% endfor %}; do
    state=$(SELF='{{ address }}' mongosh --quiet \
        "mongodb://$host:{{ port }}/?directConnection=true&serverSelectionTimeoutMS=3000" --eval '
        const hello = db.hello();
        const listed = [].concat(hello.hosts || [], hello.passives || [], hello.arbiters || []);
        print(!hello.setName ? "none" : listed.includes(process.env.SELF) ? "member" : "absent " + hello.setName);' \
        2>/dev/null) || continue
    case "$state" in
    member)
        echo "join-replica-set: $host lists {{ hostname }} in replica set {{ rs }}; starting" >&2
        exit 0
        ;;
    absent*)
        echo "join-replica-set: refusing to start mongod: replica set ${state#absent } (seen from $host) does not list {{ hostname }}." >&2
        echo "  Add it on the primary, then this pod starts:" >&2
        echo '  rs.add({ _id: {{ ordinal }}, host: "{{ address }}"{% if index >= 7 %}, votes: 0, priority: 0{% endif %} })' >&2
        exit 1
        ;;
    esac
done
{% endif -%}
echo "join-replica-set: no other member has a replica set config; starting" >&2
exit 0
