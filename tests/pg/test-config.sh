#!/bin/bash
# pg-sink configuration errors: refused at start (exit 2) with the offending entry named; a
# table that does not exist stops the pipeline with advice instead of rejecting every row.
. "$(dirname "$0")/pglib.sh"

echo '{"id":1}' >in.ndjson
pipeline() { # WITH_BLOCK [DEAD_LETTER_LINE]
    printf 'pipeline: config-test\n%s\nstages:\n  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: ""}}\n  - name: out\n    use: pg-sink\n    with:\n%s\n' "${2:-}" "$1"
}
expect_config_error() { # WITH_BLOCK MESSAGE WHAT [DEAD_LETTER_LINE]
    pipeline "$1" "${4:-}" >bad.yaml
    run_sluice bad.yaml
    local rc=$?
    # (init's SL_ECONFIG: the supervisor reports "configuration error (exit 2)"; sluice run
    # itself currently exits 1 for it, so only "failed" is asserted here.)
    assert_eq "$([ "$rc" -ne 0 ] && echo failed)" failed "$3: refused"
    assert_contains "$(cat "$T/log")" "$2" "$3: message"
}
expect_config_error '      tables: [a, b]' 'tables: expected a map' "tables not a map"
expect_config_error '      tables: {t: {on_conflict: replace}}' 'tables.t: on_conflict: expected ignore or update' "bad on_conflict"
expect_config_error '      tables: {t: {on_conflict: update}}' 'tables.t: on_conflict: update needs `conflict`' "update without keys"
expect_config_error '      tables: {t: {colums: [a]}}' 'tables.t: unknown key' "unknown key in a table spec"
expect_config_error '      tables: {t: {columns: {a: $parttion}}}' 'unknown attribute' "misspelt attribute"
expect_config_error '      tables: {"*": {conflict: id}}' 'entry needs `table`' "fallback without a table"
expect_config_error '      tables: {t: {}}
      create_tables: true' 'create_tables needs' "create_tables without columns"
expect_config_error '      tables: {t: {restore: {within: 15m}}}' 'tables.t: restore.within needs time_column' "restore without a time column"
expect_config_error '      tables: {t: {restore: {within: soon, time_column: ts}}}' 'restore.within: expected a duration' "restore with a bad duration"
expect_config_error '      tables: {t: {restore: {time_column: ts, max_row: 5}}}' 'restore: unknown key' "misspelt restore key"

# A runtime failure: the supervisor restarts the pipeline with backoff, so watch the log and stop.
expect_runtime_error() { # WITH_BLOCK MESSAGE WHAT
    pipeline "$1" >rt.yaml
    : >"$T/log"
    timeout 60 "$SLUICE" run rt.yaml >"$T/out" 2>"$T/log" &
    local pid=$!
    wait_for grep -q "stage failed: fatal error" "$T/log"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    assert_contains "$(cat "$T/log")" "stage failed: fatal error" "$3: the pipeline stops"
    assert_contains "$(cat "$T/log")" "$2" "$3: message"
}
expect_runtime_error '      dsn: "${PG_DSN}"
      tables: {"*": {table: no_such_table}}' "table no_such_table does not exist" "a missing table"
expect_runtime_error '      dsn: "${PG_DSN}"
      tables: {"*": {table: events_clean, columns: {event_id: id, nope: id}}}' \
    'table events_clean has no column \"nope\"' "a missing column"
echo "$CHECKS checks passed"
