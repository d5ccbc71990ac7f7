#!/bin/bash
# pg-sink stores, in the rows' transaction, the last position written per (pipeline, topic,
# partition) in sluice_offsets — also past a row it sent to the dead letter.
. "$(dirname "$0")/pglib.sh"

gen_events 0 3000 >in.ndjson
events_pipeline offsets-test in.ndjson "      batch_size: 700" >p.yaml
run_sluice p.yaml
assert_eq "$?" 0 "first run exits 0"
assert_eq "$(sql "SELECT pipeline, topic, partition, \"offset\" FROM sluice_offsets")" \
    "offsets-test|events|0|$(stat -c %s in.ndjson)" "offset = end of the input after the first run"
assert_eq "$(sql "SELECT max(kafka_offset) FROM events_clean")" "$(stat -c %s in.ndjson)" "the last row carries that offset"

# Second run on a longer input whose last line PostgreSQL refuses (quantity 0 violates a check).
gen_events 3000 1000 >>in.ndjson
gen_events 4000 1 | sed 's/"quantity":1/"quantity":0/' >>in.ndjson
run_sluice p.yaml
assert_eq "$?" 0 "second run exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 4000 "4000 rows"
assert_eq "$(wc -l <dlq.ndjson)" 1 "the refused row went to the dead letter"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets WHERE pipeline = 'offsets-test'")" \
    "$(stat -c %s in.ndjson)" "offset = end of the input, the refused last row included"
assert_eq "$(sql "SELECT count(*) FROM sluice_offsets")" 1 "one row per (pipeline, topic, partition)"
echo "$CHECKS checks passed"
