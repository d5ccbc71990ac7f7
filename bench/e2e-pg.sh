#!/bin/bash
# End-to-end benchmark of the reference application (SPEC §11, issue 5). Figures only: it never
# fails on time. Loopback only; everything it starts is stopped and its temp dirs removed.
#
#   SLUICE_BUILD_DIR=$PWD/build-bench bench/e2e-pg.sh [EVENTS]        # default 1,000,000
#
# 1. Throughput: kafka-source -> validator -> dedup -> window-kpi -> pg-sink.
#    A throwaway PostgreSQL 15 (tests/lib/pgtmp.sh, fsync ON) and the stand-alone broker
#    (tests/kafka/mock-kafka, E2E_PARTITIONS partitions of events_raw, enough that its retention
#    of ~5 MiB per partition drops nothing). EVENTS sluice-gen events
#    (its default config: 2 % invalid, 2 % duplicates, 5 % late by up to 60 s) are pre-loaded by
#    `sluice-gen --push --rate 0 --record` into http-source (listen) -> kafka-sink (keyed by
#    user_id, like pipelines/ecommerce-ingest.yaml). Then, for each value of E2E_TASKS, the
#    database is emptied and pipelines/ecommerce-analytics.yaml (a copy with `tasks: N` and its
#    own consumer group, nothing else changed) consumes the whole topic. The clock runs from the
#    first partition assignment (kafka-source's log line) until the group's committed offsets
#    equal the end offsets (polled every 0.25 s; commit_interval is 1 s, so up to ~1 s of slack
#    is in the figure); the "10-90 %" rate is taken between the samples where the committed
#    offsets passed 10 % and 90 % of the events (steady state, no start-up and no final commit).
#    Afterwards events_clean must hold exactly the distinct valid events of the record file and
#    events_rejected the invalid ones (this also proves the broker's retention dropped nothing).
# 2. Latency, Kafka append -> PostgreSQL commit, at LAT_RATE (20,000) events/s for LAT_SECS (30)
#    s: fresh broker, emptied database, `track_commit_timestamp = on`, and a bench-only copy of
#    the analytics pipeline that also maps `kafka_ts: $timestamp` (an extra column of
#    events_clean). kafka-source gives each record the Kafka message timestamp (CreateTime here:
#    kafka-sink sets it from the record's timestamp, which http-source sets to the time it
#    received the event, i.e. slightly BEFORE the broker appended it -- the measured latency is
#    an upper bound that includes kafka-sink's batching and produce round trip). Per event:
#      commit  = pg_xact_commit_timestamp(xmin) - kafka_ts   (the inserting transaction's COMMIT)
#      txstart = ingested_at (DEFAULT now(), the transaction START) - kafka_ts
#    Ingest modes (LAT_INGEST, default "push poll push+fw push+fw+fi"):
#      push: sluice-gen --push --rate LAT_RATE -> http-source listen -> kafka-sink (batches of
#            rate/20 = 1,000 events, 20 requests/s);
#      poll: pipelines/ecommerce-ingest.yaml unchanged (GET /gen/events?max=10000 every 500 ms)
#            with sluice-gen serving at LAT_RATE: Kafka sees a burst of ~10,000 events every 0.5 s.
#      push+fw, poll+fw: the same with `fetch.wait.max.ms: "10"` added to kafka-source's rdkafka
#            map (librdkafka's default is 500 ms; see bench/README.md for why it matters here).
#      ...+fi: the store stage (pg-sink) gets `flush_interval: 25ms` (default 200ms); flags
#            combine, e.g. push+fw+fi.
#    The first and last 2 s of events are left out (start-up, drain).
#
# Knobs: E2E_TASKS ("1 2"), E2E_PARTITIONS (max(16, EVENTS / 40,000)), LAT_RATE (20000), LAT_SECS (30),
#        LAT_INGEST ("push poll push+fw push+fw+fi"), E2E_SKIP ("throughput" and/or "latency"), E2E_SEED (42).
set -u
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=$B/host/sluice
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
for f in "$SLUICE" "$MOCK" "$GEN"; do
    [ -x "$f" ] || { echo "e2e-pg: $f not built (meson setup with tests on; ninja)" >&2; exit 1; }
