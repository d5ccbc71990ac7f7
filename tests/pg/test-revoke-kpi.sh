#!/bin/bash
# A revoke while window-kpi waits for its inputs' rows to become durable (count_after: durable):
# PostgreSQL refuses the sink's connections, so the revoke drain times out (30 s) with 5 event
# rows buffered in pg-sink and 5 inputs pending in window-kpi. On revoke window-kpi drops the
# partition (its pending inputs are orphaned) and pg-sink drops the unwritten rows, never
# acknowledging them. Then: no KPI row counts an event that was never written, and the process
# ends cleanly. Slow: a 30 s drain.
# Open (2026-11-29): in the ASan build this fails — the 5 rows pg-sink never releases keep their
# watched ack groups (api->watch) alive, LeakSanitizer aborts the pipeline at exit, the
# supervisor restarts it and the rerun writes the rows. Release-build semantics hold.
. "$(dirname "$0")/pglib.sh"

wait_long() { local i; for i in $(seq 1 900); do "$@" && return 0; sleep 0.1; done; fail "timed out: $*"; }
su_sql() { "$PGTMP_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGTMP_PORT" -U postgres -d realtime -c "$1"; }
cat >p.yaml <<YAML
pipeline: revoke-kpi
stages:
  - {name: in, use: assign-source, with: {topic: events, partitions: ["0=-1"], events: 5, prefix: A,
                                          gate: "$T/gate", revoke_gate: "$T/revoke", end_gate: "$T/end"}}
  - {name: kpi, use: window-kpi, with: {windows: [1m], emit_interval: 10ms}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      flush_interval: 10ms
      tables:
        events:
          table: events_clean
          conflict: [event_id]
          columns: {event_id: event_id, event_type: event_type, user_id: user_id, ts: ts,
                    kafka_topic: \$topic, kafka_partition: \$partition, kafka_offset: \$offset}
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update}
YAML
timeout 150 "$SLUICE" run --plugin-path "$PG_TEST_STAGES" p.yaml >"$T/out" 2>"$T/log" &
pid=$!
kpi5() { test "$(sql "SELECT coalesce(sum(events), 0) FROM kpi_1m")" = 5; }
wait_long kpi5
ok "the first 5 events are written and counted"
su_sql "ALTER ROLE app NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'" >/dev/null
touch "$T/gate"                      # 5 more events: their rows cannot be written
wait_long grep -q "PostgreSQL unavailable" "$T/log"
touch "$T/revoke"                    # revoke; the drain cannot finish
wait_long grep -q "revoked every partition" "$T/log"
su_sql "ALTER ROLE app LOGIN" >/dev/null
wait_long grep -q "unwritten rows" "$T/log"
touch "$T/end"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || { tail -30 "$T/log" >&2; fail "sluice exited $rc"; }
ok "the pipeline ends cleanly after the revoke"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 5 "none of the revoked rows was written"
assert_eq "$(sql "SELECT sum(events) FROM kpi_1m")" 5 "no KPI row counts an event whose row was never written"
echo "$CHECKS checks passed"
