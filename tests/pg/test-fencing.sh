#!/bin/bash
# Fencing with owner epochs: two instances of one pipeline on the same tables. A takes
# partition 0 (epoch 1) and writes; B takes it over (epoch 2) and writes; then A — now a zombie
# that was never told — writes again. A's rows and positions must not land: they are dropped,
# never acknowledged, logged; sluice_offsets keeps B's position and epoch.
. "$(dirname "$0")/pglib.sh"

pipeline() { # PREFIX GATE
    cat <<YAML
pipeline: fence-test
stages:
  - {name: in, use: assign-source, with: {partitions: ["0=-1"], events: 5, prefix: "$1", gate: "$2"}}
YAML
    pg_events_stage events_raw 10ms
}
pipeline A "$T/gate" >a.yaml
pipeline B "" >b.yaml
count() { sql "SELECT count(*) FROM events_clean WHERE event_id LIKE '$1%'"; }

# No `timeout` wrapper: the kill -9 below must reach sluice itself (its pipeline process dies
# with it), not a wrapper that would leave it running.
"$SLUICE" run --plugin-path "$PG_TEST_STAGES" a.yaml >"$T/a.out" 2>"$T/a.log" &
apid=$!
wait_for test "$(count A)" = 5
ok "A owns partition 0 and wrote its first 5 events"
assert_eq "$(sql "SELECT \"offset\", epoch FROM sluice_offsets WHERE pipeline = 'fence-test'")" "4|1" "A: position 4, epoch 1"

timeout 60 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" b.yaml >"$T/b.out" 2>"$T/b.log"
assert_eq "$?" 0 "B ran to the end"
assert_eq "$(count B)" 5 "B took partition 0 over and wrote its 5 events"
assert_eq "$(sql "SELECT \"offset\", epoch FROM sluice_offsets WHERE pipeline = 'fence-test'")" "4|2" "B: position 4, epoch 2"
sql "UPDATE sluice_offsets SET \"offset\" = 7 WHERE pipeline = 'fence-test'"  # B read on: 7

touch "$T/gate"   # the zombie A writes again (offsets 5..9)
wait_for grep -q "fenced: partition 0 of 'events_raw' has a newer owner" "$T/a.log"
ok "A logs that it was fenced"
assert_contains "$(cat "$T/a.log")" "dropping 5 unwritten rows of it, never acknowledged" "A drops its 5 rows"
sleep 0.5
assert_eq "$(count A)" 5 "none of A's later rows landed"
assert_eq "$(sql "SELECT \"offset\", epoch FROM sluice_offsets WHERE pipeline = 'fence-test'")" "7|2" \
    "the new owner's position and epoch are untouched"
kill -9 "$apid" 2>/dev/null   # a zombie gets killed; its unacknowledged records are not committed
wait "$apid" 2>/dev/null
echo "$CHECKS checks passed"
