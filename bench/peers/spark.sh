#!/bin/bash
# bench/peers/spark.sh [EVENTS] [ROUNDS] — the reference analytics (validate, dedup, 1-minute KPIs,
# PostgreSQL) by sluice (pipelines/ecommerce-analytics.yaml with `windows: [1m]`) against the
# seed's engine, a PySpark Structured Streaming job (bench/peers/spark_job.py, local[2]), on the
# same events in a real Kafka node and the same database, in alternating rounds. Per run: wall
# time from process start until every valid event is in events_clean and counted in kpi_1m
# (and the 10–90 % rate), CPU seconds of the process group per million events, peak RSS; then
# the results are checked as tests/e2e/check-results.sh does — events_clean = the distinct valid
# events, events_rejected = the invalid ones, every kpi_1m row = its recomputation in SQL from
# events_clean — so the figures compare correct answers. Figures only. See README.md here.
#
# Then the latency, Kafka append -> PostgreSQL commit, at LAT_RATE events/s for LAT_SECS s (each
# side on a topic of its own, consumer started and ready before the events arrive):
# pg_xact_commit_timestamp(xmin) of each events_clean row minus its Kafka message timestamp
# (track_commit_timestamp on; sluice gets bench/latency/kafka-ts.c to carry the timestamp into a
# column, as bench/e2e-pg.sh does), first and last 2 s of events left out.
#
# ROUNDS 0: only the latency phase. A 10-90 % rate of 0 means everything came in one micro-batch.
# Knobs: PEER_PARTITIONS (4), PEER_SEED (42), SPARK_SHUFFLE_PARTITIONS (2), SPARK_DRIVER_MEMORY
# (1g), LAT_RATE (5000), LAT_SECS (20; 0 skips the latency phase), LAT_WAIT (600: how long after
# the last event to wait for the rows), PEER_KEEP (a directory for the logs).
EVENTS=${1:-200000}
ROUNDS=${2:-3}
. "$(dirname "$0")/lib.sh"
SDIR=$(bash "$SRC/bench/peers/fetch.sh" spark) || die "fetch failed"
# sluice-gen's mix as in the crash test: 3 % invalid, 5 % duplicates, 5 % late by up to 60 s.
preload '{"invalid_pct":3,"duplicate_pct":5,"late_pct":5,"late_by":"60s"}'
WANT_REJ=$(grep -c '"class":"invalid"' gen.ndjson)
cp "$SRC/pipelines/ecommerce-event.schema.yaml" .

