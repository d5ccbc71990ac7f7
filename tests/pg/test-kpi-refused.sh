#!/bin/bash
# A row PostgreSQL refuses is never counted in a KPI (issue 11, item 2): file-source ->
# window-kpi -> pg-sink(events_clean + kpi_1m, kpi_15m) with a trigger that refuses every event
# whose id ends in 37. The refused events go to the dead letter with PostgreSQL's reason, and
# every KPI row equals SQL over the rows events_clean kept. Run twice: the second run is killed
# mid-way (kill -9) and restarted, so counting after delivery also holds across a crash (a
# refused row is neither counted nor subtracted twice).
. "$(dirname "$0")/pglib.sh"

sql "CREATE FUNCTION refuse_sevens() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN IF NEW.event_id LIKE '%37' THEN
         RAISE EXCEPTION 'refused by policy: %', NEW.event_id USING ERRCODE = '23514'; END IF;
       RETURN NEW; END \$\$;
     CREATE TRIGGER refuse_sevens BEFORE INSERT ON events_clean FOR EACH ROW EXECUTE FUNCTION refuse_sevens();" >/dev/null

pipeline() { # NAME INPUT
    cat <<YAML
pipeline: $1
batch_size: 200
commit_interval: 20ms
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: $2, topic: events, offset_file: $2.offset}}
  - {name: kpi, use: window-kpi, with: {windows: [1m, 15m], emit_interval: 20ms, close_on_end: true}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      flush_interval: 10ms
      tables:
        events:
          table: events_clean
          conflict: [event_id]
          on_conflict: ignore
          columns: {event_id: event_id, event_type: event_type, user_id: user_id, amount: amount,
                    ts: ts, kafka_topic: \$topic, kafka_partition: \$partition, kafka_offset: \$offset}
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update,
                 restore: {within: 2h, time_column: window_start, topic_column: source_topic}}
        kpi_15m: {conflict: [window_start, source_topic, partition], on_conflict: update,
                  restore: {within: 2h, time_column: window_start, topic_column: source_topic}}
YAML
}

# KPI rows that differ from SQL over events_clean (empty when they agree), for topic $1.
mismatches() {
    pgtmp_psql -At -c "
      WITH w(name, size) AS (VALUES ('1m', interval '1 minute'), ('15m', interval '15 minutes')),
      truth AS (
        SELECT w.name, date_bin(w.size, e.ts, timestamptz '2000-01-01Z') AS start,
               count(*) AS events,
               count(*) FILTER (WHERE event_type = 'purchase') AS orders,
               coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS gmv
        FROM events_clean e CROSS JOIN w WHERE kafka_topic = '$1' GROUP BY 1, 2),
      kpi AS (
        SELECT '1m' AS name, window_start AS start, events, orders, gmv FROM kpi_1m WHERE source_topic = '$1'
        UNION ALL SELECT '15m', window_start, events, orders, gmv FROM kpi_15m WHERE source_topic = '$1')
      SELECT coalesce(t.name, k.name), coalesce(t.start, k.start), t.events, k.events, t.orders, k.orders, t.gmv, k.gmv
      FROM truth t FULL JOIN kpi k ON t.name = k.name AND t.start = k.start
      WHERE t.events IS DISTINCT FROM k.events OR t.orders IS DISTINCT FROM k.orders OR t.gmv IS DISTINCT FROM k.gmv
      LIMIT 5"
}

# 1. One clean run: 3000 events, 30 of them refused.
gen_events 0 3000 a >a.ndjson
pipeline kpi-refused a.ndjson >p.yaml
run_sluice p.yaml
assert_eq "$?" 0 "run exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE kafka_topic = 'events'")" 2970 \
    "events_clean holds every event the trigger let through"
assert_eq "$(grep -c 'refused by policy' dlq.ndjson)" 30 "every refused event is in the dead letter, with the reason"
assert_eq "$(mismatches events)" "" "every KPI row equals SQL over events_clean (refused rows not counted)"
assert_eq "$(sql "SELECT sum(events) FROM kpi_15m")" 2970 "the 15m windows count 2970"

# 2. Killed mid-way and restarted: still exact.
rm -f dlq.ndjson
gen_events 0 20000 b >b.ndjson
pipeline kpi-refused-crash b.ndjson | sed 's/topic: events,/topic: crash,/; s/^        events:/        crash:/' >q.yaml
"$SLUICE" run q.yaml >"$T/out2" 2>"$T/log2" &
PID=$!
for _ in $(seq 1 1500); do
    [ "$(sql "SELECT count(*) FROM events_clean WHERE kafka_topic = 'crash'")" -gt 3000 ] &&
        [ "$(sql "SELECT count(*) FROM kpi_15m WHERE source_topic = 'crash'")" -gt 0 ] && break
    sleep 0.02
done
kill -9 "$PID"; wait "$PID" 2>/dev/null
CUT=$(cat b.ndjson.offset 2>/dev/null); CUT=${CUT:-0}
AT_KILL=$(sql "SELECT count(*) FROM events_clean WHERE kafka_topic = 'crash'")
KPI_AT_KILL=$(sql "SELECT count(*) FROM kpi_15m WHERE source_topic = 'crash'")
run_sluice q.yaml
RC=$?
[ "$RC" = 0 ] || tail -15 "$T/log" >&2
assert_eq "$RC" 0 "the restarted run exits 0"
assert_eq "$(test "$AT_KILL" -gt 3000 && test "$AT_KILL" -lt 19800 && echo mid)" mid \
    "killed mid-way: $AT_KILL of 19800 rows written (source position committed: $CUT)"
assert_eq "$(test "$KPI_AT_KILL" -gt 0 && echo yes)" yes "KPI rows were stored before the kill, so the restart restores them"
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE kafka_topic = 'crash'")" 19800 \
    "events_clean holds every event the trigger let through, once"
assert_eq "$(mismatches crash)" "" "after the crash every KPI row still equals SQL over events_clean"
assert_eq "$(sql "SELECT sum(events) FROM kpi_15m WHERE source_topic = 'crash'")" 19800 \
    "the 15m windows count 19800"
echo "$CHECKS checks passed"
