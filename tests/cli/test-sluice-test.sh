#!/usr/bin/env bash
# `sluice test` itself: passing and failing cases, the diff, exit codes, --json, errors in test
# files with file:line:column, a pipeline file's own tests: section, input files and steps.
. "$(dirname "$0")/../lib/testlib.sh"
D="$SRC/tests/cli/data"

out=$("$SLUICE" test "$D/ok" 2>"$T/err"); rc=$?
assert_eq "$rc" 0 "passing cases exit 0 (stderr: $(cat "$T/err"))"
assert_contains "$out" "PASS  $D/ok/dedup-pipeline.yaml:8  inline records" "a pipeline file's tests: section runs"
assert_contains "$out" "5 passed, 0 failed" "every case of the directory ran (recursively found)"

out=$("$SLUICE" test "$D/failing" 2>"$T/err"); rc=$?
assert_eq "$rc" 1 "a failing case exits 1"
assert_contains "$out" "PASS  $D/failing/failing_test.yaml:3  passes" "the passing case passes"
assert_contains "$out" "FAIL  $D/failing/failing_test.yaml:6  wrong expectations" "the failing case fails, with file:line"
assert_contains "$out" "expect.count: expected 3 records, got 2" "the count check says what differs"
assert_contains "$out" '        - {"value":{"id":3}}
        + {"value":{"id":2}}' "the diff shows expected (-) and actual (+) cut to the compared fields"
assert_contains "$out" "(record #1 as expected)" "records that match are named, not repeated"
assert_contains "$out" '- {"reason":"nope"}' "a missing dead letter shows in the diff"
assert_contains "$out" "1 passed, 1 failed" "the summary counts"

json=$("$SLUICE" test --json "$D/failing" "$D/ok" 2>"$T/err"); rc=$?
assert_eq "$rc" 1 "--json: still exit 1 on a failure"
python3 - "$json" <<'PY' || fail "--json shape"
import json, sys
r = json.loads(sys.argv[1])
assert set(r) == {"passed", "failed", "bad_files", "errors", "duration_ms", "cases"}, r.keys()
assert r["errors"] == []
assert (r["passed"], r["failed"], r["bad_files"]) == (6, 1, 0), r
f = [c for c in r["cases"] if c["status"] == "fail"]
assert len(f) == 1 and f[0]["name"] == "wrong expectations" and f[0]["line"] == 6, f
assert f[0]["file"].endswith("failing/failing_test.yaml")
checks = {x["check"]: x for x in f[0]["failures"]}
assert set(checks) == {"expect.count", "expect.fields", "dead_letter.contains"}, checks
assert checks["expect.count"]["expected"] == 3 and len(checks["expect.count"]["actual"]) == 2
assert checks["expect.fields"]["expected"] == [{"value": {"id": 1}}, {"value": {"id": 3}}]
assert checks["expect.fields"]["actual"] == [{"value": {"id": 1}}, {"value": {"id": 2}}]
for c in r["cases"]:
    assert set(c) == {"file", "line", "name", "status", "duration_ms", "failures"}, c.keys()
PY
ok "--json: counts, cases, failures with check, message, expected and actual"

