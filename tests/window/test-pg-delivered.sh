#!/bin/bash
# count_after: durable through a real PostgreSQL: file-source -> window (the reference KPIs,
# passthrough) -> pg-sink (events -> events_clean, KPI rows -> kpi_1m). PostgreSQL refuses some
# event rows (a check constraint); they go to the dead letter, and the KPIs must count exactly
# the events that are durable in events_clean — nothing refused counted, nothing durable lost.
# The same input with count_after: process counts the refused rows too (the check can fail).
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

{
    gen_events 0 500
    gen_events 500 1 | sed 's/"quantity":1/"quantity":0/'      # refused: check constraint
    gen_events 501 700
    gen_events 1201 1 | sed 's/"quantity":2/"quantity":0/'
    gen_events 1202 600
} >in.ndjson

kpi_stage() { # APPLY — the reference kpi stage, as one YAML flow line
    python3 - "$SLUICE_SOURCE_DIR/pipelines/ecommerce-analytics.yaml" "$1" <<'PY'
import json, sys, yaml
st = [s for s in yaml.safe_load(open(sys.argv[1]))["stages"] if s["name"] == "kpi"][0]
st["with"].update(windows=["1m"], allowed_lateness="0s", passthrough=True, close_on_end=True, count_after=sys.argv[2])
print("  - " + json.dumps(st))
PY
}
pipeline() { # NAME APPLY
    events_pipeline "$1" in.ndjson "      batch_size: 300" | sed "/^  - name: out/i\\
$(kpi_stage "$2" | sed 's/\\/\\\\/g')"
    cat <<YAML
        kpi_1m: {conflict: [window_start, source_topic, partition], on_conflict: update}
YAML
}
total() { sql "SELECT coalesce(sum(events), 0) || ' ' || coalesce(sum(orders), 0) FROM kpi_1m WHERE final"; }
clean() { sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE event_type = 'purchase') FROM events_clean"; }

pipeline delivered durable >p.yaml
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0 $(grep -m3 'level=error' "$T/log")"
assert_eq "$(wc -l <dlq.ndjson)" 2 "the two refused rows are dead letters"
assert_eq "$(clean)" "1800 360" "every other event is durable"
assert_eq "$(total)" "$(clean)" "count_after: durable: the KPIs count exactly the durable events"

sql "TRUNCATE events_clean, kpi_1m; DELETE FROM sluice_offsets" >/dev/null
rm -f dlq.ndjson
pipeline processed process >p.yaml
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0 (count_after: process)"
assert_eq "$(total)" "1802 360" "count_after: process counts the refused rows too: the check above can fail"
echo "$CHECKS checks passed"
