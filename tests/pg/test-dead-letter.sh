#!/bin/bash
# The reference dead letter (pg-sink into events_rejected, as pipelines/ecommerce-analytics.yaml
# configures it) holds any bytes: payload is bytea and pg-sink writes $value as bytea. A record
# with invalid UTF-8 used to be refused by the dead letter itself (22021) and lost.
. "$(dirname "$0")/pglib.sh"

# A trigger message longer than a reason holds, in two-byte characters: cut to size, it must
# still be valid UTF-8 for the dead letter's text column.
sql "CREATE FUNCTION long_refusal() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN IF NEW.event_id = 'e7' THEN RAISE EXCEPTION 'x%', repeat('é', 700); END IF; RETURN NEW; END \$\$;
     CREATE TRIGGER long_refusal BEFORE INSERT ON events_clean FOR EACH ROW EXECUTE FUNCTION long_refusal();" >/dev/null
{
    gen_events 0 5
    printf '{"event_id":"bad-utf8","user_id":"\xff\xfe","ts":"2024-05-01T12:00:00Z"}\n'
    printf 'not json \xc3\x28 \\ back\tslash\n'
    gen_events 5 1 | sed 's/"quantity":1/"quantity":0/'   # check constraint: refused by PostgreSQL
    gen_events 6 5
} >in.ndjson
cat >p.yaml <<'YAML'
pipeline: dead-letter-test
dead_letter:
  use: pg-sink
  with:
    dsn: "${PG_DSN}"
    store_offsets: false
    tables:
      "*":
        table: events_rejected
        conflict: [topic, partition, offset]
        on_conflict: ignore
        columns: {payload: $value, stage: $header.sluice.error.stage,
                  reason: $header.sluice.error.reason, topic: $topic, partition: $partition,
                  offset: $offset}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, topic: events_raw, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "${PG_DSN}"
      tables:
        events_raw:
          table: events_clean
          conflict: [event_id]
          columns: {event_id: event_id, event_type: event_type, user_id: user_id, quantity: quantity, ts: ts}
YAML
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 9 "valid rows committed"
assert_eq "$(sql "SELECT count(*) FROM events_rejected")" 4 "4 dead letters stored"
assert_eq "$(sql "SELECT convert_from(payload, 'UTF8') LIKE '%\"e7\"%' AND reason LIKE 'pg-sink: P0001: xéé%' FROM events_rejected WHERE reason LIKE '%P0001%'")" t \
    "a long multi-byte trigger message, cut to size, is still stored"
assert_eq "$(sql "SELECT encode(payload, 'hex') FROM events_rejected WHERE encode(payload, 'hex') LIKE '%fffe%'")" \
    "$(sed -n 6p in.ndjson | tr -d '\n' | od -An -v -tx1 | tr -d ' \n')" "invalid UTF-8 payload: the exact bytes"
assert_eq "$(sql "SELECT encode(payload, 'hex') FROM events_rejected WHERE encode(payload, 'hex') LIKE '6e6f74206a736f6e%'")" \
    "$(sed -n 7p in.ndjson | tr -d '\n' | od -An -v -tx1 | tr -d ' \n')" "non-JSON payload with a backslash and a tab: the exact bytes"
assert_contains "$(sql "SELECT convert_from(payload, 'UTF8') || ' ' || reason FROM events_rejected WHERE reason LIKE '%23514%'")" \
    '"event_id":"e5"' "a row PostgreSQL refused: payload and reason"
assert_eq "$(grep -c 'warn' "$T/log")" 0 "no warning (nothing the dead letter refused)"
echo "$CHECKS checks passed"
