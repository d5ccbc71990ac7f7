#!/bin/bash
# A stage's check callback (ABI 1.4) catches semantic errors before start, with file:line:column
# of the value to blame inside an SL_T_JSON setting: in `sluice validate`, in REST plugin
# validation, and on hot reload, where a definition that fails check is refused and the
# running pipeline keeps running.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
: > in.ndjson

# 1. sluice validate: a misspelt key deep inside pg-sink's `tables`.
cat > typo.yaml <<'Y'
pipeline: typo
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - name: out
    use: pg-sink
    with:
      tables:
        events:
          tabel: events_clean
          columns: {id: id}
Y
out=$("$SLUICE" validate typo.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "validate refuses a tables typo (exit 2)"
assert_contains "$out" "typo.yaml:9:11: stage 'out' (pg-sink): tables.events: unknown key 'tabel'" \
  "the error names file:line:column of the misspelt key"
sed -i 's/tabel:/table:/; s/{id: id}/{id: $parttion}/' typo.yaml
out=$("$SLUICE" validate typo.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "validate refuses an unknown attribute"
assert_contains "$out" "typo.yaml:10:11: stage 'out' (pg-sink): tables.events: columns: unknown attribute" \
  "the error points at the columns value"
sed -i 's/\$parttion/$partition/' typo.yaml
"$SLUICE" validate typo.yaml >out.txt 2>&1 || { cat out.txt; fail "the corrected pipeline does not validate"; }
ok "the corrected pipeline validates"

# 2. The validator's schema must load.
cat > v.yaml <<'Y'
pipeline: v
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - {name: check, use: validator, with: {schema: no-such-schema.yaml}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
out=$("$SLUICE" validate v.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "validate refuses a missing schema"
assert_contains "$out" "v.yaml:4:42: stage 'check' (validator): schema: " "the error points at the schema key"
assert_contains "$out" "no-such-schema.yaml: cannot open" "and says why"

# 3. REST plugin validation runs the check on the whole config.
mkdir pl
printf 'pipeline: y\nstages:\n  - {name: in, use: file-source, with: {path: %s/in.ndjson, follow: true}}\n  - {name: out, use: file-sink, with: {path: %s/out.ndjson}}\n' "$T" "$T" > pl/y.yaml
start_sluice log.txt --rest 127.0.0.1:0 pl
wait_for state_is y RUNNING || fail "pipeline y not running"
expect 200 PUT /connector-plugins/pg-sink/config/validate '{"tables": {"events": {"tabel": "x"}}}' "REST validate answers"
assert_eq "$(jget 'd["error_count"]')" 1 "REST validate counts the check's error"
assert_contains "$(jget '[c["value"]["errors"] for c in d["configs"] if c["value"]["name"]=="tables"][0]')" \
  "tables.events: unknown key 'tabel'" "the error is on the tables key"
expect 200 PUT /connector-plugins/pg-sink/config/validate '{"tables": {"events": {"table": "x"}}}' "REST validate answers"
assert_eq "$(jget 'd["error_count"]')" 0 "a correct config has no errors"

# 4. Hot reload: a definition that fails check is refused; the old pipeline keeps running.
echo '{"n":1}' >> in.ndjson
wait_for lines_eq out.ndjson 1 || fail "y does not copy"
pid_y=$(pid_of y)
printf 'pipeline: y\nstages:\n  - {name: in, use: file-source, with: {path: %s/in.ndjson, follow: true}}\n  - name: out\n    use: pg-sink\n    with: {tables: {events: {tabel: x}}}\n' "$T" > pl/y.yaml.new
mv pl/y.yaml.new pl/y.yaml
wait_for grep -q "new definition refused" log.txt || fail "the definition failing check was not refused"
ok "a definition failing check is refused"
req GET /connectors/y/status >/dev/null
assert_contains "$(jget 'd.get("reload_error","")')" "y.yaml:6:30: stage 'out' (pg-sink): tables.events: unknown key 'tabel'" \
  "status shows the check's error with its position"
assert_eq "$(pid_of y)" "$pid_y" "the old definition keeps running"
echo '{"n":2}' >> in.ndjson
wait_for lines_eq out.ndjson 2 || fail "old y stopped working"
ok "old y still consumes"
stop_sluice
echo "all check-hook checks passed ($CHECKS)"
