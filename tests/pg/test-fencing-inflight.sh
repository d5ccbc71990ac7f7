#!/bin/bash
# Fencing, the other order: the old owner A is inside a transaction (a trigger makes it slow)
# when B is assigned the partition. A's transaction holds the owner row locked, so B's epoch
# bump waits until A commits — and B's restore then includes A's rows: nothing the old owner
# committed is missing from the new owner's state, and A's next write is fenced.
. "$(dirname "$0")/pglib.sh"

sql "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN IF NEW.event_id = 'Aevents_raw-0-7' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END \$\$;
     CREATE TRIGGER slow_row BEFORE INSERT ON events_clean FOR EACH ROW EXECUTE FUNCTION slow_row();" >/dev/null
pipeline() { # PREFIX EVENTS GATE
    cat <<YAML
pipeline: fence-inflight
stages:
  - {name: in, use: assign-source, with: {partitions: ["0=$4"], events: $2, prefix: "$1", gate: "$3"}}
  - {name: dump, use: state-dump, with: {path: $1-state.txt}}
YAML
    pg_events_stage events_raw 10ms "" "restore: {within: 1h, time_column: ts}"
}
pipeline A 5 "$T/gate" -1 >a.yaml
pipeline B 0 "" 1000 >b.yaml
count() { test "$(sql "SELECT count(*) FROM events_clean")" = "$1"; }
sleeping() { test "$(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")" = 1; }

# No `timeout` wrapper: the kill -9 below must reach sluice itself (its pipeline process dies
# with it), not a wrapper that would leave it running.
"$SLUICE" run --plugin-path "$PG_TEST_STAGES" a.yaml >"$T/a.out" 2>"$T/a.log" &
apid=$!
wait_for count 5 || fail "A did not write its first events"
touch "$T/gate"
wait_for sleeping || fail "A's second transaction did not reach the slow row"
ok "A is inside its transaction for offsets 5..9"
timeout 60 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" b.yaml >"$T/b.out" 2>"$T/b.log"
assert_eq "$?" 0 "B ran (its assignment waited for A's transaction)"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 10 "A's in-flight transaction committed (A still owned the partition)"
assert_eq "$(cut -d' ' -f3 B-state.txt | tr '\n' ' ')" "0 1 2 3 4 5 6 7 8 9 " \
    "B's restore includes every row A committed, the in-flight ones too"
assert_eq "$(sql "SELECT \"offset\", epoch FROM sluice_offsets WHERE pipeline = 'fence-inflight'")" "9|2" \
    "A's position, then B's epoch"
kill -9 "$apid" 2>/dev/null
wait "$apid" 2>/dev/null
echo "$CHECKS checks passed"
