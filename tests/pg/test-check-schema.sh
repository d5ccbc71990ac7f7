#!/bin/bash
# check_schema: pg-sink compares the validator schema's numeric bounds with the columns they
# feed and refuses to start on a mismatch, naming it. The reference schema fits the reference
# table; the schema before its bounds were added (quantity without max: 3e9 passed the
# validator, PostgreSQL refused it, window-kpi counted it) does not. End to end, events out of a
# column's range are refused by the validator, before anything can aggregate them.
. "$(dirname "$0")/pglib.sh"

cp "$SRC/pipelines/ecommerce-event.schema.yaml" ref.yaml
pipeline() {  # SCHEMA_FILE [CHECK_SCHEMA_FILE]
    cat <<YAML
pipeline: check-schema-test
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, topic: events_raw, offset_file: ""}}
  - {name: validate, use: validator, with: {schema: $1}}
  - name: store
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      tables:
        events_raw:
          table: events_clean
          conflict: [event_id]
          check_schema: ${2:-$1}
          columns: {event_id: event_id, event_type: event_type, user_id: user_id,
                    product_id: product_id, quantity: quantity, amount: amount,
                    currency: currency, ts: ts}
YAML
}
{
    gen_events 0 10
    gen_events 10 1 | sed 's/"quantity":1/"quantity":3e9/'
    gen_events 11 1 | sed 's/"amount":[0-9.]*/"amount":1e11/'
    gen_events 12 1 | sed 's/"amount":[0-9.]*/"amount":9999999999.99/'
} >in.ndjson

pipeline ref.yaml >p.yaml
run_sluice p.yaml
assert_eq "$?" 0 "the reference schema fits events_clean: sluice runs"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 11 "valid events stored (the largest amount too)"
assert_eq "$(sql "SELECT amount FROM events_clean WHERE event_id = 'e12'")" 9999999999.99 "the largest amount, exactly"
assert_contains "$(grep -a '"e10\\' dlq.ndjson)" '"sluice.error.stage":"validate"' "quantity 3e9: refused by the validator"
assert_contains "$(grep -a '"e11\\' dlq.ndjson)" '"sluice.error.stage":"validate"' "amount 1e11: refused by the validator"

sql "TRUNCATE events_clean"
sed -e 's/, max: 2147483647//' -e 's/, max: 9999999999.99//' ref.yaml >old.yaml
pipeline old.yaml >p.yaml
run_sluice p.yaml
rc=$?
[ "$rc" -ne 0 ] || fail "a schema without max for quantity: sluice should refuse to start"
ok "a schema without max: refused to start (exit $rc)"
assert_contains "$(cat "$T/log")" "field quantity (integer, min 1, max none) does not fit column events_clean.quantity integer [-2147483648, 2147483647]: it has no max" \
    "the mismatch is named"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 0 "nothing written"

sed 's/max: 9999999999.99/max: 1e11/' ref.yaml >wide.yaml
pipeline wide.yaml >p.yaml
run_sluice p.yaml
[ "$?" -ne 0 ] || fail "amount max 1e11 does not fit numeric(12,2)"
assert_contains "$(cat "$T/log")" "field amount (number, min 0, max 100000000000) does not fit column events_clean.amount numeric(12,2)" \
    "amount beyond numeric(12,2) is named"

sed 's/, normalize: \[round2\]//' ref.yaml >noround.yaml
pipeline noround.yaml >p.yaml
run_sluice p.yaml
[ "$?" -ne 0 ] || fail "amount without round2 does not fit numeric(12,2)"
assert_contains "$(cat "$T/log")" "allows more decimals than the column keeps" "decimals beyond the scale are named"
pipeline ref.yaml /etc/passwd >p.yaml
run_sluice p.yaml
[ "$?" -ne 0 ] || fail "an absolute check_schema is refused"
assert_contains "$(cat "$T/log")" "check_schema: a path relative to the pipeline file" "an absolute path is refused"
pipeline ref.yaml ../ref.yaml >p.yaml
run_sluice p.yaml
[ "$?" -ne 0 ] || fail "a check_schema with .. is refused"
assert_contains "$(cat "$T/log")" 'without ".."' "a path with .. is refused"
echo "$CHECKS checks passed"
