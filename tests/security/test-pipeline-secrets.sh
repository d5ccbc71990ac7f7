#!/bin/bash
# Configuration never leaks secrets: ${VAR} is expanded only when a pipeline runs. GET
# /connectors/X/config, validate answers and error messages show the text as written, and a
# pipeline created over REST is not expanded at all (a literal ${X} stays literal).
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
export SEC_SECRET=hunter2-$$-topsecret
echo '{"n":1}' > in.ndjson
echo '{"n":1}' > data/in.ndjson
cat > op.yaml <<Y
pipeline: op
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, follow: true, topic: "\${SEC_SECRET}"}}
  - {name: out, use: file-sink, with: {path: op-out.ndjson, headers: true}}
Y
sec_start op.yaml
wait_for lines_eq "$T/op-out.ndjson" 1 || fail "the operator's pipeline did not run"
assert_contains "$(cat op-out.ndjson)" "\"topic\":\"$SEC_SECRET\"" "the operator's pipeline runs with \${VAR} expanded"

body=$(req GET /connectors/op/config)
case "$body" in *"$SEC_SECRET"*) fail "GET .../config shows the secret: $body" ;; esac
assert_contains "$body" '${SEC_SECRET}' "GET .../config shows the text as written"
body=$(req GET /connectors/op)
case "$body" in *"$SEC_SECRET"*) fail "GET /connectors/op shows the secret: $body" ;; esac
ok "GET /connectors/op shows no secret"

body=$(req PUT /connector-plugins/file-sink/config/validate '{"path": "x", "flush_interval": "${SEC_SECRET}"}')
case "$body" in *"$SEC_SECRET"*) fail "validate shows the secret: $body" ;; esac
assert_contains "$body" '${SEC_SECRET}' "validate shows the value as written"

# A pipeline created over REST: no expansion at all.
post_pipeline rest "$(file_pipeline '"path": "in.ndjson", "topic": "${SEC_SECRET}"' '"path": "rest-out.ndjson", "headers": true')"
assert_eq "$(code)" 201 "a REST pipeline with \${...} in a string is created"
wait_for lines_eq "$T/data/rest-out.ndjson" 1 || fail "the REST pipeline did not run"
out=$(cat data/rest-out.ndjson)
case "$out" in *"$SEC_SECRET"*) fail "a REST pipeline expanded an environment variable: $out" ;; esac
assert_contains "$out" '"topic":"${SEC_SECRET}"' "a REST pipeline keeps \${X} literal"

# REST error messages do not expand either.
post_pipeline bad "$(file_pipeline '"path": "in.ndjson", "max_line": "${SEC_SECRET}"' '"path": "o.ndjson"')"
assert_eq "$(code)" 400 "a bad value over REST is 400"
case "$(cat "$T/body")" in *"$SEC_SECRET"*) fail "a REST error shows the secret: $(cat "$T/body")" ;; esac
ok "a REST error message shows no secret"
stop_sluice

# A failed operator pipeline's error text is written after expansion (the path it could not open):
# status, open to readers without the token, leaves it out; with the token it is there.
cat > pdir/leak.yaml <<Y
pipeline: leak
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson}}
  - {name: out, use: file-sink, with: {path: "/nonexistent/\${SEC_SECRET}/out.ndjson"}}
Y
start_sluice "$T/log2.txt" -c "$T/host.yaml"
wait_for grep -q "pipeline=leak.*cannot open" "$T/log2.txt" || fail "the leaking pipeline did not fail"
for path in /connectors/leak/status /connectors/leak/tasks/0/status "/connectors?expand=status"; do
  body=$(TOKEN='' req GET "$path")
  case "$body" in *"$SEC_SECRET"*) fail "GET $path without the token shows the secret: $body" ;; esac
done
ok "status without the token shows no error text (it holds the expanded value)"
wait_for sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $BASE/connectors/leak/status | grep -q trace" ||
  fail "status with the token lost the error text: $(req GET /connectors/leak/status)"
ok "status with the token shows the error text"
# (A pipeline that cannot start makes the supervisor's exit code 2: not a failure here.)
kill -TERM "$SUP"; wait "$SUP" || true

# Operator files: an error message shows the value as written, not its expansion.
cat > bad.yaml <<Y
pipeline: bad
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, max_line: "\${SEC_SECRET}"}}
  - {name: out, use: file-sink, with: {path: o.ndjson}}
Y
out=$("$SLUICE" validate bad.yaml 2>&1)
case "$out" in *"$SEC_SECRET"*) fail "sluice validate shows the secret: $out" ;; esac
assert_contains "$out" '${SEC_SECRET}' "config errors show the text as written"
! grep -q "$SEC_SECRET" "$T/log.txt" || fail "the supervisor log shows the secret"
ok "the log shows no secret"
