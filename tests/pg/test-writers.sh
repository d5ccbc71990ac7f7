#!/bin/bash
# pg-sink with `writers: 3`: rows grouped by conflict key over three connections.
#   1. kill -9 while one connection's transaction is held up (a trigger sleeps on one row) and
#      the other two have committed their rows of the same batch, some of them after it:
#      sluice_offsets never covers an unwritten row; a restart writes every row exactly once
#      and the position reaches the end.
#   2. refused rows in several groups: bisected to the dead letter, the rest written, the
#      position past them.
#   3. on_conflict: update with repeated keys in one flush, grouped over the connections (the
#      last arrival wins); then as KPI-style rows (no $offset column: written by connection 0
#      with their positions).
#   4. pg_ctl restart while rows stream in: every connection reconnects and redoes its group;
#      every row once, the position at the end.
. "$(dirname "$0")/pglib.sh"

N=30000
gen_events 0 "$N" >in.ndjson
SLOW=e$((N / 2))
# end offset of every line (file-source's $offset is the position after the line)
awk '{ pos += length($0) + 1; print pos }' in.ndjson >ends.txt
SLOW_OFF=$(sed -n "$((N / 2 + 1))p" ends.txt)
events_pipeline writers-test in.ndjson "      writers: 3
      batch_size: 3000" >p.yaml

# The first insert of $SLOW sleeps 30 s (a sequence is not rolled back, so only once).
sql "CREATE SEQUENCE slow_once;
     CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN
       IF NEW.event_id = '$SLOW' AND nextval('slow_once') = 1 THEN PERFORM pg_sleep(30); END IF;
       RETURN NEW;
     END \$\$;
     CREATE TRIGGER slow_row BEFORE INSERT ON events_clean FOR EACH ROW EXECUTE FUNCTION slow_row();" >/dev/null

SL_PID=
kill_sluice() { [ -n "$SL_PID" ] && kill -KILL -- "-$SL_PID" 2>/dev/null; wait "$SL_PID" 2>/dev/null; SL_PID=; }
PGTMP_ON_EXIT='kill_sluice; _cleanup'
setsid "$SLUICE" run --no-rest p.yaml >out1 2>log1 &
SL_PID=$!
sleeping() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")" = 1 ]; }
wait_for sleeping || fail "the slow row's transaction never started: $(tail -5 log1)"
# the other two connections finish their groups of that batch meanwhile
after_slow() { [ "$(sql "SELECT count(*) FROM events_clean WHERE kafka_offset > $SLOW_OFF")" -gt 0 ]; }
wait_for after_slow || fail "no row after the held-up one was committed: $(tail -5 log1)"
sleep 1
kill_sluice
# the held-up transaction dies with it (as when the whole host goes down)
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'" >/dev/null

assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE event_id = '$SLOW'")" 0 \
    "the held-up row is not written"
assert_eq "$(sql "SELECT count(*) > 0 FROM events_clean WHERE kafka_offset > $SLOW_OFF")" t \
    "rows after it (other connections) are"
off=$(sql "SELECT coalesce(max(\"offset\"), -1) FROM sluice_offsets WHERE pipeline = 'writers-test'")
echo "after kill -9: sluice_offsets at $off, the held-up row ends at $SLOW_OFF"
assert_eq "$((off < SLOW_OFF))" 1 "sluice_offsets is not past the unwritten row"
covered=$(awk -v o="$off" '$1 <= o' ends.txt | wc -l)
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE kafka_offset <= $off")" "$covered" \
    "every row sluice_offsets covers is written"

# restart: everything, exactly once (the input is read again from the start)
run_sluice --no-rest p.yaml
assert_eq "$?" 0 "the restarted run exits 0"
assert_eq "$(sql "SELECT count(*), count(DISTINCT event_id), sum(quantity) FROM events_clean")" \
    "$N|$N|$((N / 5 * 15))" "all $N rows, each once"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'writers-test'")" \
    "$(stat -c %s in.ndjson)" "sluice_offsets at the end of the input"

