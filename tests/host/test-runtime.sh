#!/bin/bash
# The runtime: 1,000,000 lines through an example stage arrive complete and in order; RETRY
# loses and duplicates nothing; rejected records reach the dead letter with their reason.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
export SLUICE_PLUGIN_PATH="$TEST_STAGES:${SLUICE_PLUGIN_PATH:-}"

seq 1 1000000 | awk '{print "{\"n\":" $1 "}"}' > in.ndjson
cat > big.yaml <<'Y'
pipeline: big
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: ""}}
  - {name: tag, use: tag, with: {value: x}}
  - {name: out, use: file-sink, with: {path: out.ndjson, mode: truncate}}
Y
start=$(date +%s.%N)
"$SLUICE" run big.yaml 2>log.txt || { cat log.txt; fail "big pipeline failed"; }
end=$(date +%s.%N)
seq 1 1000000 | awk '{print "{\"n\":" $1 ",\"tag\":\"x\"}"}' > expected.ndjson
assert_file_eq out.ndjson expected.ndjson "1,000,000 records complete, tagged and in order"
echo "figure: file-source -> tag -> file-sink: 1000000 records in $(echo "$end - $start" | bc) s"

# RETRY twice, then succeed: nothing lost, nothing duplicated (the stage emits before failing,
# so the host must discard those emissions).
seq 1 5000 | awk '{print "{\"n\":" $1 "}"}' > small.ndjson
cat > retry.yaml <<'Y'
pipeline: retry
batch_size: 100
stages:
  - {name: in, use: file-source, with: {path: small.ndjson, offset_file: ""}}
  - {name: flaky, use: chaos, with: {fail_times: 2}}
  - {name: out, use: file-sink, with: {path: retry-out.ndjson, mode: truncate}}
Y
"$SLUICE" run retry.yaml 2>log.txt || { cat log.txt; fail "retry pipeline failed"; }
assert_file_eq retry-out.ndjson small.ndjson "RETRY twice: output equals input exactly"
assert_contains "$(cat log.txt)" "failed transiently; retrying" "retries are logged"

# Rejected records land in the dead letter with stage and reason headers.
printf '{"n":1}\nnot json\n[1,2]\n{"n":2}\n' > mixed.ndjson
cat > dlq.yaml <<'Y'
pipeline: dlq
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true, mode: truncate}}
stages:
  - {name: in, use: file-source, with: {path: mixed.ndjson, offset_file: "", topic: events}}
  - {name: tagger, use: tag, with: {value: y}}
  - {name: out, use: file-sink, with: {path: good.ndjson, mode: truncate}}
Y
"$SLUICE" run dlq.yaml 2>log.txt || { cat log.txt; fail "dlq pipeline failed"; }
assert_eq "$(cat good.ndjson)" $'{"n":1,"tag":"y"}\n{"n":2,"tag":"y"}' "valid records pass"
python3 - dlq.ndjson <<'P' || fail "dead letters are wrong"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["value"] for r in rows] == ["not json", "[1,2]"], rows
for r in rows:
    assert r["headers"]["sluice.error.stage"] == "tagger", r
    assert r["topic"] == "events" and r["partition"] == 0, r
assert rows[0]["headers"]["sluice.error.reason"] == "byte 0: unexpected 'n', expected a value", rows[0]
assert rows[1]["headers"]["sluice.error.reason"] == "value is not a JSON object", rows[1]
P
ok "dead letters carry the original value, stage and reason"
echo "all runtime checks passed ($CHECKS)"
