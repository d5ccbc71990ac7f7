#!/bin/bash
# pg_ctl restart while records stream in: pg-sink logs the outage once, reconnects with backoff,
# redoes the open batch and the pipeline lives on; nothing is lost and nothing duplicated.
. "$(dirname "$0")/pglib.sh"

N=200000
gen_events 0 $N >all.ndjson
split -l 10000 -d all.ndjson part.
: >in.ndjson
sed 's/offset_file: ""/offset_file: "", follow: true/' <(events_pipeline reconnect-test in.ndjson "      batch_size: 2000") >p.yaml

timeout 120 "$SLUICE" run p.yaml >"$T/out" 2>"$T/log" &
pid=$!
# A writer appends 10,000 lines every 50 ms, so the sink has an open batch when PostgreSQL goes.
( for f in part.*; do cat "$f" >>in.ndjson; sleep 0.05; done ) &
writer=$!
rows() { sql "SELECT count(*) FROM events_clean" 2>/dev/null || echo 0; }
at_least() { [ "$(rows)" -ge "$1" ]; }
wait_for at_least 30000 || fail "no rows arrived"
before=$(rows)
pgtmp_restart || fail "pg_ctl restart"
ok "PostgreSQL restarted with $before of $N rows written"
wait "$writer"
wait_for at_least $N || fail "only $(rows) of $N rows after the restart"
kill -TERM "$pid"
wait "$pid"
assert_eq "$?" 0 "sluice stops cleanly (exit 0)"
assert_eq "$(sql "SELECT count(*), count(DISTINCT event_id) FROM events_clean")" "$N|$N" "every event once"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'reconnect-test'")" \
    "$(stat -c %s in.ndjson)" "stored offset = end of the input"
log=$(cat "$T/log")
assert_contains "$log" "PostgreSQL unavailable" "the outage is logged"
assert_contains "$log" "PostgreSQL available again" "the recovery is logged"
assert_eq "$(grep -c 'PostgreSQL unavailable' "$T/log")" 1 "logged once, not per retry"
assert_eq "$(wc -l <dlq.ndjson 2>/dev/null || echo 0)" 0 "nothing went to the dead letter"
echo "$CHECKS checks passed"
