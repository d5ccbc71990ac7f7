#!/bin/bash
# sluice_end_to_end_latency_seconds measures the records a source read, not the records a stage
# made: a KPI row's timestamp is its window's start (here in 2024), which would put every KPI
# row years into the histogram.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir pl
: > k.ndjson
printf 'pipeline: k\nstages:\n  - {name: in, use: file-source, with: {path: %s/k.ndjson, follow: true}}\n  - {name: kpi, use: window-kpi, with: {windows: [1m], emit_interval: 20ms}}\n  - {name: out, use: file-sink, with: {path: %s/k-out.ndjson}}\n' "$T" "$T" > pl/k.yaml
start_sluice log.txt --rest 127.0.0.1:0 pl
wait_for state_is k RUNNING || fail "pipeline not running"
metric() { curl -s "$BASE/metrics" | awk -v s="$1" 'index($0, s) == 1 { v = $NF } END { print v + 0 }'; }
seq 1 200 | awk '{printf "{\"event_id\":\"e%d\",\"event_type\":\"page_view\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T12:00:%02dZ\"}\n", $1, $1 % 60}' >> k.ndjson
kpi_rows() { [ "$(grep -c '"window"' k-out.ndjson 2>/dev/null)" -ge 1 ] && [ "$(grep -c '"event_id"' k-out.ndjson)" -ge 200 ]; }
wait_for kpi_rows || fail "no KPI rows and events in the sink"
count_ge() { [ "$(metric 'sluice_end_to_end_latency_seconds_count{pipeline="k"}')" -ge 200 ]; }
wait_for count_ge || fail "the 200 events were not measured: $(curl -s "$BASE/metrics" | grep end_to_end)"
count=$(metric 'sluice_end_to_end_latency_seconds_count{pipeline="k"}')
sum=$(metric 'sluice_end_to_end_latency_seconds_sum{pipeline="k"}')
assert_eq "$count" 200 "only the 200 events a source read are measured, not the KPI rows"
assert_eq "$(python3 -c "print(int($sum / $count < 60))")" 1 "their latency is seconds, not years (mean $sum / $count s)"
echo "$CHECKS checks passed"
