#!/bin/bash
# Scale-out: several `sluice run` hosts in one consumer group share the analytics pipeline.
#
#   sluice-gen -> sluice A (ecommerce-ingest.yaml) -> Apache Kafka (scripts/kafka.sh,
#   events_raw: 8 partitions) -> hosts H1..H3 (ecommerce-analytics.yaml, one group) -> PostgreSQL
#
# Each host is its own process tree with its own working dir, state dir and REST port, and, when
# the test can make them (root, `ip netns`), its own network namespace: a veth into a bridge the
# test creates, Kafka listening on the bridge (kafka.sh --listen), PostgreSQL reached through its
# unix socket (pgtmp listens on 127.0.0.1 only; a socket file is visible from every namespace),
# REST on the namespace's own address. Otherwise (SCALE_NETNS=0, or not possible) loopback.
# The pipeline is the shipped file with
# two changes made in a copy: the group name (so the single-host run below uses another group)
# and, unless SCALE_ASSIGNOR says otherwise, partition.assignment.strategy cooperative-sticky.
# The hosts run the supervisor's lag autoscaler (tasks: {min: 1, max: 8}).
#
#   1. H1..H3 start: every partition is owned by exactly one host (each host's REST status,
#      tasks[].partitions), every host owns some.
#   2. H2 is killed (kill -9 of its process group): its partitions move to H1 and H3; H2 restarts
#      and gets partitions again. Times are printed (bench figures, never asserted).
#   3. The generator stops; once everything is consumed the hosts stop (SIGTERM) and the
#      database is checked (tests/e2e/check-results.sh): each valid event once, every invalid
#      one in the dead letter, every KPI row equal to SQL over events_clean.
#   4. Every "scaling from A to B tasks" a host logged has B <= the partitions it owned.
#   5. The KPI tables are saved, emptied, and one host alone (another group) consumes the same
#      topic from the start: its KPI tables equal the scaled-out ones.
#
# Knobs: SCALE_NETNS (1: namespaces if possible; 0: loopback), SCALE_HOSTS (3), SCALE_EVENTS (90000), SCALE_RATE (3000/s), SCALE_ASSIGNOR
# (cooperative-sticky | range,roundrobin), KEEP_LOGS (a directory to keep the logs in).
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
. "$SLUICE_SOURCE_DIR/tests/lib/pgtmp.sh"
. "$SLUICE_SOURCE_DIR/tests/e2e/check-results.sh"

HOSTS=${SCALE_HOSTS:-3}
EVENTS=${SCALE_EVENTS:-90000}
RATE=${SCALE_RATE:-3000}
ASSIGNOR=${SCALE_ASSIGNOR:-cooperative-sticky}
PARTS=8
SEED=${SCALE_SEED:-$((RANDOM * 32768 + RANDOM))}
B=${SLUICE_BUILD_DIR:?}
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
KAFKA_SH=$SLUICE_SOURCE_DIR/scripts/kafka.sh
for f in "$MOCK" "$GEN"; do [ -x "$f" ] || fail "$f not built"; done
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 1))"; }
echo "seed $SEED: $EVENTS events at $RATE/s, $HOSTS hosts, $PARTS partitions, assignor $ASSIGNOR"

declare -A HPID
A_PID= GEN_PID= MOCK_PID= KDIR= SINGLE_PID= NETNS=
# Names unique to this run (interface names: at most 15 characters).
NS_PREFIX=sl$$h BRIDGE=sl$$br NET=10.$((100 + $$ % 100)).$(($$ / 100 % 250)).
scale_cleanup() {
    local h
    for h in "${!HPID[@]}"; do [ -n "${HPID[$h]}" ] && kill -KILL -- "-${HPID[$h]}" 2>/dev/null; done
    [ -n "$SINGLE_PID" ] && kill -KILL -- "-$SINGLE_PID" 2>/dev/null
    [ -n "$A_PID" ] && kill -KILL -- "-$A_PID" 2>/dev/null
    [ -n "$GEN_PID" ] && kill -TERM "$GEN_PID" 2>/dev/null
    [ -n "$MOCK_PID" ] && kill -TERM "$MOCK_PID" 2>/dev/null
    [ -n "$KDIR" ] && bash "$KAFKA_SH" stop --dir "$KDIR" >/dev/null
    if [ -n "$NETNS" ]; then
        for h in $(seq 1 "$HOSTS"); do ip netns del "$NS_PREFIX$h" 2>/dev/null; done
        ip link del "$BRIDGE" 2>/dev/null
    fi
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$T"/h*/*.log "$T"/*.txt "$KEEP_LOGS"/ 2>/dev/null
    fi
    _cleanup
}
PGTMP_ON_EXIT=scale_cleanup
pgtmp_start >"$T/pgtmp.log" 2>&1 || { cat "$T/pgtmp.log" >&2; fail "cannot start PostgreSQL"; }
export PGTZ=UTC SLUICE_PLUGIN_PATH
cd "$T" || exit 1

