{%- include "checks" -%}
{%- set rs = vars.replica_set or name -%}
#!/bin/sh
# init-replica-set.sh for {{ hostname }}, rendered by rolecall: initiates replica set {{ rs }} once,
# with every pod of {{ name }} as a member (replica-set.json, beside this script). Run it in the
# background of this pod's container: it waits until mongod answers here and on every member,
# then runs replSetInitiate over the localhost interface (which the localhost exception allows
# while no user exists), and tries again until it succeeds. It does nothing when this member or
# another already has a replica set config: the set exists (and a new volume here then syncs
# from the others). Needs mongosh, as in the official mongo image.
set -u
config="$(dirname "$0")/replica-set.json"
uri() { echo "mongodb://$1:{{ port }}/?directConnection=true&serverSelectionTimeoutMS=3000"; }
# The replica set db.hello() of member $1 reports, or nothing (no config yet, or no answer).
set_name() {
    mongosh --quiet "$(uri "$1")" --eval 'print(db.hello().setName || "")' 2>/dev/null
}
while :; do
    existing=''
    for host in 127.0.0.1{% for h in [p.fqdn for p in peers if not p.is_self] %} {{ h }}{% endfor %}; do
        existing=$(set_name "$host")
        if [ -n "$existing" ]; then
            echo "init-replica-set: $host is a member of replica set $existing; nothing to do" >&2
            exit 0
        fi
    done
    waiting=''
    for host in{% for p in peers %} {{ p.fqdn }}{% endfor %}; do
        mongosh --quiet "$(uri "$host")" --eval 'db.adminCommand({ ping: 1 }).ok' >/dev/null 2>&1 ||
            waiting="$waiting $host"
    done
    if [ -n "$waiting" ]; then
        echo "init-replica-set: waiting for mongod on$waiting" >&2
        sleep 5
        continue
    fi
    if RS_CONFIG="$config" mongosh --quiet "$(uri 127.0.0.1)" --eval '
        const config = JSON.parse(fs.readFileSync(process.env.RS_CONFIG, "utf8"));
        let reply;
        try {
            reply = db.adminCommand({ replSetInitiate: config });
        } catch (e) {
            reply = { ok: 0, codeName: e.codeName, errmsg: e.message };
        }
        print(reply.ok ? "replSetInitiate: ok" : "replSetInitiate: " + reply.codeName + ": " + reply.errmsg);
        quit(reply.ok || reply.codeName === "AlreadyInitialized" ? 0 : 1);'; then
        echo "init-replica-set: replica set {{ rs }} initiated" >&2
        exit 0
    fi
    echo "init-replica-set: replSetInitiate failed; trying again in 5 s" >&2
    sleep 5
done