# 2. refused rows (quantity 0 violates a check) in different groups of one batch
sql "DROP TRIGGER slow_row ON events_clean; TRUNCATE events_clean, sluice_offsets" >/dev/null
gen_events 0 3000 b >in2.ndjson
for i in 100 1700 2900; do sed -i "$((i + 1))s/\"quantity\":[0-9]*/\"quantity\":0/" in2.ndjson; done
events_pipeline writers-reject in2.ndjson "      writers: 3" >p2.yaml
run_sluice --no-rest p2.yaml
assert_eq "$?" 0 "the run with refused rows exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 2997 "the other 2997 rows are written"
assert_eq "$(wc -l <dlq.ndjson)" 3 "the 3 refused rows went to the dead letter"
assert_eq "$(grep -c '23514' dlq.ndjson)" 3 "each with the check violation"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'writers-reject'")" \
    "$(stat -c %s in2.ndjson)" "the position is past the refused rows"

# 3. upserts: many revisions of a few keys in one flush, over 3 connections; KPI-style rows
#    (no $offset column) commit with their positions.
kpi() { # window_start_minute partition revision
    printf '{"window":"1m","window_start":"2024-05-01T12:%02d:00Z","window_end":"2024-05-01T12:%02d:00Z","partition":%d,"source_topic":"events_raw","events":%d,"gmv":%d.5,"revision":%d}\n' \
        "$1" "$(($1 + 1))" "$2" "$(($3 * 10))" "$3" "$3"
}
for r in $(seq 1 20); do for m in 0 1 2 3 4 5; do for p in 0 1; do kpi "$m" "$p" "$r"; done; done; done >kpi.ndjson
for so in false true; do
    cat >p3.yaml <<YAML
pipeline: writers-kpi
stages:
  - {name: in, use: file-source, with: {path: kpi.ndjson, topic: kpi_1m, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      writers: 3
      store_offsets: $so
      tables:
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update}
YAML
    sql "TRUNCATE kpi_1m" >/dev/null
    run_sluice --no-rest p3.yaml
    assert_eq "$?" 0 "the upsert run exits 0 (store_offsets: $so)"
    assert_eq "$(sql "SELECT count(*), min(revision), max(revision), sum(events) FROM kpi_1m")" \
        "12|20|20|2400" "12 windows, each at its last revision (store_offsets: $so)"
done
assert_eq "$(sql "SELECT topic, \"offset\" FROM sluice_offsets WHERE pipeline = 'writers-kpi'")" \
    "kpi_1m|$(stat -c %s kpi.ndjson)" "the KPI rows' position"

# 4. PostgreSQL restarts mid-stream
sql "TRUNCATE events_clean, sluice_offsets" >/dev/null
M=60000
gen_events 0 $M r >all.ndjson
split -l 5000 -d all.ndjson part.
: >in4.ndjson
sed 's/offset_file: ""/offset_file: "", follow: true/' \
    <(events_pipeline writers-restart in4.ndjson "      writers: 3
      batch_size: 2000") >p4.yaml
setsid "$SLUICE" run --no-rest p4.yaml >out4 2>log4 &
SL_PID=$!
( for f in part.*; do cat "$f" >>in4.ndjson; sleep 0.05; done ) &
feeder=$!
rows() { sql "SELECT count(*) FROM events_clean" 2>/dev/null || echo 0; }
at_least() { [ "$(rows)" -ge "$1" ]; }
wait_for at_least 10000 || fail "no rows arrived: $(tail -5 log4)"
pgtmp_restart || fail "pg_ctl restart"
ok "PostgreSQL restarted mid-stream"
wait "$feeder"
wait_for at_least $M || wait_for at_least $M || fail "only $(rows) of $M rows after the restart: $(tail -5 log4)"
kill -TERM "$SL_PID"
wait "$SL_PID"
assert_eq "$?" 0 "sluice stops cleanly (exit 0)"
SL_PID=
assert_eq "$(sql "SELECT count(*), count(DISTINCT event_id) FROM events_clean")" "$M|$M" "every event once"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'writers-restart'")" \
    "$(stat -c %s in4.ndjson)" "stored offset = end of the input"
assert_contains "$(cat log4)" "PostgreSQL available again" "the recovery is logged"
echo "$CHECKS checks passed"
