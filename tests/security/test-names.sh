#!/bin/bash
# Names are data: pipeline and stage names match [A-Za-z0-9][A-Za-z0-9._-]{0,63}. A long or
# newline-carrying name is a config error with file:line:column (400 over REST), and no name can
# forge a log line or crash the logger (a 4 KB stage name overflowed its buffer).
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
echo '{"n":1}' > in.ndjson
long=$(printf 'x%.0s' $(seq 1 4096))
cat > long.yaml <<Y
pipeline: longstage
stages:
  - {name: $long, use: file-source, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
out=$("$SLUICE" run --no-rest long.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "a 4 KB stage name is a config error"
assert_contains "$out" "long.yaml:3:12: stage name is invalid" "the error names file:line:column"
[ "$(printf '%s' "$out" | wc -L)" -le 4096 ] || fail "a log line is longer than 4096 bytes"
ok "no line longer than 4096 bytes"

printf 'pipeline: nl\nstages:\n  - {name: "a\\nts=2020-01-01T00:00:00Z level=error msg=forged", use: file-source, with: {path: in.ndjson}}\n  - {name: out, use: file-sink, with: {path: out.ndjson}}\n' > nl.yaml
out=$("$SLUICE" run --no-rest nl.yaml 2>&1); rc=$?
assert_eq "$rc" 2 "a stage name with a newline is a config error"
assert_contains "$out" "nl.yaml:3:12:" "the error names file:line:column"
printf '%s\n' "$out" | grep -q '^ts=2020-01-01T00:00:00Z' && fail "a forged log line appeared"
ok "no forged log line"

printf 'pipeline: "bad name"\nstages:\n  - {name: in, use: file-source, with: {path: in.ndjson}}\n  - {name: out, use: file-sink, with: {path: out.ndjson}}\n' > sp.yaml
out=$("$SLUICE" validate sp.yaml 2>&1)
assert_contains "$out" "sp.yaml:1:11: pipeline name is invalid" "a pipeline name with a space is refused"
printf 'pipeline: %s\nstages:\n  - {name: in, use: file-source, with: {path: in.ndjson}}\n  - {name: out, use: file-sink, with: {path: out.ndjson}}\n' "$(printf 'p%.0s' $(seq 1 65))" > p65.yaml
out=$("$SLUICE" validate p65.yaml 2>&1)
assert_contains "$out" "pipeline name is invalid" "a 65-character pipeline name is refused"

sec_start
echo '{"n":1}' > data/in.ndjson
post_pipeline "$long" "$(file_pipeline '"path": "in.ndjson"' '"path": "o.ndjson"')"
assert_eq "$(code)" 400 "a 4 KB connector name over REST is 400"
req POST /connectors "{\"name\": \"a\\nlevel=error\", \"config\": $(file_pipeline '"path": "in.ndjson"' '"path": "o.ndjson"')}" >/dev/null
assert_eq "$(code)" 400 "a connector name with a newline over REST is 400"
cfg="{\"stages\": [{\"name\": \"$long\", \"use\": \"file-source\", \"with\": {\"path\": \"in.ndjson\"}}, {\"name\": \"out\", \"use\": \"file-sink\", \"with\": {\"path\": \"o.ndjson\"}}]}"
post_pipeline okname "$cfg"
assert_eq "$(code)" 400 "a 4 KB stage name over REST is 400"
assert_contains "$(cat "$T/body")" "stage name is invalid" "the REST error says why"
[ "$(wc -L < "$T/log.txt")" -le 4096 ] || fail "the supervisor logged a line longer than 4096 bytes"
ok "the supervisor's lines stay within 4096 bytes"
stop_sluice
