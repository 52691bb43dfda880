{#- Included by join-cluster.sh and leave-cluster.sh after their settings ($port): the bound on
    their waits and the shell functions both use. The includer sets `script`, the name its
    messages start with, and `timeout`, its seconds. -#}
started=$(date +%s)
case $started in
'' | *[!0-9]*)
    echo "${0##*/}: \`date +%s\` gives no time; cannot bound the waits" >&2
    exit 1
    ;;
esac
deadline=$((started + {{ timeout }}))

# A migration cut short (a node restarted under it) leaves its slot open: `--cluster fix`
# finishes it. Nothing else is ever "fixed": coverage and disagreement settle by themselves.
fix_open_slots() {
    if timeout 60 redis-cli --cluster check "$1:$port" 2>/dev/null | grep -q 'slots are open'; then
        timeout 120 redis-cli --cluster fix "$1:$port" --cluster-yes >&2
    fi
}
say() { echo "{{ script }}: $*" >&2; }
cli() {
    host=$1
    shift
    timeout 10 redis-cli -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r'
}
# Whether this node is a master that serves slots.
has_slots() { cli 127.0.0.1 cluster nodes | awk '$3 ~ /myself/ && $3 ~ /master/ && NF > 8 { found = 1 } END { exit !found }'; }
# Gives up once the deadline has passed: $1 says what it waited for.
check_time() {
    if [ "$(date +%s)" -ge "$deadline" ]; then
        say "gave up after {{ timeout }} s: $1"
        exit 1
    fi
}
