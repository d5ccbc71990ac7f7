#!/bin/bash
# Restore by event time, per (topic, partition), complete and streamed: `within` counts back from
# the newest row of each (topic, partition) up to its committed offset — the data's own clock,
# not now() (events of 2024 used to restore nothing); rows of another topic with the same
# partition number never mix in; 3000 rows of one partition (more than one 1024-record chunk)
# all come back; each record carries its row's topic.
. "$(dirname "$0")/pglib.sh"

ins() { # TOPIC PARTITION OFFSET TS
    echo "INSERT INTO events_clean (event_id, event_type, user_id, ts, kafka_topic, kafka_partition, kafka_offset)
          VALUES ('$1-$2-$3', 'page_view', 'u1', '$4', '$1', $2, $3);"
}
{
    ins a 0 1 "2024-05-01 12:00:00Z"; ins a 0 2 "2024-05-01 12:10:00Z"; ins a 0 3 "2024-05-01 12:20:00Z"
    ins a 0 4 "2024-05-01 12:25:00Z"; ins a 0 5 "2024-05-01 12:30:00Z"; ins a 0 6 "2024-05-01 13:30:00Z"
    ins b 0 1 "2024-05-02 08:00:00Z"; ins b 0 2 "2024-05-02 08:05:00Z"; ins b 0 3 "2024-05-02 08:30:00Z"
    ins c 0 1 "2024-05-02 08:00:00Z"
    echo "INSERT INTO events_clean (event_id, event_type, user_id, ts, kafka_topic, kafka_partition, kafka_offset)
          SELECT 'a-1-' || i, 'page_view', 'u1', timestamptz '2024-05-03 00:00:00Z' + i * interval '1 ms', 'a', 1, i
          FROM generate_series(1, 3000) i;"
} | pgtmp_psql >/dev/null

cat >p.yaml <<YAML
pipeline: restore-et-test
stages:
  - {name: in, use: assign-source, with: {partitions: ["a/0=5", "b/0=2", "a/1=5000"]}}
  - {name: dump, use: state-dump, with: {path: state.txt}}
YAML
pg_events_stage '"*"' "" "" "restore: {within: 10m, time_column: ts}" >>p.yaml
run_sluice --plugin-path "$PG_TEST_STAGES" p.yaml
assert_eq "$?" 0 "run exits 0"
ids() { python3 -c '
import json
for line in open("state.txt"):
    topic, p, off, ts, v = line.rstrip("\n").split(" ", 4)
    print(topic, p, off, json.loads(v)["event_id"])'; }
assert_eq "$(ids | head -5 | tr '\n' ';')" "a 0 3 a-0-3;a 0 4 a-0-4;a 0 5 a-0-5;b 0 1 b-0-1;b 0 2 b-0-2;" \
    "a/0: 10 minutes before its newest committed row; b/0 likewise, up to its own committed offset; c never"
assert_eq "$(ids | tail -n +6 | awk '$1 == "a" && $2 == 1' | wc -l)" 3000 "a/1: all 3000 rows (several chunks)"
assert_eq "$(ids | tail -n +6 | awk '{print $3}' | sort -n | uniq | wc -l)" 3000 "each once"
assert_eq "$(wc -l <state.txt)" 3005 "nothing else"
assert_contains "$(cat "$T/log")" "restored 3005 rows of events_clean" "logged"
echo "$CHECKS checks passed"
