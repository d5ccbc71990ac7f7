#!/bin/bash
# pg-sink and text PostgreSQL cannot hold: a JSON string with "\u0000" (the host's parser hands
# it cut at the NUL, so it used to be stored truncated) and invalid UTF-8 go to the dead letter
# with the reason; an escaped backslash before "u0000" is ordinary text and is stored as is.
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

{
    gen_events 0 10
    gen_events 100 1 | sed 's/"user_id":"[^"]*"/"user_id":"ab\\u0000cd"/'
    gen_events 101 1 | sed 's/"product_id":"[^"]*"/"product_id":"p\xff\xfe"/'
    gen_events 102 1 | sed 's/"session_id":"[^"]*"/"session_id":"a\\\\u0000b"/'
    gen_events 103 1 | sed 's/"payment_method":"[^"]*"/"payment_method":"x\\\\\\u0000"/'
    gen_events 10 10
} >in.ndjson
events_pipeline nul-test in.ndjson >p.yaml

run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 21 "valid rows (and the escaped backslash) committed"
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE event_id IN ('e100','e101','e103')")" 0 \
    "no value with NUL or invalid UTF-8 stored (nor a truncated one)"
assert_eq "$(sql "SELECT session_id FROM events_clean WHERE event_id = 'e102'")" 'a\u0000b' \
    "an escaped backslash before u0000 is text, stored exactly"
assert_eq "$(wc -l <dlq.ndjson)" 3 "3 dead letters"
assert_contains "$(grep -a '"e100' dlq.ndjson)" 'NUL' "NUL: the reason says so"
assert_contains "$(grep -a '"e103' dlq.ndjson)" 'NUL' "NUL after an escaped backslash: the reason says so"
assert_contains "$(grep -a '"e101' dlq.ndjson)" 'UTF' "invalid UTF-8: the reason says so"
echo "$CHECKS checks passed"
