#!/bin/bash
# Rows PostgreSQL refuses (a check, NOT NULL, a malformed number or timestamp, a too-long
# char(3)) are found by bisecting the batch and go to the dead letter with the server's
# message; every other row commits.
. "$(dirname "$0")/pglib.sh"

bad() { gen_events "$1" 1 | sed "$2"; }
{
    gen_events 0 300
    bad 300 's/"quantity":1/"quantity":0/'                        # check constraint
    gen_events 301 400
    bad 701 's/"user_id":"[^"]*"/"user_id":null/'                 # NOT NULL
    bad 702 's/"amount":[0-9.]*/"amount":"12,50"/'                 # numeric syntax
    gen_events 703 500
    bad 1203 's/"ts":"[^"]*"/"ts":"yesterday-ish"/'                # timestamptz syntax
    bad 1204 's/"currency":"USD"/"currency":"EURO"/'               # char(3) too long
    gen_events 1205 795
    echo 'this line is not JSON'                                   # refused before PostgreSQL
} >in.ndjson
events_pipeline reject-test in.ndjson "      batch_size: 5000" >p.yaml

run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 1995 "every valid row committed"
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE event_id IN ('e300','e701','e702','e1203','e1204')")" 0 "no refused row committed"
assert_eq "$(wc -l <dlq.ndjson)" 6 "6 dead letters"
assert_contains "$(grep '\\"e300\\"' dlq.ndjson)" 'violates check constraint \"events_clean_quantity_check\"' "check constraint: server message"
assert_contains "$(grep '\\"e701\\"' dlq.ndjson)" 'null value in column \"user_id\"' "NOT NULL: server message"
assert_contains "$(grep '\\"e702\\"' dlq.ndjson)" 'invalid input syntax for type numeric' "numeric: server message"
assert_contains "$(grep '\\"e1203\\"' dlq.ndjson)" 'invalid input syntax for type timestamp with time zone' "timestamptz: server message"
assert_contains "$(grep '\\"e1204\\"' dlq.ndjson)" 'value too long for type character(3)' "char(3): server message"
assert_contains "$(grep 'not JSON' dlq.ndjson)" 'not a JSON object' "a non-JSON record is refused before PostgreSQL"
assert_contains "$(grep '\\"e300\\"' dlq.ndjson)" '"sluice.error.stage":"out"' "the dead letter names the stage"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets")" "$(($(stat -c %s in.ndjson) - 22))" \
    "stored offset: the last row that reached PostgreSQL"
echo "$CHECKS checks passed"
