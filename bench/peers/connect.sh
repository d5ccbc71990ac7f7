#!/bin/bash
# bench/peers/connect.sh [EVENTS] [ROUNDS] — Kafka → PostgreSQL events_clean: sluice
# (kafka-source → pg-sink) against Apache Kafka Connect (standalone worker, one task) with
# Debezium's JDBC sink connector, on the same topic of a real Kafka node and the same database,
# in alternating rounds. Per run: wall time from process start until all rows are in
# events_clean (and the 10–90 % rate), CPU seconds of the process group per million rows,
# peak RSS. Prints every run, medians and ratios. Figures only. See bench/peers/README.md.
#
# Knobs: PEER_PARTITIONS (4), PEER_SEED (42), CONNECT_HEAP (-Xms256m -Xmx2g: the Kafka
# distribution's default for connect-standalone), PEER_KEEP (a directory for the logs).
EVENTS=${1:-200000}
ROUNDS=${2:-3}
. "$(dirname "$0")/lib.sh"
CDIR=$(bash "$SRC/bench/peers/fetch.sh" connect) || die "fetch failed"
command -v java >/dev/null || die "java is missing (scripts/deps.sh installs default-jre-headless)"
# Every event valid (no validator on either side: both only sink); 2 % duplicates.
preload '{"invalid_pct":0,"duplicate_pct":2,"late_pct":0}'

cols="event_id event_type user_id session_id product_id quantity amount currency payment_method ts"
sluice_yaml() { # GROUP
    cat <<EOF
pipeline: peer-sink
batch_size: 5000
stages:
  - name: source
    use: kafka-source
    with: {brokers: "\${KAFKA_BROKERS}", topics: [events_raw], group: $1, start: earliest}
  - name: store
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables:
        events_raw:
          table: events_clean
          conflict: [event_id]
          on_conflict: ignore
          columns: {$(for c in $cols; do printf '%s: %s, ' "$c" "$c"; done)kafka_partition: \$partition, kafka_offset: \$offset, kafka_topic: \$topic}
EOF
}
# The events are plain JSON without a schema envelope; the JDBC sink needs a schema, so
# JsonConverter is given it once (schema.content, Kafka >= 4.2) instead of in every message.
SCHEMA='{"type":"struct","fields":[{"field":"event_id","type":"string","optional":false},{"field":"event_type","type":"string","optional":false},{"field":"user_id","type":"string","optional":false},{"field":"session_id","type":"string","optional":true},{"field":"product_id","type":"string","optional":true},{"field":"quantity","type":"int32","optional":true},{"field":"amount","type":"double","optional":true},{"field":"currency","type":"string","optional":true},{"field":"payment_method","type":"string","optional":true},{"field":"ts","type":"string","optional":false}]}'
connect_props() { # GROUP PORT
    cat >worker.properties <<EOF
bootstrap.servers=$KAFKA_BROKERS
group.id=$1
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
value.converter.schema.content=$SCHEMA
offset.storage.file.filename=$T/connect.offsets
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$2
consumer.max.poll.records=5000
consumer.auto.offset.reset=earliest
EOF
    cat >connector.properties <<EOF
name=$1
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=1
topics=events_raw
connection.url=jdbc:postgresql://127.0.0.1:$PGTMP_PORT/realtime?stringtype=unspecified&reWriteBatchedInserts=true
connection.username=app
connection.password=
insert.mode=upsert
primary.key.mode=record_value
primary.key.fields=event_id
schema.evolution=none
collection.name.format=events_clean
batch.size=5000
# reWriteBatchedInserts turns a batch into one multi-row INSERT … ON CONFLICT, which refuses a key
# twice: the reduction buffer keeps the last record per key of a batch.
use.reduction.buffer=true
transforms=pos
transforms.pos.type=org.apache.kafka.connect.transforms.InsertField\$Value
transforms.pos.partition.field=kafka_partition
transforms.pos.offset.field=kafka_offset
transforms.pos.topic.field=kafka_topic
EOF
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
COUNT="SELECT count(*) FROM events_clean"
: >results.txt
one_run() { # sluice|connect ROUND
    sql "TRUNCATE events_clean, sluice_offsets" >/dev/null
    rm -f "$T/connect.offsets"
    local group=peer-$1-$2-$RANDOM t0 pid usage r
    t0=$(now)
    if [ "$1" = sluice ]; then
        sluice_yaml "$group" >sluice.yaml
        run_bg "sluice-$2" "$SLUICE" run --no-rest sluice.yaml
    else
        connect_props "$group" "$(free_port)"
        run_bg "connect-$2" java ${CONNECT_HEAP:--Xms256m -Xmx2g} -cp "$CDIR/libs/*" \
            org.apache.kafka.connect.cli.ConnectStandalone worker.properties connector.properties
    fi
    pid=$LAST_PID
    wait_rows "$COUNT" "$WANT_CLEAN" "$pid" 900 "samples-$1-$2.txt" ||
        die "$1 round $2: $(sql "$COUNT") of $WANT_CLEAN rows; log: $(tail -5 "$1-$2.log")"
    usage=$(group_usage "$pid")
    stop_bg "$pid"
    r=$(rates "samples-$1-$2.txt" "$WANT_CLEAN" "$t0")
    local bad
    bad=$(sql "SELECT count(*) FROM events_clean WHERE kafka_offset IS NULL OR ts IS NULL")
    [ "$bad" = 0 ] || die "$1: $bad rows without position or ts"
    set -- "$1" "$2" $r $usage
    awk -v who="$1" -v rd="$2" -v all="$3" -v st="$4" -v cpu="$5" -v rss="$6" -v n="$WANT_CLEAN" 'BEGIN {
        printf "%-8s round %s: %7.0f rows/s from start, %7.0f rows/s 10-90 %%, %6.2f CPU-s per M rows, %5.0f MiB peak RSS\n", who, rd, all, st, cpu / n * 1e6, rss
        printf "%s %s %s %s %s\n", who, all, st, cpu / n * 1e6, rss >> "results.txt" }'
}
for r in $(seq "$ROUNDS"); do
    one_run sluice "$r"
    one_run connect "$r"
done
echo "== medians of $ROUNDS alternating rounds, $WANT_CLEAN rows ($EVENTS events, $PARTS partitions; 2-core machine shared with other work: noisy)"
for k in 2:"rows/s from start" 3:"rows/s 10-90 %" 4:"CPU-s per M rows" 5:"peak RSS MiB"; do
    f=${k%%:*} name=${k#*:}
    s=$(awk -v f="$f" '$1 == "sluice" { print $f }' results.txt | median)
    c=$(awk -v f="$f" '$1 == "connect" { print $f }' results.txt | median)
    awk -v n="$name" -v s="$s" -v c="$c" 'BEGIN { printf "%-20s sluice %9.2f   Kafka Connect + Debezium JDBC %9.2f   sluice/peer %.2f\n", n, s, c, (c > 0 ? s / c : 0) }'
done
