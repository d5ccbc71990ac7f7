#!/bin/bash
# errors.tolerance (Kafka Connect's errors.tolerance): a record nobody can take — rejected with
# no dead letter, or refused by the dead letter — stops the pipeline without committing past it
# (none, the default), or is dropped, counted and logged (all). And a stage that rejects or
# holds and then returns RETRY cannot finish a record twice. (`__pipeline` runs one pipeline
# process without a supervisor, which would restart a failed one.)
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
export SLUICE_PLUGIN_PATH="$TEST_STAGES:${SLUICE_PLUGIN_PATH:-}"
export SLUICE_STATE_DIR="$T/state"

printf '{"n":1}\nnot json\n{"n":2}\n' > in.ndjson # "not json" ends at byte 17

# 1. No dead letter, default tolerance: non-zero exit, the position and reason are logged, and
#    the committed offset stays before the record (the next run reads it again).
cat > none.yaml <<'Y'
pipeline: none
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: none.offset}}
  - {name: tagger, use: tag, with: {value: y}}
  - {name: out, use: file-sink, with: {path: none-out.ndjson}}
Y
rc=0; timeout 60 "$SLUICE" __pipeline none.yaml 2>log.txt || rc=$?
[ "$rc" -ne 0 ] || { cat log.txt; fail "a reject with no dead letter must stop the pipeline"; }
ok "no dead letter + tolerance none: the pipeline stops (exit $rc)"
assert_contains "$(cat log.txt)" "offset=17 cannot be placed (no dead_letter is configured): byte 0: unexpected 'n', expected a value" "the log names the record's position and reason"
off=$(cat none.offset 2>/dev/null || echo 0)
[ "$off" -le 8 ] || fail "committed offset $off passes the rejected record (ends at 17)"
ok "the committed offset ($off) does not pass the rejected record"

# 2. tolerance: all drops it, counts it (errors_dropped) and logs it; the rest passes.
cat > all.yaml <<'Y'
pipeline: all
errors: {tolerance: all}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: all.offset}}
  - {name: tagger, use: tag, with: {value: y}}
  - {name: out, use: file-sink, with: {path: all-out.ndjson}}
Y
SLUICE_STATUS_FD=3 timeout 60 "$SLUICE" __pipeline all.yaml 2>log.txt 3>status.jsonl || { cat log.txt; fail "tolerance all must not stop the pipeline"; }
assert_eq "$(cat all-out.ndjson)" $'{"n":1,"tag":"y"}\n{"n":2,"tag":"y"}' "tolerance all: the valid records pass"
assert_contains "$(cat log.txt)" "offset=17 dropped (no dead_letter is configured; errors.tolerance: all)" "the drop is logged"
python3 - status.jsonl <<'P' || fail "errors_dropped is not counted"
import json, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
tag = [s for s in last["stages"] if s["name"] == "tagger"][0]
assert [c["value"] for c in tag["counters"] if c["name"] == "errors_dropped"] == [1], tag
P
ok "the drop is counted (errors_dropped = 1)"
assert_eq "$(cat all.offset)" "25" "tolerance all: the offset passes the dropped record"

# 3. A dead letter that refuses a record: the pipeline stops without committing past it.
printf '{"n":1}\nnot json\nnot json either\n{"n":2}\n' > in2.ndjson
cat > refused.yaml <<'Y'
pipeline: refused
dead_letter: {use: refuse, with: {refuse_on: either, path: dlq.txt}}
stages:
  - {name: in, use: file-source, with: {path: in2.ndjson, offset_file: refused.offset}}
  - {name: tagger, use: tag, with: {value: y}}
  - {name: out, use: file-sink, with: {path: refused-out.ndjson}}
Y
rc=0; timeout 60 "$SLUICE" __pipeline refused.yaml 2>log.txt || rc=$?
[ "$rc" -ne 0 ] || { cat log.txt; fail "a refused dead letter must stop the pipeline"; }
ok "a dead letter that refuses stops the pipeline (exit $rc)"
assert_contains "$(cat log.txt)" "offset=33 cannot be placed (the dead letter refused it): refuse: cannot store this record" "the log names the refused record"
assert_eq "$(cat dlq.txt)" "not json" "the dead letter took the record it accepts"
off=$(cat refused.offset 2>/dev/null || echo 0)
[ "$off" -le 17 ] || fail "committed offset $off passes the refused record (ends at 33)"
ok "the committed offset ($off) does not pass the refused record"

