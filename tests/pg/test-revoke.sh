#!/bin/bash
# on_revoke drops the unwritten rows of revoked partitions, never acknowledging them: PostgreSQL
# refuses the sink's connections, so the host's revoke drain times out (30 s) with 5 rows still
# buffered; after the revoke PostgreSQL comes back, and those rows must not be written (the next
# owner reads them again) nor their position stored. Slow: a 30 s drain.
. "$(dirname "$0")/pglib.sh"

wait_long() { local i; for i in $(seq 1 900); do "$@" && return 0; sleep 0.1; done; fail "timed out: $*"; }
su_sql() { "$PGTMP_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGTMP_PORT" -U postgres -d realtime -c "$1"; }
{ cat <<YAML
pipeline: revoke-test
stages:
  - {name: in, use: assign-source, with: {partitions: ["0=-1"], events: 5, prefix: A,
                                          gate: "$T/gate", revoke_gate: "$T/revoke",
                                          end_gate: "$T/end"}}
YAML
  pg_events_stage events_raw 10ms 'kafka_partition: $partition, kafka_offset: $offset'; } >p.yaml
timeout 150 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" p.yaml >"$T/out" 2>"$T/log" &
pid=$!
count5() { test "$(sql "SELECT count(*) FROM events_clean")" = 5; }
wait_long count5
ok "the first 5 events are written"
su_sql "ALTER ROLE app NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'" >/dev/null
touch "$T/gate"                      # 5 more events: PostgreSQL refuses the sink now
wait_long grep -q "PostgreSQL unavailable" "$T/log"
touch "$T/revoke"                    # revoke; the drain cannot finish
wait_long grep -q "records unfinished when draining" "$T/log"
wait_long grep -q "revoked every partition" "$T/log"
su_sql "ALTER ROLE app LOGIN" >/dev/null   # PostgreSQL is back for the sink
wait_long grep -q "unwritten rows" "$T/log"
ok "the sink drops the revoked partition's rows and says so"
touch "$T/end"
wait "$pid"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 5 "none of the revoked rows was written"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'revoke-test'")" 4 "nor their position"
echo "$CHECKS checks passed"
