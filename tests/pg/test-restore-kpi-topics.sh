#!/bin/bash
# KPI state keyed by (source topic, partition) end to end: assign-source -> window-kpi ->
# pg-sink(kpi_1m of pipelines/sql/schema.sql) with two topics a and b sharing partition 0.
# Run 1 (nothing committed): a emits offsets 0..39, b 10..49, all in window 12:00 — both rows
# are stored side by side (the key has source_topic), and the coverage is stored per source
# topic ('kpi_1m|a' = 39, 'kpi_1m|b' = 49). Run 2 restarts after committed offsets a 19, b 29
# (C < Y): a re-reads 20..59, b 30..69. Each topic's restored windows must skip exactly its
# own covered inputs: a = 0..59 (60 events), b = 10..59 (50) + 60..69 in window 12:01 (10).
# Before the fix b's coverage (49) was a's too, so a lost 40..49, or a's (39) was b's and b
# counted 30..39 twice. Then the fallback to a position stored before (plain key), and the
# schema migration: an old kpi table (key without source_topic) gets the new key.
. "$(dirname "$0")/pglib.sh"

pipeline() { # PARTITIONS
    cat <<YAML
pipeline: kpi-topics
stages:
  - {name: in, use: assign-source, with: {partitions: [$1], events: 40}}
  - name: kpi
    use: window-kpi
    with: {windows: [1m], allowed_lateness: 0s, passthrough: false, close_on_end: true}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables:
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update,
                 restore: {within: 49h, time_column: window_start, topic_column: source_topic}}
YAML
}
rows() { sql "SELECT source_topic, \"partition\", to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI'), events
              FROM kpi_1m ORDER BY 1, 2, 3" | tr '|' ' ' | tr '\n' ';'; }
cov() { pgtmp_psql -F ' ' -c "SELECT topic, \"partition\", \"offset\" FROM sluice_offsets
             WHERE pipeline = 'kpi-topics' AND topic LIKE 'kpi%' ORDER BY 1, 2" | tr '\n' ';'; }

pipeline '"a/0=-1", "b/0=9"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run 1 exits 0"
assert_eq "$(rows)" "a 0 12:00 40;b 0 12:00 40;" \
    "partition 0 of a and of b: two rows of the same window, neither overwrites the other"
assert_eq "$(cov)" "kpi_1m|a 0 39;kpi_1m|b 0 49;" "the coverage is stored per source topic"

pipeline '"a/0=19", "b/0=29"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run 2 exits 0"
assert_contains "$(cat "$T/log")" "restored 2 rows of kpi_1m" "both topics' rows are restored"
assert_eq "$(rows)" "a 0 12:00 60;b 0 12:00 50;b 0 12:01 10;" \
    "after the restart each topic continues from its own coverage: nothing counted twice, nothing skipped"
assert_eq "$(cov)" "kpi_1m|a 0 59;kpi_1m|b 0 69;" "and the coverage moves on per source topic"

# A position stored before they were kept per source topic (one topic then: the plain key
# 'kpi_1m') still counts: topic c's window 12:00 holds inputs 0..39, its coverage is the plain
# row; a restart after c/1 = 19 re-reads 20..59 and must count only 40..59.
sql "INSERT INTO kpi_1m (\"window\", window_start, window_end, source_topic, \"partition\", events)
         VALUES ('1m', '2024-05-01 12:00Z', '2024-05-01 12:01Z', 'c', 1, 40);
     INSERT INTO sluice_offsets (pipeline, topic, \"partition\", \"offset\") VALUES ('kpi-topics', 'kpi_1m', 1, 39)" >/dev/null
pipeline '"c/1=19"' >p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run 3 exits 0"
assert_eq "$(rows | tr ';' '\n' | grep '^c ')" "c 1 12:00 60" "a row without a per-topic position takes the plain one"
assert_eq "$(cov | tr ';' '\n' | grep '|c ')" "kpi_1m|c 1 59" "and from then on its position is per source topic"

# The migration of schema.sql: a KPI table from before (key (window_start, partition), rows
# without source_topic) gets source_topic NOT NULL DEFAULT '' (old rows: events_raw) and the
# key (window_start, source_topic, partition); loading the schema again changes nothing.
sql "CREATE SCHEMA old; SET search_path = old;
     CREATE TABLE kpi_1m (LIKE public.kpi_1m INCLUDING DEFAULTS);
     ALTER TABLE kpi_1m ALTER source_topic DROP NOT NULL, ALTER source_topic DROP DEFAULT,
        ADD PRIMARY KEY (window_start, \"partition\");
     INSERT INTO kpi_1m (\"window\", window_start, window_end, \"partition\", events, source_topic)
        VALUES ('1m', '2024-05-01 12:00Z', '2024-05-01 12:01Z', 0, 5, NULL);" >/dev/null
for i in 1 2; do
    pgtmp_psql -c "SET search_path = old" -f "$SLUICE_SOURCE_DIR/pipelines/sql/schema.sql" >/dev/null 2>"$T/mig.err"
    assert_eq "$?" 0 "schema.sql loads over the old table (pass $i) $(cat "$T/mig.err")"
done
assert_eq "$(sql "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'old.kpi_1m'::regclass AND contype = 'p'")" \
    'PRIMARY KEY (window_start, source_topic, partition)' "the old table's key includes source_topic"
assert_eq "$(sql "SELECT source_topic FROM old.kpi_1m")" "events_raw" "its old rows belong to events_raw"
assert_eq "$(sql "SELECT column_default || ' ' || is_nullable FROM information_schema.columns
                  WHERE table_schema = 'old' AND table_name = 'kpi_1m' AND column_name = 'source_topic'")" \
    "''::text NO" "source_topic NOT NULL DEFAULT ''"
echo "$CHECKS checks passed"