# 4. Rejects made in a call that returns RETRY are taken back: each bad record reaches the
#    dead letter once, however often the batch is retried.
seq 1 300 | awk '{ if ($1 % 50 == 0) print "{\"bad\":" $1 "}"; else print "{\"n\":" $1 "}" }' > in3.ndjson
cat > retry-reject.yaml <<'Y'
pipeline: retry-reject
batch_size: 100
dead_letter: {use: file-sink, with: {path: rr-dlq.ndjson}}
stages:
  - {name: in, use: file-source, with: {path: in3.ndjson, offset_file: ""}}
  - {name: flaky, use: chaos, with: {fail_times: 3, reject_on: bad}}
  - {name: out, use: file-sink, with: {path: rr-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline retry-reject.yaml 2>log.txt || { cat log.txt; fail "retry-reject pipeline failed"; }
assert_eq "$(grep -c . rr-out.ndjson)" "294" "RETRY after rejects: every good record once"
assert_eq "$(cat rr-dlq.ndjson)" "$(grep bad in3.ndjson)" "RETRY after rejects: every bad record in the dead letter exactly once"

# 5. A hold in a call that returns RETRY cannot be taken back: the host refuses it.
cat > retry-hold.yaml <<'Y'
pipeline: retry-hold
batch_size: 100
stages:
  - {name: in, use: file-source, with: {path: in3.ndjson, offset_file: rh.offset}}
  - {name: flaky, use: chaos, with: {fail_times: 1, hold_before_fail: true}}
  - {name: out, use: file-sink, with: {path: rh-out.ndjson}}
Y
rc=0; timeout 60 "$SLUICE" __pipeline retry-hold.yaml 2>log.txt || rc=$?
[ "$rc" -ne 0 ] || { cat log.txt; fail "hold + RETRY must stop the pipeline"; }
assert_contains "$(cat log.txt)" "held 1 input records and then returned RETRY" "hold + RETRY is refused with a clear error"
[ ! -s rh.offset ] || [ "$(cat rh.offset)" = 0 ] || fail "hold + RETRY committed $(cat rh.offset)"
ok "hold + RETRY commits nothing"
# 6. While a stage retries, a source that can pause is paused and still polled (a Kafka member
#    that stops polling is evicted); afterwards it resumes, and nothing is lost or duplicated.
cat > keep-polling.yaml <<'Y'
pipeline: keep-polling
batch_size: 50
stages:
  - {name: in, use: ticker, with: {count: 500}}
  - {name: flaky, use: chaos, with: {fail_times: 3}}
  - {name: out, use: file-sink, with: {path: kp-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline keep-polling.yaml 2>log.txt || { cat log.txt; fail "keep-polling pipeline failed"; }
polls=$(sed -n 's/.*polled \([0-9]*\) times while paused.*/\1/p' log.txt)
[ "${polls:-0}" -ge 3 ] || { cat log.txt; fail "the source was polled ${polls:-0} times while the stage retried (700 ms)"; }
ok "the paused source kept being polled while the stage retried ($polls polls)"
assert_eq "$(cat kp-out.ndjson)" "$(seq 1 500 | awk '{print "{\"n\":" $1 "}"}')" "after the retries: every record once, in order"

# 7. A source that hands over records while paused: they wait and go through once.
sed 's/count: 500}/count: 500, ignore_pause: true}/; s/kp-out/kp2-out/' keep-polling.yaml > keep-polling2.yaml
timeout 60 "$SLUICE" __pipeline keep-polling2.yaml 2>log.txt || { cat log.txt; fail "keep-polling2 pipeline failed"; }
assert_eq "$(sort -t: -k2 -n kp2-out.ndjson)" "$(seq 1 500 | awk '{print "{\"n\":" $1 "}"}')" "records handed over during retries: every one once"
# 8. A rebalance while a stage retries (the revoke comes from the keep-alive poll): nothing can
#    be drained, so the revoked partition's tokens are detached — they neither block nor commit —
#    and the reassigned partition commits its new records.
sed 's/count: 500}/count: 500, rebalance: true, commit_file: kp3-commits.txt}/; s/kp-out/kp3-out/' keep-polling.yaml > keep-polling3.yaml
timeout 60 "$SLUICE" __pipeline keep-polling3.yaml 2>log.txt || { cat log.txt; fail "rebalance-while-retrying pipeline failed"; }
assert_contains "$(cat log.txt)" "revoked ticks[0] with 50 records unfinished: they will not be committed here" "the revoke detaches the batch in retry"
assert_eq "$(grep -c . kp3-out.ndjson)" "500" "every record reaches the sink"
python3 - kp3-commits.txt <<'P' || fail "commits after the rebalance are wrong"
import sys
c = [int(l) for l in open(sys.argv[1])]
assert c and c[-1] == 500, c[-5:]
assert all(x > 50 for x in c), c[:5]   # the detached batch (offsets 1..50) never commits
assert c == sorted(c), c
P
ok "after the rebalance only the new owner's positions commit (none of the detached batch), up to 500"
echo "all error-tolerance checks passed ($CHECKS)"
