# bench/peers/lib.sh — sourced by the peer benchmarks: a throwaway PostgreSQL 15 (fsync on), a
# real Apache Kafka node (scripts/kafka.sh), the same sluice-gen events pre-loaded into
# events_raw, and measuring a process group (wall time, CPU seconds, peak RSS).
# Everything started here is stopped by PID / process group on exit.
set -u
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=$B/host/sluice
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-$B/plugins}
PARTS=${PEER_PARTITIONS:-4}
SEED=${PEER_SEED:-42}
. "$SRC/tests/lib/pgtmp.sh"
T=$(mktemp -d /tmp/sluice-peers.XXXXXX)
PIDS=() MOCK_PID= KDIR=
peers_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
    if [ -n "$MOCK_PID" ]; then kill -TERM "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; fi
    [ -n "$KDIR" ] && bash "$SRC/scripts/kafka.sh" stop --dir "$KDIR" >/dev/null 2>&1
    if [ -n "${PEER_KEEP:-}" ]; then mkdir -p "$PEER_KEEP" && cp "$T"/*.log "$T"/*.yaml "$T"/*.properties "$T"/*.py "$PEER_KEEP"/ 2>/dev/null; fi
    rm -rf "$T"
}
PGTMP_ON_EXIT=peers_cleanup
die() { echo "peers: $*" >&2; exit 1; }
now() { date +%s.%N; }
sql() { pgtmp_psql -c "$1"; }
for f in "$SLUICE" "$MOCK" "$GEN"; do [ -x "$f" ] || die "$f not built"; done
cd "$T" || exit 1

PGTMP_FSYNC=on pgtmp_start >pgtmp.log 2>&1 || { cat pgtmp.log >&2; die "cannot start PostgreSQL"; }
KDIR=$T/kafka
KAFKA_BROKERS=$(bash "$SRC/scripts/kafka.sh" start --dir "$KDIR" 2>kafka.log | sed -n 's/^KAFKA_BROKERS=//p')
[ -n "$KAFKA_BROKERS" ] || die "scripts/kafka.sh start failed: $(tail -5 kafka.log)"
export KAFKA_BROKERS
bash "$SRC/scripts/kafka.sh" topic events_raw --partitions "$PARTS" --dir "$KDIR" 2>>kafka.log ||
    die "cannot create events_raw"
coproc MK { exec "$MOCK" -B "$KAFKA_BROKERS" 2>>"$T/mock-kafka.log"; }
MOCK_PID=$MK_PID
mk() { # COMMAND -> mock-kafka's answer without "ok" (offset queries against the real cluster)
    echo "$1" >&"${MK[1]}"
    local line
    read -r -t 30 -u "${MK[0]}" line || die "mock-kafka did not answer '$1'"
    [ "${line%% *}" = ok ] || die "mock-kafka '$1': $line"
    echo "${line#ok}"
}
osum() { tr ' ' '\n' | awk -F= 'NF == 2 && $2 > 0 {s += $2} END {print s + 0}'; }
echo "PostgreSQL 15 (fsync on) port $PGTMP_PORT; Apache Kafka at $KAFKA_BROKERS, events_raw: $PARTS partitions; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# run_bg NAME CMD... : own process group (setsid), output to NAME.log; sets LAST_PID
run_bg() {
    local name=$1
    shift
    setsid "$@" >"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop_bg() { # PID: SIGTERM the group, wait up to 30 s, then SIGKILL
    local i
    kill -TERM -- "-$1" 2>/dev/null
    for i in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
# group_usage SID -> "CPU_SECONDS PEAK_RSS_MIB": user+system CPU of every live process of the
# session (with what their waited-for children used) and the sum of their peak RSS (VmHWM).
group_usage() {
    python3 - "$1" <<'PY'
import os, sys
sid, hz, cpu, rss = int(sys.argv[1]), os.sysconf("SC_CLK_TCK"), 0, 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        st = open(f"/proc/{p}/stat").read()
        f = st[st.rindex(")") + 2:].split()
        if int(f[3]) != sid:  # session id
            continue
        cpu += sum(int(x) for x in f[11:15])
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmHWM:"):
                rss += int(line.split()[1])
    except (OSError, ValueError):
        pass
print(f"{cpu / hz:.2f} {rss / 1024:.0f}")
PY
}

# preload CONFIG_JSON: EVENTS sluice-gen events (seeded) into events_raw through sluice
# (http-source listen -> kafka-sink keyed by user_id, as pipelines/ecommerce-ingest.yaml), with
# the generator's record in gen.ndjson. Waits until all are in Kafka.
preload() {
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >ingest.yaml <<EOF
pipeline: peers-ingest
batch_size: 10000
stages:
  - {name: in, use: http-source, with: {mode: listen, address: "127.0.0.1:$port", path: /events, queue_size: 200000, topic: events_raw}}
  - {name: produce, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: events_raw, key: user_id}}
EOF
    run_bg ingest "$SLUICE" run --no-rest ingest.yaml
    local ing=$LAST_PID i
    for i in $(seq 1 300); do grep -q 'msg="listening' ingest.log 2>/dev/null && break; sleep 0.1; done
    "$GEN" --push "http://127.0.0.1:$port/events" --rate 0 --count "$EVENTS" --seed "$SEED" \
        --batch 5000 --config "$1" --record gen.ndjson >push.log 2>&1 || die "push failed: $(tail -3 push.log)"
    local inkafka=0
    for i in $(seq 1 1200); do
        inkafka=$(mk "end events_raw") # (not in a pipeline: its subshell lacks the coprocess fds)
        inkafka=$(echo "$inkafka" | osum)
        [ "$inkafka" -ge "$EVENTS" ] && break
        sleep 0.1
    done
    stop_bg "$ing"
    [ "$inkafka" -eq "$EVENTS" ] || die "expected $EVENTS events in Kafka, got $inkafka"
    ENDS=$(mk "end events_raw")
    WANT_CLEAN=$(grep -c '"class":"valid"' gen.ndjson)
    echo "pre-loaded $EVENTS events ($WANT_CLEAN distinct valid; config $1); end offsets:$ENDS"
}

# wait_rows SQL_COUNT WANT PID SECONDS SAMPLES: polls (every 0.2 s) until the count reaches WANT;
# the process must stay alive. Appends "epoch-s count" lines to SAMPLES.
wait_rows() {
    local deadline=$(($(date +%s) + $4)) n=0
    : >"$5"
    while [ "$(date +%s)" -lt "$deadline" ]; do
        kill -0 "$3" 2>/dev/null || return 1
        n=$(sql "$1")
        echo "$(now) $n" >>"$5"
        [ "$n" -ge "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
# rates SAMPLES WANT T0 -> "overall_rate steady_rate": WANT / (time of the last sample - T0),
# and the rate between the samples where the count passed 10 % and 90 % of WANT
rates() {
    awk -v want="$2" -v t0="$3" '{ t[NR] = $1; n[NR] = $2 }
        END { for (i = 1; i <= NR; i++) { if (!a && n[i] >= 0.1 * want) a = i; if (!b && n[i] >= 0.9 * want) b = i }
              s = (b > a) ? (n[b] - n[a]) / (t[b] - t[a]) : 0
              printf "%.0f %.0f\n", want / (t[NR] - t0), s }' "$1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
