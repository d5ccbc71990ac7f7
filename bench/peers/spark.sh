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
# Knobs: PEER_PARTITIONS (4), PEER_SEED (42), SPARK_SHUFFLE_PARTITIONS (2), SPARK_DRIVER_MEMORY
# (1g), PEER_KEEP (a directory for the logs).
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
echo "== medians of $ROUNDS alternating rounds, $EVENTS events ($WANT_CLEAN distinct valid; $PARTS partitions; 2-core machine shared with other work: noisy)"
for k in 2:"events/s from start" 3:"events/s 10-90 %" 4:"CPU-s per M events" 5:"peak RSS MiB"; do
    f=${k%%:*} name=${k#*:}
    s=$(awk -v f="$f" '$1 == "sluice" { print $f }' results.txt | median)
    c=$(awk -v f="$f" '$1 == "spark" { print $f }' results.txt | median)
    awk -v n="$name" -v s="$s" -v c="$c" 'BEGIN { printf "%-20s sluice %9.2f   Spark Structured Streaming %9.2f   sluice/peer %.2f\n", n, s, c, (c > 0 ? s / c : 0) }'
done