out=$("$SLUICE" test "$D/bad/typo_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 2 "a bad test file exits 2"
assert_contains "$out" "$D/bad/typo_test.yaml:8:14: unknown key 'cuont' in expect" "the error names file:line:column"
json=$("$SLUICE" test --json "$D/bad/typo_test.yaml" 2>/dev/null); rc=$?
assert_eq "$rc" 2 "--json: a bad test file exits 2"
assert_contains "$json" '"bad_files":1,"errors":["'"$D"'/bad/typo_test.yaml:8:14: unknown key' "--json lists the error with file:line:column"
out=$("$SLUICE" test "$D/bad/range_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 2 "an unknown stage in stages: exits 2"
assert_contains "$out" "range_test.yaml:2:9: 'nosuch' is not a transform of pipeline cli-dedup (its transforms: dedup)" "and names the stage and the transforms"
cat >"$T/step_test.yaml" <<YAML
pipeline: $D/ok/dedup-pipeline.yaml
cases:
  - name: two things in one step
    steps: [{assign: [{partition: 0}], advance: 1s}]
    expect: {count: 0}
YAML
out=$("$SLUICE" test "$T/step_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 2 "a step doing two things exits 2"
assert_contains "$out" "step_test.yaml:4:13: a step is one of: input (and/or input_file), advance, flush, assign (with restore), revoke" "naming the step"
out=$("$SLUICE" test "$T/nothing" 2>&1); rc=$?
assert_eq "$rc" 2 "a missing path exits 2"
mkdir "$T/empty"
out=$("$SLUICE" test "$T/empty" 2>&1); rc=$?
assert_eq "$rc" 2 "a directory without tests exits 2"
assert_contains "$out" "no test files found" "and says so"

# A stage that fails (a pipeline that does not load) is a failing case, not a crash.
cat >"$T/broken_test.yaml" <<YAML
pipeline: $D/ok/missing.yaml
cases:
  - {name: no pipeline, input: [{value: 1}], expect: {count: 1}}
YAML
out=$("$SLUICE" test "$T/broken_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 1 "a pipeline that does not load fails its cases"
assert_contains "$out" "pipeline: the pipeline does not load" "with the loader's reason"
# Rejects as in a run: without a dead_letter, errors.tolerance decides.
cat >"$T/nodlq.yaml" <<YAML
pipeline: nodlq
stages:
  - {name: in, use: file-source, with: {path: /nonexistent}}
  - {name: validate, use: validator, with: {schema: $SRC/pipelines/ecommerce-event.schema.yaml}}
  - {name: out, use: file-sink, with: {path: /nonexistent}}
tests:
  - name: a reject
    input: [{value: {event_id: 1}}]
    expect: {count: 0}
    dead_letter: {count: 0}
YAML
out=$("$SLUICE" test "$T/nodlq.yaml" 2>/dev/null); rc=$?
assert_eq "$rc" 1 "tolerance none, no dead letter: a reject fails the case"
assert_contains "$out" "nodlq.yaml:8:12: the pipeline failed at this step: validate: record at topic=test partition=0 offset=0 cannot be placed (no dead_letter is configured)" "saying where and why"
sed -i 's/^pipeline: nodlq/pipeline: nodlq\nerrors: {tolerance: all}/' "$T/nodlq.yaml"
out=$("$SLUICE" test "$T/nodlq.yaml" 2>/dev/null); rc=$?
assert_eq "$rc" 0 "tolerance all: the reject is dropped, as in a run: $out"

# Conditions in the expression language (plugins/common/sl_expr).
out=$("$SLUICE" test "$D/expr" 2>&1); rc=$?
assert_eq "$rc" 0 "where: and all: conditions pass: $out"
cat >"$T/expr_test.yaml" <<YAML
pipeline: $D/ok/dedup-pipeline.yaml
cases:
  - name: all fails
    input: [{value: {id: 1, amount: 5}}, {value: {id: 2, amount: -3}}]
    expect: {all: "amount > 0"}
  - name: a bad condition
    input: [{value: 1}]
    expect: {where: "amount >> 0"}
YAML
out=$("$SLUICE" test "$T/expr_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 2 "a condition that does not compile: exit 2"
assert_contains "$out" "expr_test.yaml:8:30: unexpected '>'" "at the file:line:column of the mistake"
sed -i '6,8d' "$T/expr_test.yaml"
out=$("$SLUICE" test "$T/expr_test.yaml" 2>&1); rc=$?
assert_eq "$rc" 1 "all: a record that does not satisfy it fails the case"
assert_contains "$out" "expect.all: 1 of 2 records do not satisfy: amount > 0" "naming the count"
assert_contains "$out" '+ {"key":null,"value":{"id":2,"amount":-3}' "and showing the record"
echo "all $CHECKS checks passed"