# ---- network namespaces ------------------------------------------------------------------------
LISTEN=127.0.0.1
if [ "${SCALE_NETNS:-1}" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "network namespaces: not root; the hosts share loopback"
    elif ! { ip link add "$BRIDGE" type bridge && NETNS=1 && ip addr add "${NET}1/24" dev "$BRIDGE" &&
             ip link set "$BRIDGE" up; } 2>netns.log; then
        echo "network namespaces: cannot make a bridge ($(cat netns.log)); the hosts share loopback"
    else
        for h in $(seq 1 "$HOSTS"); do
            ns=$NS_PREFIX$h
            ip netns add "$ns" && ip link add "${ns}v" type veth peer name eth0 netns "$ns" &&
                ip link set "${ns}v" master "$BRIDGE" up &&
                ip netns exec "$ns" ip addr add "${NET}$((10 + h))/24" dev eth0 &&
                ip netns exec "$ns" ip link set eth0 up && ip netns exec "$ns" ip link set lo up ||
                fail "cannot set up network namespace $ns"
        done
        LISTEN=${NET}1
        echo "network namespaces: ${NS_PREFIX}1..$HOSTS at ${NET}11.., bridge $BRIDGE at $LISTEN"
    fi
fi

# ---- Kafka -------------------------------------------------------------------------------------
KDIR=$T/kafka
t0=$(now)
KAFKA_BROKERS=$(bash "$KAFKA_SH" start --dir "$KDIR" --listen "$LISTEN" 2>kafka.log | sed -n 's/^KAFKA_BROKERS=//p')
[ -n "$KAFKA_BROKERS" ] || fail "scripts/kafka.sh start failed: $(tail -20 kafka.log)"
export KAFKA_BROKERS
bash "$KAFKA_SH" topic events_raw --partitions $PARTS --dir "$KDIR" 2>>kafka.log || fail "topic: $(tail kafka.log)"
echo "Apache Kafka at $KAFKA_BROKERS with events_raw ($PARTS partitions) in $(since "$t0") s"
coproc MK { exec "$MOCK" -B "$KAFKA_BROKERS" 2>mock-kafka.log; }
MOCK_PID=$MK_PID
mk() {
    echo "$1" >&"${MK[1]}"
    local line
    read -r -t 30 -u "${MK[0]}" line || fail "mock-kafka -B did not answer '$1'"
    echo "$line"
}

# ---- the pipeline copy and the host config -----------------------------------------------------
mkdir pl
cp "$SLUICE_SOURCE_DIR"/pipelines/ecommerce-analytics.yaml "$SLUICE_SOURCE_DIR"/pipelines/*.schema.yaml pl/
sed -i 's/^      group: ecommerce-analytics$/      group: "${SCALE_GROUP}"/' pl/ecommerce-analytics.yaml
grep -q 'group: "${SCALE_GROUP}"' pl/ecommerce-analytics.yaml || fail "cannot set the group in the copy"
sed -i "s/^      rdkafka: {session.timeout.ms: \"6000\"/      rdkafka: {partition.assignment.strategy: \"$ASSIGNOR\", session.timeout.ms: \"6000\"/" pl/ecommerce-analytics.yaml
grep -q "partition.assignment.strategy" pl/ecommerce-analytics.yaml || fail "cannot set the assignor in the copy"
sed -i 's/^batch_size: 5000$/batch_size: 5000\ntasks: {min: 1, max: 8}/' pl/ecommerce-analytics.yaml
cat >host.yaml <<'Y'
rest: {listen: "127.0.0.1:0", autoscale: {window: 6s, interval: 2s, lag_low: 2000}}
Y

# ---- generator and ingest ----------------------------------------------------------------------
"$GEN" --listen 127.0.0.1:0 --seed "$SEED" --rate "$RATE" --stopped --record gen.ndjson \
    --config '{"invalid_pct":3,"duplicate_pct":5,"late_pct":5,"late_by":"60s"}' 2>gen.log &
GEN_PID=$!
wait_for grep -q 'listening on http://' gen.log || fail "sluice-gen did not start: $(cat gen.log)"
GEN_URL=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' gen.log | head -1)
export GEN_URL
gen_stat() {
    python3 -c 'import json, sys, urllib.request
print(int(json.load(urllib.request.urlopen(sys.argv[1] + "/gen/stats", timeout=10))[sys.argv[2]]))' \
        "$GEN_URL" "$1"
}
gen_config() {
    python3 -c 'import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/gen/config", data=sys.argv[2].encode(), method="PUT")
urllib.request.urlopen(req, timeout=10).read()' "$GEN_URL" "$1"
}
setsid "$SLUICE" run "$SLUICE_SOURCE_DIR/pipelines/ecommerce-ingest.yaml" >a.out 2>a.log &
A_PID=$!

# ---- hosts -------------------------------------------------------------------------------------
start_host() { # N: in its namespace (if any), PostgreSQL through the unix socket there
    mkdir -p "h$1"
    if [ -n "$NETNS" ]; then
        (cd "h$1" && SCALE_GROUP=scaleout SLUICE_STATE_DIR=$T/h$1/state \
            PG_DSN="host=$PGTMP_DIR port=$PGTMP_PORT user=app dbname=realtime" \
            exec ip netns exec "$NS_PREFIX$1" setsid "$SLUICE" run -c ../host.yaml \
            --rest "${NET}$((10 + $1)):0" ../pl/ecommerce-analytics.yaml >>out.log 2>>host.log) &
    else
        (cd "h$1" && SCALE_GROUP=scaleout SLUICE_STATE_DIR=$T/h$1/state exec setsid "$SLUICE" run \
            -c ../host.yaml ../pl/ecommerce-analytics.yaml >>out.log 2>>host.log) &
    fi
    HPID[$1]=$!
}
rest_url() { sed -n 's/.*REST API listening on \(http:[^ "]*\)\/.*/\1/p' "h$1/host.log" | tail -1; }
# owned N: "P P P" — the partitions host N's REST status says its tasks own now (empty if down).
owned() {
    local url; url=$(rest_url "$1")
    [ -n "$url" ] || return 0
    # Off loopback even reads need the host's REST token (from its state directory).
    python3 -c 'import json, sys, urllib.request
try:
    tok = open(sys.argv[2]).read().strip()
    req = urllib.request.Request(sys.argv[1] + "/connectors/ecommerce-analytics/status",
                                 headers={"Authorization": "Bearer " + tok})
    st = json.load(urllib.request.urlopen(req, timeout=5))
except Exception:
    sys.exit(0)
print(" ".join(str(p["partition"]) for t in st["tasks"] for p in t.get("partitions", [])))' "$url" "h$1/state/rest.token"
}
# split_ok HOST...: every partition owned by exactly one of the hosts, each of them owns some.
# SPLIT: what each host owned at that moment.
split_ok() {
    local h all="" o
    SPLIT=
    for h in "$@"; do
        o=$(owned "$h")
        [ -n "$o" ] || return 1
        all+=" $o"
        SPLIT+="${SPLIT:+ }H$h: [$o]"
    done
    [ "$(echo $all | tr ' ' '\n' | sort -n | tr '\n' ' ')" = "$(seq 0 $((PARTS - 1)) | tr '\n' ' ')" ]
}
wait_split() { # SECONDS HOST...
    local limit=$1 i; shift
    for i in $(seq 1 $((limit * 5))); do split_ok "$@" && return 0; sleep 0.2; done
    return 1
}
show_split() { local h; for h in "$@"; do echo -n "H$h: [$(owned "$h")] "; done; }

all_hosts=$(seq 1 "$HOSTS")
for h in $all_hosts; do start_host "$h"; done
gen_config '{"running":true}'
t0=$(now)
wait_split 90 $all_hosts || fail "the partitions were not split among the hosts within 90 s: $(show_split $all_hosts)"
ok "$HOSTS hosts share the $PARTS partitions, each owns some ($SPLIT; $(since "$t0") s after start)"

sleep 8
victim=2
rest=$(for h in $all_hosts; do [ "$h" != $victim ] && echo "$h"; done)
kill -KILL -- "-${HPID[$victim]}"
wait "${HPID[$victim]}" 2>/dev/null
HPID[$victim]=
echo "kill -9 of H$victim at $(elapsed) s ($(gen_stat generated) events generated)"
t0=$(now)
wait_split 60 $rest || fail "H$victim's partitions did not move to the others within 60 s: $(show_split $rest)"
MOVE_S=$(since "$t0")
ok "H$victim's partitions moved to the other hosts in $MOVE_S s ($SPLIT)"
sleep 3
start_host $victim
t0=$(now)
wait_split 60 $all_hosts || fail "H$victim got no partitions back within 60 s: $(show_split $all_hosts)"
REJOIN_S=$(since "$t0")
ok "H$victim rejoined and owns partitions again after $REJOIN_S s ($SPLIT)"

# ---- run to the end ----------------------------------------------------------------------------
deadline=$(($(date +%s) + 240))
while [ "$(gen_stat generated)" -lt "$EVENTS" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "generator too slow"
    kill -0 "$A_PID" 2>/dev/null || fail "the ingest pipeline died: $(tail -5 a.log)"
    sleep 1
done
gen_config '{"running":false}'
echo "generator stopped at $(gen_stat generated) events after $(elapsed) s"
# consumed GROUP: committed == end offsets, twice in a row, nothing buffered at the generator
consumed() {
    local i end committed last=
    for i in $(seq 1 600); do
        end=$(mk "end events_raw")
        committed=$(mk "committed $1 events_raw")
        if [ "$(gen_stat buffered)" -eq 0 ] && [ "${end#ok}" = "${committed#ok}" ] && [ "$end" = "$last" ]; then
            IN_KAFKA=$(echo "${end#ok}" | tr ' ' '\n' | awk -F= '{s += $2} END {print s}')
            return 0
        fi
        last=$end
        sleep 0.5
    done
    echo "end $end, committed $committed" >&2
    return 1
}
consumed scaleout || fail "the hosts did not consume everything within 300 s"
ok "every event in Kafka consumed by the group at $(elapsed) s ($IN_KAFKA events)"
for h in $all_hosts; do
    kill -TERM "${HPID[$h]}"
    wait "${HPID[$h]}"
    assert_eq "$?" 0 "H$h stops cleanly on SIGTERM"
    HPID[$h]=
done
kill -TERM "$A_PID"; wait "$A_PID"; A_PID=

# ---- checks ------------------------------------------------------------------------------------
scalings=$(cat h*/host.log | grep -c 'scaling from')
check_results "$IN_KAFKA"

# The autoscaler's cap: never more tasks than the partitions the host owned.
decisions=$(cat h*/host.log | sed -n 's/.*scaling from \([0-9]*\) to \([0-9]*\) tasks.*(lag [0-9]*, [0-9.]* records\/s per task, [0-9]* partitions, \([0-9-]*\) owned).*/\1 \2 \3/p')
assert_eq "$(echo -n "$decisions" | grep -c .)" "$scalings" "every scaling decision says how many partitions the host owned"
ups=$(echo -n "$decisions" | awk '$2 > $1' | grep -c .)
bad=$(echo -n "$decisions" | awk '$2 > $1 && $2 > $3')
assert_eq "$bad" "" "no host scaled up to more tasks than the partitions it owned ($ups of $scalings decisions were scale-ups)"

# ---- the same input on one host ----------------------------------------------------------------
kpis() { # FILE: every KPI row (without distinct_users, revision, final: per-piece sketch / timing)
    local w c cols="window_start, \"partition\""
    for c in $KPI_COLS; do cols+=", $c"; done
    : >"$1"
    for w in 1m 15m 1h 24h; do
        pgtmp_psql -c "COPY (SELECT '$w', $cols FROM kpi_$w ORDER BY 2, 3) TO STDOUT" >>"$1"
    done
}
kpis kpi-scaleout.txt
pgtmp_psql -c "COPY (SELECT event_id FROM events_clean ORDER BY 1) TO STDOUT" >clean-scaleout.txt
pgtmp_psql -c "TRUNCATE events_clean, events_rejected, kpi_1m, kpi_15m, kpi_1h, kpi_24h, sluice_offsets"
mkdir single
(cd single && SCALE_GROUP=single SLUICE_STATE_DIR=$T/single/state exec setsid "$SLUICE" run ../pl/ecommerce-analytics.yaml >out.log 2>host.log) &
SINGLE_PID=$!
t0=$(now)
consumed single || fail "the single host did not consume everything within 300 s"
echo "one host consumed the $IN_KAFKA events in $(since "$t0") s"
kill -TERM "$SINGLE_PID"; wait "$SINGLE_PID"; SINGLE_PID=
kpis kpi-single.txt
pgtmp_psql -c "COPY (SELECT event_id FROM events_clean ORDER BY 1) TO STDOUT" >clean-single.txt
assert_file_eq clean-single.txt clean-scaleout.txt "events_clean: the same events with one host as with $HOSTS"
assert_file_eq kpi-single.txt kpi-scaleout.txt "every KPI row: the same with one host as with $HOSTS ($(wc -l <kpi-single.txt) rows)"

echo "figures: $HOSTS hosts ($([ -n "$NETNS" ] && echo "own network namespaces" || echo loopback)), $PARTS partitions, assignor $ASSIGNOR; kill -9 of a host: partitions moved in $MOVE_S s; rejoin: partitions back in $REJOIN_S s; $scalings scaling decisions; $(elapsed) s in all"
echo "$CHECKS checks passed"