done
export SLUICE_PLUGIN_PATH=$B/plugins PGTZ=UTC
EVENTS=${1:-1000000}
TASKS_LIST=${E2E_TASKS:-1 2}
# The mock broker keeps only the newest ~5 MiB per partition: ~57,000 of these events (lz4,
# ~90 bytes each); older ones are silently dropped. Default: at most 40,000 events per partition.
PARTS=${E2E_PARTITIONS:-$(((EVENTS + 39999) / 40000))}
[ "$PARTS" -lt 16 ] && PARTS=16
LAT_RATE=${LAT_RATE:-20000}
LAT_SECS=${LAT_SECS:-30}
LAT_INGEST=${LAT_INGEST:-push poll push+fw push+fw+fi}
SKIP=${E2E_SKIP:-}
SEED=${E2E_SEED:-42}
P=$SRC/pipelines

. "$SRC/tests/lib/pgtmp.sh"
T=$(mktemp -d /tmp/sluice-e2ebench.XXXXXX)
PIDS=()     # process groups (setsid) of what we started
MOCK_PID=
bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
    if [ -n "$MOCK_PID" ]; then kill -TERM "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; fi
    if [ -n "${E2E_KEEP:-}" ]; then mkdir -p "$E2E_KEEP" && cp "$T"/*.log "$T"/*.yaml "$E2E_KEEP"/ 2>/dev/null; fi
    rm -rf "$T"
}
PGTMP_ON_EXIT=bench_cleanup
die() { echo "e2e-pg: $*" >&2; exit 1; }
now() { date +%s.%N; }
cd "$T" || exit 1

PGTMP_FSYNC=on pgtmp_start >pgtmp.log 2>&1 || { cat pgtmp.log >&2; die "cannot start PostgreSQL"; }
echo "PostgreSQL 15 on port $PGTMP_PORT (fsync on); broker: mock-kafka, $PARTS partitions; $(nproc) cores"

# ---- helpers ---------------------------------------------------------------------------------
start_mock() {
    [ -n "$MOCK_PID" ] && stop_mock
    coproc MK { exec "$MOCK" -p "$PARTS" events_raw 2>>"$T/mock-kafka.log"; }
    MOCK_PID=$MK_PID
    read -r -t 30 -u "${MK[0]}" KAFKA_BROKERS || die "mock-kafka did not start"
    export KAFKA_BROKERS
}
stop_mock() {
    echo quit >&"${MK[1]}"
    wait "$MOCK_PID" 2>/dev/null
    MOCK_PID=
}
mk() { # COMMAND -> the answer without "ok"
    echo "$1" >&"${MK[1]}"
    local line
    read -r -t 30 -u "${MK[0]}" line || die "mock-kafka did not answer '$1'"
    [ "${line%% *}" = ok ] || die "mock-kafka '$1': $line"
    echo "${line#ok}"
}
# (mk must not run in a pipeline: a pipeline's subshell does not get the coprocess's fds)
osum() { tr ' ' '\n' | awk -F= 'NF == 2 && $2 > 0 {s += $2} END {print s + 0}'; }
sql() { pgtmp_psql -c "$1"; }
empty_db() {
    sql "TRUNCATE events_clean, events_rejected, kpi_1m, kpi_15m, kpi_1h, kpi_24h, sluice_offsets" ||
        die "cannot empty the database"
}
# run_bg NAME CMD... : in its own process group, stdout+stderr to NAME.log; sets LAST_PID
run_bg() {
    local name=$1
    shift
    setsid "$@" >"$T/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop_bg() { # PID: SIGTERM, wait up to 60 s, then SIGKILL
    local i
    kill -TERM "$1" 2>/dev/null
    for i in $(seq 1 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
assigned_at() { # LOG: epoch seconds of kafka-source's first "assigned" line, or nothing
    grep -m1 'stage=source.*assigned events_raw' "$1" | sed -n 's/^ts=\([^ ]*\)Z.*/\1/p' |
        { read -r t && date -u -d "$t" +%s.%N; }
}
ingest_listen_yaml() { # PORT -> ingest-listen.yaml (ecommerce-ingest with http-source in listen mode)
    cat >ingest-listen.yaml <<EOF
pipeline: bench-ingest
batch_size: 10000
stages:
  - {name: in, use: http-source, with: {mode: listen, address: "127.0.0.1:$1", path: /events, queue_size: 200000, topic: events_raw}}
  - {name: produce, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: events_raw, key: user_id}}
