#!/bin/bash
# The window stage as the reference KPIs (the kpi stage of pipelines/ecommerce-analytics.yaml)
# restored through a real PostgreSQL: assign-source -> window -> pg-sink(kpi_1m of
# pipelines/sql/schema.sql), two topics a and b sharing partition 0 (the scenario of
# tests/pg/test-restore-kpi-topics.sh, which runs window-kpi).
# Run 1: a emits offsets 0..39, b 10..49, all in window 12:00 — two rows, coverage per source
# topic. Run 2 restarts after committed offsets a 19, b 29 (C < Y): each topic's restored window
# skips exactly its covered inputs — a = 60 events, b = 50 + 10 in window 12:01 — and the
# distinct-users sketch stored in users_hll is continued (the one user stays one user).
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

kpi_stage() { # the reference kpi stage with overrides, as one YAML flow line
    python3 - "$SLUICE_SOURCE_DIR/pipelines/ecommerce-analytics.yaml" <<'PY'
import json, sys, yaml
st = [s for s in yaml.safe_load(open(sys.argv[1]))["stages"] if s["name"] == "kpi"][0]
st["with"].update(windows=["1m"], allowed_lateness="0s", passthrough=False, close_on_end=True)
print("  - " + json.dumps(st))
PY
}
pipeline() { # PARTITIONS
    cat <<YAML
pipeline: window-topics
stages:
  - {name: in, use: assign-source, with: {partitions: [$1], events: 40}}
$(kpi_stage)
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables:
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update,
                 restore: {within: 49h, time_column: window_start, topic_column: source_topic}}
YAML
}
rows() { sql "SELECT source_topic, \"partition\", to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI'), events,
                     page_views, distinct_users, length(users_hll), final
              FROM kpi_1m ORDER BY 1, 2, 3" | tr '|' ' ' | tr '\n' ';'; }
cov() { pgtmp_psql -F ' ' -c "SELECT topic, \"partition\", \"offset\" FROM sluice_offsets
             WHERE pipeline = 'window-topics' AND topic LIKE 'kpi%' ORDER BY 1, 2" | tr '\n' ';'; }

pipeline '"a/0=-1", "b/0=9"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run 1 exits 0 $(tail -3 "$T/log")"
assert_eq "$(rows)" "a 0 12:00 40 40 1 1368 t;b 0 12:00 40 40 1 1368 t;" \
    "partition 0 of a and of b: two rows of the same window, with the sketch"
assert_eq "$(cov)" "kpi_1m|a 0 39;kpi_1m|b 0 49;" "the coverage is stored per source topic"

pipeline '"a/0=19", "b/0=29"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run 2 exits 0"
assert_contains "$(cat "$T/log")" "restored 2 rows from" "the window stage rebuilt both rows"
assert_eq "$(rows)" "a 0 12:00 60 60 1 1368 t;b 0 12:00 50 50 1 1368 t;b 0 12:01 10 10 1 1368 t;" \
    "after the restart each topic continues from its own coverage: nothing counted twice, nothing skipped"
assert_eq "$(cov)" "kpi_1m|a 0 59;kpi_1m|b 0 69;" "and the coverage moves on per source topic"
echo "$CHECKS checks passed"