PY=$SDIR/venv/bin/python
PROGRESS="SELECT (SELECT count(*) FROM events_clean) + (SELECT coalesce(sum(events), 0) FROM kpi_1m)"
check() { # WHO: prints "ok" or what differs
    local c r k
    c=$(sql "SELECT count(*) FROM events_clean")
    r=$(sql "SELECT count(*) FROM events_rejected")
    # the distinct valid events of the generator's record, against events_clean's ids
    sql "COPY (SELECT event_id FROM events_clean) TO STDOUT" | sort >clean.txt
    python3 -c 'import json, sys
ids = sorted({json.loads(l)["event"]["event_id"] for l in open("gen.ndjson") if "\"class\":\"valid\"" in l})
print("\n".join(ids))' | sort >want.txt
    k=$(sql "WITH r AS (SELECT date_trunc('minute', ts) AS window_start, kafka_partition AS \"partition\",
                count(*) AS events, count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
                count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_cart,
                count(*) FILTER (WHERE event_type = 'purchase') AS orders,
                count(*) FILTER (WHERE event_type = 'payment_failed') AS payment_failed,
                count(*) FILTER (WHERE event_type = 'refund') AS refunds,
                coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS gmv,
                coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0) AS refund_amount
              FROM events_clean GROUP BY 1, 2)
            SELECT count(*) FILTER (WHERE k.window_start IS NULL OR r.window_start IS NULL
                OR ROW(k.events, k.page_views, k.add_to_cart, k.orders, k.payment_failed, k.refunds, k.gmv, k.refund_amount)
                   IS DISTINCT FROM ROW(r.events, r.page_views, r.add_to_cart, r.orders, r.payment_failed, r.refunds, r.gmv, r.refund_amount)),
                   count(*)
            FROM kpi_1m k FULL JOIN r ON k.window_start = r.window_start AND k.\"partition\" = r.\"partition\"")
    local out=
    cmp -s clean.txt want.txt || out+="events_clean: $(comm -23 want.txt clean.txt | wc -l) valid events missing, $(comm -13 want.txt clean.txt | wc -l) unexpected; "
    [ "$r" = "$WANT_REJ" ] || out+="events_rejected: $r, expected $WANT_REJ; "
    [ "${k%%|*}" = 0 ] || out+="kpi_1m: ${k%%|*} of ${k#*|} windows differ from SQL; "
    echo "${out:-ok: $c events, $r rejected, ${k#*|} kpi_1m windows all equal to SQL}"
}
: >results.txt
one_run() { # sluice|spark ROUND
    sql "TRUNCATE events_clean, events_rejected, kpi_1m, kpi_15m, kpi_1h, kpi_24h, sluice_offsets" >/dev/null
    local group=peer-$1-$2-$RANDOM t0 pid usage r verdict
    t0=$(now)
    if [ "$1" = sluice ]; then
        sed -e "s/group: ecommerce-analytics/group: $group/" \
            -e "s/windows: \[1m, 15m, 1h, 24h\]/windows: [1m]/" \
            "$SRC/pipelines/ecommerce-analytics.yaml" >analytics.yaml
        grep -q 'windows: \[1m\]' analytics.yaml || die "could not set windows: [1m] in the copy"
        run_bg "sluice-$2" "$SLUICE" run --no-rest analytics.yaml
    else
        rm -rf "$T/ckpt"
        run_bg "spark-$2" env PYSPARK_PYTHON="$PY" "$PY" "$SRC/bench/peers/spark_job.py" \
            "$KAFKA_BROKERS" events_raw "$PG_DSN" "$T/ckpt" "$SDIR/kafka"
    fi
    pid=$LAST_PID
    wait_rows "$PROGRESS" $((2 * WANT_CLEAN)) "$pid" 900 "samples-$1-$2.txt" ||
        die "$1 round $2: progress $(sql "$PROGRESS") of $((2 * WANT_CLEAN)); log: $(tail -5 "$1-$2.log")"
    usage=$(group_usage "$pid")
    sleep 2 # the dead letters are written by their own path; give them a moment before the check
    verdict=$(check)
    stop_bg "$pid"
    r=$(rates "samples-$1-$2.txt" $((2 * WANT_CLEAN)) "$t0")
    set -- "$1" "$2" $r $usage
    # progress counts each valid event twice (its row, its KPI count): events/s = input events
    # per second of that progress
    awk -v who="$1" -v rd="$2" -v all="$3" -v st="$4" -v cpu="$5" -v rss="$6" -v n="$EVENTS" -v w="$WANT_CLEAN" 'BEGIN {
        f = n / (2 * w); printf "%-7s round %s: %7.0f events/s from start, %7.0f events/s 10-90 %%, %6.2f CPU-s per M events, %5.0f MiB peak RSS\n", who, rd, all * f, st * f, cpu / n * 1e6, rss
        printf "%s %s %s %s %s\n", who, all * f, st * f, cpu / n * 1e6, rss >> "results.txt" }'
    echo "        check: $verdict"
}
for r in $(seq "$ROUNDS"); do
    one_run sluice "$r"
    one_run spark "$r"
