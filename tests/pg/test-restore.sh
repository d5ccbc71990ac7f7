#!/bin/bash
# pg-sink hands durable state back on partition assignment (api->restore): a test source
# announces partitions 0 (committed offset 10) and 1 (8); state-dump, an earlier stage, writes
# every state record it gets in on_restore to state.txt. Checked: exactly which rows come back
# (partition, offset bound, time bound relative to the partition's newest row, max_rows per
# partition), their topic/offset/timestamp, the row as JSON, and that the resume positions are
# left alone. tests/pg/test-restore-event-time.sh covers event time and topics.
. "$(dirname "$0")/pglib.sh"

# events_clean: (event_id, partition, offset, minutes ago)
for e in "e5 0 5 1" "e10 0 10 2" "e11 0 11 1" "e3 0 3 20" "f7 1 7 1" "g1 2 1 1"; do
    set -- $e
    sql "INSERT INTO events_clean (event_id, event_type, user_id, ts, kafka_partition, kafka_offset)
         VALUES ('$1', 'page_view', 'u1', date_trunc('second', now()) - interval '$4 minutes', $2, $3)" >/dev/null
done
# kpi_1m: (partition, minutes ago, events)
for k in "0 10 42" "0 60 43" "0 3000 44" "1 5 45" "2 5 46"; do
    set -- $k
    sql "INSERT INTO kpi_1m (\"window\", window_start, window_end, \"partition\", events, gmv, final, revision)
         VALUES ('1m', date_trunc('minute', now()) - interval '$2 minutes',
                 date_trunc('minute', now()) - interval '$2 minutes' + interval '1 minute', $1, $3, 12.5, true, 1)" >/dev/null
done
sql "INSERT INTO sluice_offsets (pipeline, topic, \"partition\", \"offset\") VALUES
     ('restore-test', 'kpi_1m', 0, 500), ('restore-test', 'kpi_1m', 2, 600),
     ('other-pipeline', 'kpi_1m', 1, 700), ('restore-test', 'events_raw', 0, 900)" >/dev/null

pipeline() { # PARTITIONS KPI_MAX_ROWS_LINE
    cat <<YAML
pipeline: restore-test
stages:
  - {name: in, use: assign-source, with: {partitions: [$1]}}
  - {name: dump, use: state-dump, with: {path: state.txt}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables:
        events_raw:
          table: events_clean
          conflict: [event_id]
          columns: {event_id: event_id, event_type: event_type, user_id: user_id, ts: ts,
                    kafka_partition: \$partition, kafka_offset: \$offset}
          restore: {within: 15m, time_column: ts}
        kpi_1m:
          conflict: [window_start, partition]
          on_conflict: update
          restore: {within: 48h, time_column: window_start${2:-}}
YAML
}
# "topic partition offset id" per state record: id = event_id or events of the KPI row
ids() { python3 -c '
import json, sys
for line in open("state.txt"):
    topic, p, off, ts, v = line.rstrip("\n").split(" ", 4)
    row = json.loads(v)
    print(topic, p, off, row.get("event_id", row.get("events")))'; }

pipeline '"0=10", "1=8"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run exits 0"
assert_eq "$(ids | tr '\n' ';')" \
    "events_raw 0 5 e5;events_raw 0 10 e10;events_raw 1 7 f7;kpi_1m 0 500 43;kpi_1m 0 500 42;kpi_1m 1 -1 45;" \
    "events up to the committed offset within 15m, then KPI rows within 48h with the stored offset, each by partition, oldest first"
assert_contains "$(cat "$T/log")" "resume position 0=10" "the resume position of partition 0 is left alone"
assert_contains "$(cat "$T/log")" "resume position 1=8" "the resume position of partition 1 is left alone"

line=$(grep ' e5"' state.txt || grep '"e5"' state.txt)
ms=$(sql "SELECT (extract(epoch FROM ts) * 1000)::bigint FROM events_clean WHERE event_id = 'e5'")
assert_eq "$(echo "$line" | cut -d' ' -f4)" "$ms" "a state record's timestamp is the time column in ms"
assert_eq "$(echo "$line" | cut -d' ' -f5- | python3 -c 'import json,sys; print(sorted(json.load(sys.stdin)))')" \
    "$(python3 -c "print(sorted('$(sql "SELECT string_agg(attname, ',') FROM pg_attribute WHERE attrelid = 'events_clean'::regclass AND attnum > 0 AND NOT attisdropped")'.split(',')))")" \
    "the value is the whole row, keyed by column name"
kline=$(grep '^kpi_1m 0 500' state.txt | tail -1 | cut -d' ' -f5-)
assert_eq "$(echo "$kline" | python3 -c 'import json,sys; r = json.load(sys.stdin); print(type(r["events"]).__name__, type(r["gmv"]).__name__, r["gmv"], r["final"], r["partition"], r["window_start"].endswith("+00:00"))')" \
    "int float 12.5 True 0 True" "numbers as JSON numbers, booleans as booleans, timestamps in UTC"

# No committed offset: no events. max_rows caps each (topic, partition), never the total:
# 2 rows of partition 0 and 1 of partition 1 all come back under max_rows: 2.
rm -f state.txt
pipeline '"0=-1", "1=-1"' ', max_rows: 2' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "second run exits 0"
assert_eq "$(ids | tr '\n' ';')" "kpi_1m 0 500 43;kpi_1m 0 500 42;kpi_1m 1 -1 45;" \
    "without a committed offset no events come back; max_rows is per partition (all rows here)"

# A partition with more rows than max_rows: never a silent truncation — the pipeline stops.
rm -f state.txt
pipeline '"0=-1", "1=-1"' ', max_rows: 1' >p.yaml
: >"$T/log"
timeout 60 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" p.yaml >"$T/out" 2>"$T/log" &
pid=$!
wait_for grep -q "fatal error; the pipeline stops" "$T/log"
kill -TERM "$pid" 2>/dev/null
wait "$pid"
assert_contains "$(cat "$T/log")" "tables.kpi_1m: more than max_rows (1) rows to restore for partition 0" \
    "exceeding max_rows fails loudly, naming the partition"

# State that cannot be read stops the pipeline (no stage may run without its state).
cat >bad.yaml <<YAML
pipeline: restore-test
stages:
  - {name: in, use: assign-source, with: {partitions: ["0=10"]}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables: {"*": {table: events_clean, restore: {time_column: ts}}}
YAML
: >"$T/log"
timeout 60 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" bad.yaml >"$T/out" 2>"$T/log" &
pid=$!
wait_for grep -q "fatal error; the pipeline stops" "$T/log"
kill -TERM "$pid" 2>/dev/null
wait "$pid"
assert_contains "$(cat "$T/log")" 'cannot restore state for 1 assigned partitions: tables.*: restore needs a column mapped from $partition or named \"partition\"' \
    "a spec without a partition column cannot restore: the message says why"
assert_contains "$(cat "$T/log")" "fatal error; the pipeline stops" "and the pipeline stops"
echo "$CHECKS checks passed"