EOF
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_log() { # FILE PATTERN SECONDS
    local i
    for i in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

# ---- 1. throughput ---------------------------------------------------------------------------
if [[ " $SKIP " != *" throughput "* ]]; then
    start_mock
    port=$(free_port)
    ingest_listen_yaml "$port"
    run_bg ingest "$SLUICE" run --no-rest ingest-listen.yaml
    ING=$LAST_PID
    wait_log ingest.log 'stage=in msg="listening' 30 || die "ingest did not start: $(tail -3 ingest.log)"
    echo "pre-loading $EVENTS events (sluice-gen --push --rate 0 --seed $SEED --record) ..."
    t0=$(now)
    "$GEN" --push "http://127.0.0.1:$port/events" --rate 0 --count "$EVENTS" --seed "$SEED" \
        --batch 5000 --record gen.ndjson >push.log 2>&1 || die "push failed: $(tail -3 push.log)"
    for i in $(seq 1 1200); do
        inkafka=$(mk "end events_raw")
        inkafka=$(echo "$inkafka" | osum)
        [ "$inkafka" -ge "$EVENTS" ] && break
        sleep 0.1
    done
    t1=$(now)
    stop_bg "$ING"
    echo "  $(grep "^sent" push.log); in Kafka: $inkafka after $(echo "$t1 - $t0" | bc) s"
    [ "$inkafka" -eq "$EVENTS" ] || die "expected $EVENTS events in Kafka, got $inkafka"
    want_clean=$(grep -c '"class":"valid"' gen.ndjson)
    want_rej=$(grep -c '"class":"invalid"' gen.ndjson)
    echo "  record: $want_clean valid, $want_rej invalid, $(grep -c '"class":"duplicate"' gen.ndjson) duplicates"
    ends=$(mk "end events_raw")
    echo "  end offsets:$ends"
    for tasks in $TASKS_LIST; do
        empty_db
        group=bench-e2e-$tasks-$RANDOM
        sed -e "s/^pipeline: ecommerce-analytics$/pipeline: ecommerce-analytics\ntasks: $tasks/" \
            -e "s/group: ecommerce-analytics/group: $group/" "$P/ecommerce-analytics.yaml" >analytics-$tasks.yaml
        cp "$P/ecommerce-event.schema.yaml" .
        grep -q "^tasks: $tasks" analytics-$tasks.yaml || die "could not set tasks in the pipeline copy"
        ts0=$(now)
        run_bg analytics-$tasks "$SLUICE" run --no-rest analytics-$tasks.yaml
        AN=$LAST_PID
        : >samples-$tasks.txt
        done_at=
        deadline=$(($(date +%s) + 600))
        while [ "$(date +%s)" -lt "$deadline" ]; do
            kill -0 "$AN" 2>/dev/null || die "analytics died: $(tail -5 analytics-$tasks.log)"
            c=$(mk "committed $group events_raw")
            n=$(echo "$c" | osum)
            echo "$(now) $n" >>samples-$tasks.txt
            if [ "$c" = "$ends" ]; then done_at=$(now); break; fi
            sleep 0.25
        done
        [ -n "$done_at" ] || die "tasks $tasks: not consumed within 600 s (committed $n of $EVENTS)"
        asg=$(assigned_at analytics-$tasks.log)
        stop_bg "$AN"
        got_clean=$(sql "SELECT count(*) FROM events_clean")
        got_rej=$(sql "SELECT count(*) FROM events_rejected")
        kpi=$(sql "SELECT (SELECT count(*) FROM kpi_1m) || ' kpi_1m rows, ' || (SELECT sum(events) FROM kpi_1m) || ' events in kpi_1m'")
        python3 - "$asg" "$ts0" "$done_at" "$EVENTS" "$tasks" samples-$tasks.txt <<'PY'
import sys
asg, ts0, done, n, tasks, path = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
s = [tuple(map(float, l.split())) for l in open(path)]
def first(frac):
    return next(t for t, c in s if c >= frac * n)
t10, t90 = first(0.1), first(0.9)
t90 = max(t90, t10 + 1e-3)
print(f"  tasks {tasks}: {n} events in {done - asg:.2f} s from assignment = {n / (done - asg):,.0f} events/s "
      f"(10-90 %: {0.8 * n / (t90 - t10):,.0f} events/s; {done - ts0:.2f} s from `sluice run`, "
      f"assignment after {asg - ts0:.2f} s)")
PY
        echo "    events_clean $got_clean (want $want_clean), events_rejected $got_rej (want $want_rej); $kpi"
        [ "$got_clean" = "$want_clean" ] && [ "$got_rej" = "$want_rej" ] ||
            echo "    MISMATCH: the counts differ from the record (broker retention or a bug)"
    done
    stop_mock
    rm -f gen.ndjson
fi

# ---- 2. latency ------------------------------------------------------------------------------
if [[ " $SKIP " != *" latency "* ]]; then
    "$PGTMP_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGTMP_PORT" -U postgres -d postgres \
        -c "ALTER SYSTEM SET track_commit_timestamp = on" || die "cannot set track_commit_timestamp"
    pgtmp_restart || die "cannot restart PostgreSQL"
    sql "ALTER TABLE events_clean ADD COLUMN IF NOT EXISTS kafka_ts_ms bigint"
    cc -O2 -shared -fPIC -I"$SRC/include" -o kafka-ts.so "$SRC/bench/latency/kafka-ts.c" ||
        die "cannot build bench/latency/kafka-ts.c"
    cp "$P/ecommerce-event.schema.yaml" .
    count=$((LAT_RATE * LAT_SECS))
    for variant in $LAT_INGEST; do
        mode=${variant%%+*}
        fw= fi=
        [[ $variant == *+fw* ]] && fw=', fetch.wait.max.ms: "10"'
        [[ $variant == *+fi* ]] && fi=25ms
        fi_sed=
        [ -n "$fi" ] && fi_sed='s/^      dsn: "${PG_DSN}"$/&\n      flush_interval: '$fi/
        empty_db
        start_mock
        group=bench-lat-$mode-$RANDOM
        sed -e "s/group: ecommerce-analytics/group: $group/" \
            -e "s/^\( *\)kafka_offset: \$offset$/&\n\1kafka_ts_ms: _kafka_ts/" \
            -e "s|^  - {name: validate, use: validator|  - {name: stamp, use: $T/kafka-ts.so}\n&|" \
            -e "s/session.timeout.ms: \"6000\"/&$fw/" \
            -e "$fi_sed" \
            "$P/ecommerce-analytics.yaml" >analytics-lat.yaml
        grep -q 'kafka_ts_ms: _kafka_ts' analytics-lat.yaml && grep -q 'name: stamp' analytics-lat.yaml ||
            die "could not add the kafka-ts stage and column to the pipeline copy"
        run_bg analytics-lat-$mode "$SLUICE" run --no-rest analytics-lat.yaml
        AN=$LAST_PID
        wait_log analytics-lat-$mode.log 'assigned events_raw' 60 || die "analytics got no partitions"
        if [ "$mode" = push ]; then
            port=$(free_port)
            ingest_listen_yaml "$port"
            run_bg ingest-$mode "$SLUICE" run --no-rest ingest-listen.yaml
            ING=$LAST_PID
            wait_log ingest-$mode.log 'stage=in msg="listening' 30 || die "ingest did not start: $(tail -3 ingest-$mode.log)"
            "$GEN" --push "http://127.0.0.1:$port/events" --rate "$LAT_RATE" --count "$count" \
                --seed "$SEED" >push-lat.log 2>&1 || die "push failed: $(tail -3 push-lat.log)"
            genline=$(grep "^sent" push-lat.log)
        else
            run_bg gen-$mode "$GEN" --listen 127.0.0.1:0 --seed "$SEED" --rate "$LAT_RATE" --stopped
            GP=$LAST_PID
            wait_log gen-$mode.log 'listening on http://' 30 || die "sluice-gen did not start"
            export GEN_URL=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' gen-$mode.log | head -1)
            run_bg ingest-$mode "$SLUICE" run --no-rest "$P/ecommerce-ingest.yaml"
            ING=$LAST_PID
            sleep 1
            curl -s -X PUT "$GEN_URL/gen/config" -d '{"running":true}' >/dev/null
            sleep "$LAT_SECS"
            curl -s -X PUT "$GEN_URL/gen/config" -d '{"running":false}' >/dev/null
            sleep 1
            genline="sluice-gen stats: $(curl -s "$GEN_URL/gen/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("generated %d, dropped %d, polled %d, uptime %.1f s" % (d["generated"], d["dropped"], d["polled"], d["uptime_s"]))')"
        fi
        # wait until the ingest pipeline has produced everything (end offsets stable for 1 s)
        ends=
        for i in $(seq 1 60); do
            e=$(mk "end events_raw")
            [ "$e" = "$ends" ] && break
            ends=$e
            sleep 1
        done
        for i in $(seq 1 300); do
            [ "$(mk "committed $group events_raw")" = "$ends" ] && break
            sleep 0.2
        done
        stop_bg "$ING"
        stop_bg "$AN"
        [ "$mode" = poll ] && stop_bg "$GP"
        stop_mock
        echo "latency ($mode ingest${fw:+, fetch.wait.max.ms 10}${fi:+, pg-sink flush_interval $fi}, $LAT_RATE events/s for ${LAT_SECS} s): $genline; in Kafka $(echo "$ends" | osum)"
        sql "COPY (SELECT kafka_ts_ms / 1000.0, extract(epoch FROM ingested_at),
                          extract(epoch FROM pg_xact_commit_timestamp(xmin))
                   FROM events_clean) TO STDOUT" >lat.txt
        python3 - lat.txt <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if "\\N" not in l]
if not rows:
    print("  no rows with kafka_ts_ms"); sys.exit(0)
t0, t1 = min(r[0] for r in rows), max(r[0] for r in rows)
sel = [r for r in rows if t0 + 2 <= r[0] <= t1 - 2]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
for name, i in (("commit ", 2), ("txstart", 1)):
    d = [(r[i] - r[0]) * 1000 for r in sel]
    print(f"  {name} - kafka_ts over {len(d)} events (of {len(rows)}; {t1 - t0:.1f} s of events): "
          f"p50 {pct(d, .5):.1f} ms, p90 {pct(d, .9):.1f} ms, p99 {pct(d, .99):.1f} ms, "
          f"p99.9 {pct(d, .999):.1f} ms, max {max(d):.1f} ms")
txs = len({r[2] for r in rows})
print(f"  {txs} transactions, {len(rows) / max(txs, 1):.0f} events each on average")
PY
    done
fi