done
[ "$ROUNDS" -gt 0 ] && echo "== medians of $ROUNDS alternating rounds, $EVENTS events ($WANT_CLEAN distinct valid; $PARTS partitions; 2-core machine shared with other work: noisy)"
for k in 2:"events/s from start" 3:"events/s 10-90 %" 4:"CPU-s per M events" 5:"peak RSS MiB"; do
    [ "$ROUNDS" -gt 0 ] || break
    f=${k%%:*} name=${k#*:}
    s=$(awk -v f="$f" '$1 == "sluice" { print $f }' results.txt | median)
    c=$(awk -v f="$f" '$1 == "spark" { print $f }' results.txt | median)
    awk -v n="$name" -v s="$s" -v c="$c" 'BEGIN { printf "%-20s sluice %9.2f   Spark Structured Streaming %9.2f   sluice/peer %.2f\n", n, s, c, (c > 0 ? s / c : 0) }'
done

# ---- latency ---------------------------------------------------------------------------------
LAT_RATE=${LAT_RATE:-5000}
LAT_SECS=${LAT_SECS:-20}
[ "$LAT_SECS" -gt 0 ] || exit 0
"$PGTMP_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGTMP_PORT" -U postgres -d postgres \
    -c "ALTER SYSTEM SET track_commit_timestamp = on" || die "cannot set track_commit_timestamp"
pgtmp_restart >/dev/null || die "cannot restart PostgreSQL"
sql "ALTER TABLE events_clean ADD COLUMN IF NOT EXISTS kafka_ts_ms bigint" >/dev/null
cc -O2 -shared -fPIC -I"$SRC/include" -o kafka-ts.so "$SRC/bench/latency/kafka-ts.c" ||
    die "cannot build bench/latency/kafka-ts.c"
lat_run() { # sluice|spark
    local topic=lat_$1 port ing pid
    sql "TRUNCATE events_clean, events_rejected, kpi_1m, sluice_offsets" >/dev/null
    bash "$SRC/scripts/kafka.sh" topic "$topic" --partitions "$PARTS" --dir "$KDIR" 2>>kafka.log ||
        die "cannot create $topic"
    if [ "$1" = sluice ]; then
        sed -e "s/group: ecommerce-analytics/group: lat-$RANDOM/" \
            -e "s/windows: \[1m, 15m, 1h, 24h\]/windows: [1m]/" -e "s/events_raw/$topic/g" \
            -e "s/^\( *\)kafka_offset: \$offset$/&\n\1kafka_ts_ms: _kafka_ts/" \
            -e "s|^  - {name: validate, use: validator|  - {name: stamp, use: $T/kafka-ts.so}\n&|" \
            "$SRC/pipelines/ecommerce-analytics.yaml" >analytics-lat.yaml
        grep -q 'kafka_ts_ms: _kafka_ts' analytics-lat.yaml && grep -q 'name: stamp' analytics-lat.yaml ||
            die "could not add the kafka-ts stage and column to the pipeline copy"
        run_bg lat-sluice "$SLUICE" run --no-rest analytics-lat.yaml
        pid=$LAST_PID
        for i in $(seq 1 600); do grep -q "assigned $topic" lat-sluice.log && break; sleep 0.1; done
    else
        rm -rf "$T/ckpt-lat"
        run_bg lat-spark env PYSPARK_PYTHON="$PY" SPARK_KAFKA_TS=1 "$PY" "$SRC/bench/peers/spark_job.py" \
            "$KAFKA_BROKERS" "$topic" "$PG_DSN" "$T/ckpt-lat" "$SDIR/kafka"
        pid=$LAST_PID
        for i in $(seq 1 1800); do grep -q "peer-spark: started" lat-spark.log && break; sleep 0.1; done
        sleep 15 # its first (empty) micro-batches
    fi
    kill -0 "$pid" 2>/dev/null || die "$1 did not start: $(tail -5 "lat-$1.log")"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    sed -e "s/127.0.0.1:[0-9]*/127.0.0.1:$port/" -e "s/topic: events_raw/topic: $topic/g" ingest.yaml >ingest-lat.yaml
    run_bg "lat-ingest-$1" "$SLUICE" run --no-rest ingest-lat.yaml
    ing=$LAST_PID
    for i in $(seq 1 300); do grep -q 'msg="listening' "lat-ingest-$1.log" && break; sleep 0.1; done
    "$GEN" --push "http://127.0.0.1:$port/events" --rate "$LAT_RATE" --count $((LAT_RATE * LAT_SECS)) \
        --seed $((SEED + 1)) --config '{"invalid_pct":3,"duplicate_pct":5,"late_pct":5,"late_by":"60s"}' \
        --record "lat-$1.ndjson" >"lat-push-$1.log" 2>&1 || die "push failed: $(tail -3 "lat-push-$1.log")"
    local want n=0
    want=$(grep -c '"class":"valid"' "lat-$1.ndjson")
    for i in $(seq 1 $((${LAT_WAIT:-600} * 5))); do
        n=$(sql "SELECT count(*) FROM events_clean"); [ "$n" -ge "$want" ] && break; sleep 0.2
    done
    stop_bg "$ing"
    stop_bg "$pid"
    sql "COPY (SELECT kafka_ts_ms / 1000.0, extract(epoch FROM pg_xact_commit_timestamp(xmin))
               FROM events_clean WHERE kafka_ts_ms IS NOT NULL) TO STDOUT" >"lat-$1.txt"
    python3 - "lat-$1.txt" "$1" "$n" "$want" <<'PYL'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if "\\N" not in l]
if not rows:
    print(f"latency {sys.argv[2]}: no event written within LAT_WAIT s after the last was produced"); sys.exit(0)
t0, t1 = min(r[0] for r in rows), max(r[0] for r in rows)
d = sorted((r[1] - r[0]) * 1000 for r in rows if t0 + 2 <= r[0] <= t1 - 2)
pct = lambda q: d[min(len(d) - 1, int(q * len(d)))]
print(f"latency {sys.argv[2]:7s} Kafka append -> COMMIT over {len(d)} events ({sys.argv[3]} of {sys.argv[4]} valid "
      f"written): p50 {pct(.5):.0f} ms, p90 {pct(.9):.0f} ms, p99 {pct(.99):.0f} ms, max {d[-1]:.0f} ms")
PYL
}
echo "== latency at $LAT_RATE events/s for $LAT_SECS s"
lat_run sluice
lat_run spark
