{%- include "checks" -%}
{%- set cluster_id = vars.cluster_id or base64_uuid(name=name ~ "." ~ namespace ~ ".svc." ~ cluster_domain) -%}
{%- set dirs = vars.log_dirs | split(pat=",") -%}
{%- set others = [p for p in peers if p.role == "controller" and not p.is_self] -%}
{%- set majority = vars.controllers // 2 + 1 -%}
#!/bin/sh
# format-storage.sh for {{ hostname }} (KRaft {{ "broker and controller" if role == "controller" else "broker" }}), rendered by rolecall.
# Run it before kafka-server-start.sh: it formats those of this node's log directories that
# were never formatted (that hold no meta.properties) with cluster id {{ cluster_id }}, and
# leaves the others alone. Kafka's tools are in $KAFKA_HOME/bin (default /opt/kafka, as in the
# apache/kafka image). See Kafka's operations guide, KRaft: Provisioning Nodes and Replace KRaft
# Controller Disk.
set -eu
bin="${KAFKA_HOME:-/opt/kafka}/bin"
config="$(dirname "$0")/server.properties"
new=''
kept=''
set --{% for dir in dirs %} '{{ dir }}'{% endfor %}
for dir do
    if [ -e "$dir/meta.properties" ]; then kept="$kept $dir"; else new="$new $dir"; fi
done
if [ -z "$new" ]; then
    echo "format-storage: {{ hostname }} is formatted (every log directory holds meta.properties); nothing to do" >&2
    exit 0
fi
echo "format-storage: not formatted yet:$new" >&2
{% if role == "controller" and others -%}
# The first log directory holds the cluster metadata log (no metadata.log.dir is set).
if [ ! -e '{{ dirs | first }}/meta.properties' ]; then
    # {{ hostname }} votes in a quorum of {{ vars.controllers }} controllers and its metadata log is new: the
    # cluster's first boot, or this controller lost its volume, or it starts after the others
    # formed the quorum. A voter that starts empty can help elect a leader that lacks committed
    # records (KAFKA-14077), so it formats only once a leader elected without it holds them all:
    # once {{ majority }} of the other voters, the leader counted, have the log end offset the leader had
    # when this script first saw it. If every log directory is new and the other controllers
    # have no leader for {{ vars.format_wait }} s (var format_wait), this is the cluster's first boot.
    others='{{ [p.fqdn ~ ":" ~ vars.controller_port for p in others] | join(sep=",") }}'
    deadline=$(( $(date +%s) + {{ vars.format_wait }} ))
    target=-1
    while :; do
        # `describe --replication` prints one line per voter and observer under a header that
        # names the columns (NodeId, LogEndOffset, Status, ...). awk prints the target offset and
        # how many of the other voters have reached it, or nothing while there is no leader.
        quorum=$(timeout 30 "$bin/kafka-metadata-quorum.sh" --bootstrap-controller "$others" \
            describe --replication 2>/dev/null || true)
        # shellcheck disable=SC2046
        set -- $(printf '%s\n' "$quorum" | awk -v self={{ ordinal }} -v target="$target" '
            $1 == "NodeId" { for (i = 1; i <= NF; i++) col[$i] = i; next }
            !("Status" in col) { next }
            $col["Status"] == "Leader" { leader = $col["LogEndOffset"] }
            ($col["Status"] == "Leader" || $col["Status"] == "Follower") && $col["NodeId"] != self {
                offset[$col["NodeId"]] = $col["LogEndOffset"]
            }
            END {
                if (leader == "") exit
                if (target < 0) target = leader
                reached = 0
                for (id in offset) if (offset[id] + 0 >= target + 0) reached++
                print target, reached
            }')
        if [ "$#" -eq 2 ]; then
            target=$1
            if [ "$2" -ge {{ majority }} ]; then
                echo "format-storage: $2 of the other voters have offset $target: formatting" >&2
                break
            fi
            echo "format-storage: waiting until {{ majority }} of the other voters have offset $target ($2 have)" >&2
        elif [ "$target" -lt 0 ] && [ -z "$kept" ] && [ "$(date +%s)" -ge "$deadline" ]; then
            echo "format-storage: no leader among the other controllers for {{ vars.format_wait }} s: the cluster's first boot" >&2
            break
        else
            echo "format-storage: waiting for a leader among the other controllers ($others)" >&2
        fi
        sleep 5
    done
fi
{% endif -%}
# --ignore-formatted: format the new directories, leave the formatted ones as they are.
exec "$bin/kafka-storage.sh" format --ignore-formatted --cluster-id '{{ cluster_id }}' --config "$config"
