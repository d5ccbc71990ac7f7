# pglib.sh — sourced by the pg-sink tests: testlib + a throwaway PostgreSQL with the schema of
# pipelines/sql/schema.sql, and helpers to write inputs and run sluice.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
. "$SLUICE_SOURCE_DIR/tests/lib/pgtmp.sh"
PGTMP_ON_EXIT=_cleanup   # pgtmp owns the EXIT trap; it runs testlib's cleanup first
pgtmp_start >"$T/pgtmp.log" 2>&1 || { cat "$T/pgtmp.log" >&2; fail "cannot start PostgreSQL"; }
export SLUICE_PLUGIN_PATH
cd "$T" || exit 1

sql() { pgtmp_psql -c "$1"; }

# pg_events_stage KEY FLUSH [POSITION_COLUMNS] [TABLE_SPEC_LINE] — a `stages:` item (YAML): the
# pg-sink `out` writing the records of topic KEY ('"*"' for any) to events_clean, keyed by
# event_id, with the event's columns and POSITION_COLUMNS (default: topic, partition, offset).
# FLUSH "" keeps the default flush_interval; TABLE_SPEC_LINE is added to the table's spec
# (restore: ...). The fencing, revoke and restore tests share it.
PG_POSITION_COLUMNS='kafka_topic: $topic, kafka_partition: $partition, kafka_offset: $offset'
pg_events_stage() {
    printf '  - name: out\n    use: pg-sink\n    with:\n      dsn: "${PG_DSN}"\n'
    [ -z "$2" ] || printf '      flush_interval: %s\n' "$2"
    printf '      tables:\n        %s:\n          table: events_clean\n          conflict: [event_id]\n' "$1"
    printf '          columns: {event_id: event_id, event_type: event_type, user_id: user_id, ts: ts,\n'
    printf '                    %s}\n' "${3:-$PG_POSITION_COLUMNS}"
    [ -z "${4:-}" ] || printf '          %s\n' "$4"
}

# gen_events FIRST COUNT [PREFIX] — NDJSON events for events_clean, one per line; quantity is
# i % 5 + 1 and amount (i % 1000) / 10, so sums can be recomputed in the test.
gen_events() {
    awk -v first="$1" -v n="$2" -v p="${3:-e}" 'BEGIN {
        split("page_view add_to_cart purchase payment_failed refund", types, " ");
        for (i = first; i < first + n; i++)
            printf "{\"event_id\":\"%s%d\",\"event_type\":\"%s\",\"user_id\":\"u%d\",\"session_id\":\"s%d\",\"product_id\":\"p%d\",\"quantity\":%d,\"amount\":%.1f,\"currency\":\"USD\",\"payment_method\":\"card\",\"ts\":\"2024-05-01T12:%02d:%02dZ\"}\n",
                p, i, types[i % 5 + 1], i % 997, i % 101, i % 50, i % 5 + 1, (i % 1000) / 10, (i / 60) % 60, i % 60
    }'
}

# events_pipeline NAME INPUT [EXTRA_WITH_LINES] — a pipeline file INPUT -> pg-sink(events_clean,
# ignore), dead letters in dlq.ndjson, on stdout.
events_pipeline() {
    cat <<YAML
pipeline: $1
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: $2, topic: events, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
${3:-}
      tables:
        events:
          table: events_clean
          conflict: [event_id]
          on_conflict: ignore
          columns:
            event_id: event_id
            event_type: event_type
            user_id: user_id
            session_id: session_id
            product_id: product_id
            quantity: quantity
            amount: amount
            currency: currency
            payment_method: payment_method
            ts: ts
            kafka_partition: \$partition
            kafka_offset: \$offset
YAML
}

# run_sluice FILE... — runs the pipelines to the end of their input (bounded); log in $T/log.
run_sluice() { timeout ${RUN_TIMEOUT:-120} "$SLUICE" run "$@" >"$T/out" 2>"$T/log"; }
