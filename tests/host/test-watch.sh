#!/bin/bash
# api->watch / on_finished (ABI 1.2) through window-kpi (count_after: durable) with a sink that
# refuses some events (the `refuse` test sink; its refusals go to the dead letter):
#  1. one window-kpi: its KPIs count exactly the events the sink kept;
#  2. two window-kpi stages in a row (both watch the same record: the second re-anchors the
#     first's watched token): a refusal of the sink must still reach the FIRST stage's
#     on_finished as "rejected", so its KPIs also leave the refused events out;
#  3. a later transform rejects the watched record (after failing with RETRY first);
#  4. watch, then RETRY, stops the pipeline as a hold does.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
export SLUICE_PLUGIN_PATH="$TEST_STAGES:${SLUICE_PLUGIN_PATH:-}"

# 600 events over 10 minutes of event time; every 10th is refused by the sink (60).
python3 - > in.ndjson <<'P'
import json
from datetime import datetime, timezone
base = 1714521600000
for i in range(600):
    ts = datetime.fromtimestamp((base + i * 1000) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    eid = "e%d%s" % (i, "-REFUSE" if i % 10 == 3 else "")
    print(json.dumps({"event_id": eid, "event_type": "page_view", "user_id": "u%d" % (i % 7),
                      "ts": ts, "window_start": ts}))
P

# sum of `events` over the last record of every window of size $2 in file $1
kpi_sum() {
    python3 - "$1" "$2" <<'P'
import json, sys
last = {}
for line in open(sys.argv[1]):
    try: v = json.loads(line)
    except ValueError: continue
    if isinstance(v, dict) and v.get("window") == sys.argv[2]:
        last[v["window_start"]] = v["events"]
print(sum(last.values()))
P
}

# 1. One watcher.
cat > one.yaml <<'Y'
pipeline: watch-one
commit_interval: 20ms
dead_letter: {use: file-sink, with: {path: one-dlq.ndjson}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: one.offset}}
  - {name: kpi, use: window-kpi, with: {windows: [1m], emit_interval: 1h, close_on_end: true}}
  - {name: out, use: refuse, with: {refuse_on: REFUSE, path: one-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline one.yaml 2>log1.txt || { cat log1.txt; fail "watch-one failed"; }
assert_eq "$(grep -c REFUSE one-dlq.ndjson)" 60 "the 60 refused events are in the dead letter"
assert_eq "$(kpi_sum one-out.ndjson 1m)" 540 "one window-kpi counts only the 540 events the sink kept"
# The drain (close_on_end) waits for the pending inputs, then closes every window once: each of
# the 10 windows has exactly one final record, revision 0, holding all its kept events.
assert_eq "$(python3 - one-out.ndjson <<'P2'
import json, sys
finals = {}
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v.get("window") == "1m" and v["final"]:
        finals.setdefault(v["window_start"], []).append((v["revision"], v["events"]))
print(len(finals), sorted(set(tuple(f) for f in finals.values())))
P2
)" "10 [((0, 54),)]" "every window closes once (revision 0, 54 kept events), none re-opened"

# 2. Two watchers in a row; the second counts on window_start (present in events and in the
#    first stage's KPI records alike), in 15m windows so their records are told apart.
cat > two.yaml <<'Y'
pipeline: watch-two
commit_interval: 20ms
dead_letter: {use: file-sink, with: {path: two-dlq.ndjson}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: two.offset}}
  - {name: a, use: window-kpi, with: {windows: [1m], emit_interval: 1h, close_on_end: true, topic_prefix: a_}}
  - {name: b, use: window-kpi, with: {windows: [15m], emit_interval: 1h, close_on_end: true, topic_prefix: b_, time_field: window_start}}
  - {name: out, use: refuse, with: {refuse_on: REFUSE, path: two-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline two.yaml 2>log2.txt || { cat log2.txt; fail "watch-two failed"; }
assert_eq "$(grep -c REFUSE two-dlq.ndjson)" 60 "the 60 refused events are in the dead letter"
assert_eq "$(kpi_sum two-out.ndjson 1m)" 540 \
    "the first of two window-kpi stages hears of the sink's refusals too (counts 540, not 600)"
# 3. A later transform rejects the watched record (in calls that first fail with RETRY three
#    times: the rejects of a failed call are taken back, so each is decided, and heard, once).
cat > three.yaml <<'Y'
pipeline: watch-three
commit_interval: 20ms
dead_letter: {use: file-sink, with: {path: three-dlq.ndjson}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: three.offset}}
  - {name: kpi, use: window-kpi, with: {windows: [1m], emit_interval: 1h, close_on_end: true}}
  - {name: later, use: chaos, with: {reject_on: REFUSE, fail_times: 3}}
  - {name: out, use: file-sink, with: {path: three-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline three.yaml 2>log3.txt || { cat log3.txt; fail "watch-three failed"; }
assert_eq "$(grep -c REFUSE three-dlq.ndjson)" 60 "the 60 events the later stage rejected are in the dead letter, once"
assert_eq "$(kpi_sum three-out.ndjson 1m)" 540 "window-kpi leaves out the events a later transform rejected"
# 4. A stage that watches and then returns RETRY: like a hold, the host stops the pipeline (a
#    retry could finish the record twice) and commits nothing.
cat > four.yaml <<'Y'
pipeline: watch-four
batch_size: 100
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: four.offset}}
  - {name: flaky, use: chaos, with: {fail_times: 1, watch_before_fail: true}}
  - {name: out, use: file-sink, with: {path: four-out.ndjson}}
Y
rc=0; timeout 60 "$SLUICE" __pipeline four.yaml 2>log4.txt || rc=$?
[ "$rc" -ne 0 ] || { cat log4.txt; fail "watch + RETRY must stop the pipeline"; }
assert_contains "$(cat log4.txt)" "held 1 input records and then returned RETRY" "watch + RETRY is refused with a clear error"
[ ! -s four.offset ] || [ "$(cat four.offset)" = 0 ] || fail "watch + RETRY committed $(cat four.offset)"
ok "watch + RETRY commits nothing"
echo "$CHECKS checks passed"
