#!/bin/bash
# pg-sink, on_conflict: ignore — rows already in the table and repeated keys within the input
# (same flush and later flushes) keep the first version; everything else lands once.
. "$(dirname "$0")/pglib.sh"

gen_events 0 11 >in.ndjson
gen_events 10 1 | sed 's/"user_id":"[^"]*"/"user_id":"dup-same-flush"/' >>in.ndjson  # e10 again, at once
gen_events 11 4989 >>in.ndjson
gen_events 4000 1 | sed 's/"user_id":"[^"]*"/"user_id":"dup-later"/' >>in.ndjson     # e4000 again, later
sql "INSERT INTO events_clean (event_id, event_type, user_id, ts) VALUES ('e7', 'refund', 'already-there', now())" >/dev/null
events_pipeline ignore-test in.ndjson "      batch_size: 1000" >p.yaml

run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT count(*), count(DISTINCT event_id) FROM events_clean")" "5000|5000" "5000 rows, one per event"
assert_eq "$(sql "SELECT user_id FROM events_clean WHERE event_id = 'e7'")" "already-there" "an existing row is kept"
assert_eq "$(sql "SELECT user_id FROM events_clean WHERE event_id = 'e10'")" "u10" "a repeat in the same flush is ignored"
assert_eq "$(sql "SELECT user_id FROM events_clean WHERE event_id = 'e4000'")" "u12" "a repeat in a later flush is ignored"
assert_eq "$(sql "SELECT sum(quantity) FROM events_clean WHERE event_id <> 'e7'")" \
    "$(awk 'BEGIN { for (i = 0; i < 5000; i++) if (i != 7) s += i % 5 + 1; print s }')" "quantities add up"
assert_eq "$(sql "SELECT sum(amount) FROM events_clean WHERE event_id <> 'e7'")" \
    "$(awk 'BEGIN { for (i = 0; i < 5000; i++) if (i != 7) s += (i % 1000) / 10; printf "%.2f", s }')" "amounts add up (numeric)"
# kafka_offset is the file-source position: the byte just after the record's line.
assert_eq "$(sql "SELECT kafka_partition, kafka_offset FROM events_clean WHERE event_id = 'e0'")" \
    "0|$(head -1 in.ndjson | wc -c)" "\$partition / \$offset columns"
assert_eq "$(wc -l <dlq.ndjson 2>/dev/null || echo 0)" 0 "nothing rejected"
echo "$CHECKS checks passed"
