#!/bin/bash
# /metrics parses with promtool, counters move as records flow and survive a pipeline restart;
# hot reload (inotify on the pipeline directory, SIGHUP) restarts only the changed pipeline,
# and an invalid new definition is refused while the old one keeps running.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir pl
: > x.ndjson; : > y.ndjson
def() { # NAME SINK
  printf 'pipeline: %s\nstages:\n  - {name: in, use: file-source, with: {path: %s/%s.ndjson, follow: true}}\n  - {name: out, use: file-sink, with: {path: %s/%s}}\n' "$1" "$T" "$1" "$T" "$2"
}
def x x-out.ndjson > pl/x.yaml
def y y-out.ndjson > pl/y.yaml
start_sluice log.txt --rest 127.0.0.1:0 pl
wait_for state_is x RUNNING && wait_for state_is y RUNNING || fail "pipelines not running"

metric() { # SERIES-PREFIX -> value (0 when absent)
  curl -s "$BASE/metrics" | awk -v s="$1" 'index($0, s) == 1 { v = $NF } END { print v + 0 }'
}
counter_ge() { [ "$(metric "$1")" -ge "$2" ]; }

seq 1 300 | awk '{print "{\"x\":" $1 "}"}' >> x.ndjson
wait_for lines_eq x-out.ndjson 300 || fail "x did not copy"
wait_for counter_ge 'sluice_records_in_total{pipeline="x",stage="out",task="0"}' 300 || fail "counter did not reach 300: $(curl -s "$BASE/metrics" | grep records_in)"
ok "records_in counter moved with the records"
curl -s "$BASE/metrics" > m.txt
if command -v promtool >/dev/null; then
  promtool check metrics < m.txt > promtool.txt 2>&1 || { cat promtool.txt; fail "promtool check metrics"; }
  ok "promtool check metrics passes"
else
  fail "promtool not installed (Debian package prometheus, see scripts/packages.txt)"
fi
assert_contains "$(cat m.txt)" 'sluice_batch_duration_seconds_bucket{pipeline="x",stage="out",le="+Inf"}' "batch latency histogram"
assert_contains "$(cat m.txt)" 'sluice_end_to_end_latency_seconds_count{pipeline="x"}' "end-to-end latency histogram"
assert_contains "$(cat m.txt)" 'sluice_pipeline_state{pipeline="x",state="RUNNING"} 1' "state gauge"

# Counters survive a restart of the pipeline (kept by the supervisor).
pid_x=$(pid_of x)
expect 204 POST /connectors/x/restart "restart x"
wait_for sh -c "[ \"\$(curl -s $BASE/connectors/x/status | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"pid\"])')\" != $pid_x ]" || fail "x not restarted"
seq 301 400 | awk '{print "{\"x\":" $1 "}"}' >> x.ndjson
wait_for lines_eq x-out.ndjson 400 || fail "x did not copy after its restart"
wait_for counter_ge 'sluice_records_in_total{pipeline="x",stage="out",task="0"}' 400 || fail "counter restarted from zero: $(metric 'sluice_records_in_total{pipeline="x",stage="out"')"
ok "counters survive a pipeline restart"
assert_eq "$(metric 'sluice_pipeline_restarts_total{pipeline="x"}')" 1 "restarts counted"

# Hot reload by inotify: only the changed pipeline restarts.
pid_x=$(pid_of x); pid_y=$(pid_of y)
def y y-out2.ndjson > pl/y.yaml.new && mv pl/y.yaml.new pl/y.yaml
wait_for sh -c "! curl -s $BASE/connectors/y/status | grep -q '\"pid\":$pid_y,'" || fail "y was not restarted on change"
ok "changed pipeline y restarted"
echo '{"y":1}' >> y.ndjson
wait_for lines_eq y-out2.ndjson 1 || fail "y does not run its new definition"
ok "y runs the new definition"
assert_eq "$(pid_of x)" "$pid_x" "unchanged pipeline x kept its process"

# An invalid definition is refused; the old one keeps running.
pid_y=$(pid_of y)
printf 'pipeline: y\nstages:\n  - {name: in, use: file-source, with: {pth: nope}}\n  - {name: out, use: file-sink, with: {path: z}}\n' > pl/y.yaml
wait_for grep -q "new definition refused" log.txt || fail "invalid definition not reported"
ok "invalid definition refused with the error"
req GET /connectors/y/status >/dev/null
assert_contains "$(jget 'd.get("reload_error","")')" "unknown key 'pth'" "status shows the refused definition's error"
assert_eq "$(pid_of y)" "$pid_y" "the old definition keeps running"
echo '{"y":2}' >> y.ndjson
wait_for lines_eq y-out2.ndjson 2 || fail "old y stopped working"
ok "old y still consumes"

# SIGHUP with nothing changed restarts nothing; a new file adds a pipeline.
def y y-out2.ndjson > pl/y.yaml   # back to the running definition: no restart
sleep 0.5
kill -HUP "$SUP"
wait_for grep -q "SIGHUP: reloading" log.txt || fail "SIGHUP not handled"
: > w.ndjson
def w w-out.ndjson > pl/w.yaml
wait_for state_is w RUNNING || fail "new file did not add a pipeline"
ok "a new file adds a pipeline"
assert_eq "$(pid_of x)" "$pid_x" "x untouched by SIGHUP"
assert_eq "$(pid_of y)" "$pid_y" "y untouched when its file returned to the running definition"
rm pl/w.yaml
wait_for sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $TOKEN' $BASE/connectors/w)\" = 404 ]" || fail "removed file's pipeline still there"
ok "removing a file stops its pipeline"
stop_sluice
echo "all metrics and reload checks passed ($CHECKS)"
