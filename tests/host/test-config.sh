#!/bin/bash
# Config errors name file:line:column and exit 2; interpolation; valid files round-trip.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
printf '{"a":1}\n' > in.ndjson

# expect_error FILE EXPECTED_PREFIX MESSAGE_PART
expect_error() {
  local out rc
  out=$("$SLUICE" validate "$1" 2>&1); rc=$?
  assert_eq "$rc" 2 "$1 exits 2"
  assert_contains "$out" "$2" "$1 names the place"
  assert_contains "$out" "$3" "$1 says what is wrong"
}

cat > unknown-key.yaml <<'Y'
pipeline: p
stages:
  - name: in
    use: file-source
    with:
      path: in.ndjson
      folow: true
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error unknown-key.yaml "unknown-key.yaml:7:7:" "unknown key 'folow' (did you mean 'follow'?)"
assert_contains "$("$SLUICE" validate unknown-key.yaml 2>&1)" "stage 'in' (file-source)" "error names the stage"

cat > wrong-type.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, follow: maybe}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error wrong-type.yaml "wrong-type.yaml:3:66:" "'follow' must be true or false, not 'maybe'"

cat > range.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, max_line: 10}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error range.yaml "range.yaml:3:68:" "'max_line' = 10 is out of range"

cat > missing.yaml <<'Y'
pipeline: p
stages:
  - name: in
    use: file-source
    with:
      follow: false
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error missing.yaml "missing.yaml:6:7:" "missing required key 'path'"

cat > enum.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson, mode: overwrite}}
Y
expect_error enum.yaml "enum.yaml:4:64:" "'mode' must be one of append|truncate, not 'overwrite'"

cat > duration.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson, flush_interval: 5 parsecs}}
Y
expect_error duration.yaml "duration.yaml:4:74:" "'flush_interval' must be a duration"

cat > unknown-stage.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-sorce, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error unknown-stage.yaml "unknown-stage.yaml:3:21:" "unknown stage 'file-sorce' (did you mean 'file-source'?)"

cat > kinds.yaml <<'Y'
pipeline: p
stages:
  - {name: out, use: file-sink, with: {path: out.ndjson}}
  - {name: in, use: file-source, with: {path: in.ndjson}}
Y
expect_error kinds.yaml "kinds.yaml:3:5:" "is a sink, but the first stage must be a source"

cat > top.yaml <<'Y'
pipeline: p
stage:
  - {name: in, use: file-source, with: {path: in.ndjson}}
Y
expect_error top.yaml "top.yaml:2:1:" "unknown key 'stage' (did you mean 'stages'?)"

printf 'pipeline: p\nstages: [\n  {name: in\n' > syntax.yaml
expect_error syntax.yaml "syntax.yaml:" "YAML syntax error"

cat > unset.yaml <<'Y'
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: "${SLUICE_TEST_UNSET_VAR}"}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
unset SLUICE_TEST_UNSET_VAR
expect_error unset.yaml "unset.yaml:3:47:" "environment variable SLUICE_TEST_UNSET_VAR is not set"

cat > dup.yaml <<'Y'
pipeline: p
pipeline: q
stages: []
Y
expect_error dup.yaml "dup.yaml:2:1:" "duplicate key 'pipeline'"

cat > tasks.yaml <<'Y'
pipeline: p
tasks: 2
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
expect_error tasks.yaml "tasks.yaml:4:5:" "cannot run in more than one task"

# Interpolation: ${VAR}, ${VAR:-default}, and a valid file that round-trips.
cat > good.yaml <<'Y'
pipeline: good
tasks: 1
batch_size: 500
commit_interval: 2s
dead_letter: {use: file-sink, with: {path: "${DLQ_DIR:-.}/dlq.ndjson", headers: true}}
stages:
  - {name: in, use: file-source, with: {path: "${IN_FILE}", max_line: 64KiB}}
  - {name: out, use: file-sink, with: {path: out.ndjson, flush_interval: 250ms}}
Y
out=$(IN_FILE=in.ndjson "$SLUICE" validate good.yaml 2>&1); rc=$?
assert_eq "$rc" 0 "valid file validates"
assert_contains "$out" "good.yaml: ok (pipeline good: 2 stages" "validate reports the pipeline"
IN_FILE=in.ndjson "$SLUICE" run good.yaml 2>/dev/null
assert_eq "$(cat out.ndjson)" '{"a":1}' "interpolated path was read"
out=$("$SLUICE" validate good.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "unset IN_FILE is an error"

# run refuses a bad file before starting anything: a good pipeline given with it does not run.
rm -f out.ndjson
out=$(IN_FILE=in.ndjson "$SLUICE" run good.yaml wrong-type.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "run with one bad file exits 2"
[ ! -e out.ndjson ] || fail "the good pipeline ran although another file was bad"
ok "nothing started"
echo "all config checks passed ($CHECKS)"
