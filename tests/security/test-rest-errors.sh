#!/bin/bash
# A client error is a 4xx, never a 500, and is checked before anything is stored (issue 10):
# every REST route with bad JSON, wrong types, unknown connectors or plugins, bad names, bad
# methods — against `sluice run` started with no flags (REST-created pipelines go to the state
# directory), with a valid token, so each answer comes from the route itself.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
: > in.ndjson
good='{"stages":[{"name":"in","use":"file-source","with":{"path":"'$T'/in.ndjson","follow":true}},{"name":"out","use":"file-sink","with":{"path":"'$T'/out.ndjson"}}]}'
start_sluice log.txt
expect 201 POST /connectors "{\"name\":\"ok\",\"config\":$good}" "a valid pipeline is created (state directory, no flags)"

cases=(
  # METHOD|PATH|BODY
  'POST|/connectors|'
  'POST|/connectors|{'
  'POST|/connectors|{"name":"x","config":{"stages":[}'
  'POST|/connectors|null'
  'POST|/connectors|[1,2]'
  'POST|/connectors|"text"'
  'POST|/connectors|{"config":{}}'
  'POST|/connectors|{"name":5,"config":{}}'
  'POST|/connectors|{"name":"","config":{}}'
  'POST|/connectors|{"name":"x"}'
  'POST|/connectors|{"name":"x","config":5}'
  'POST|/connectors|{"name":"x","config":[]}'
  'POST|/connectors|{"name":"x","config":"stages: []"}'
  'POST|/connectors|{"name":"x","config":{}}'
  'POST|/connectors|{"name":"x","config":{"stages":5}}'
  'POST|/connectors|{"name":"x","config":{"stages":[]}}'
  'POST|/connectors|{"name":"x","config":{"stages":[5,6]}}'
  'POST|/connectors|{"name":"x","config":{"stages":[{"use":5},{"use":true}]}}'
  'POST|/connectors|{"name":"x","config":{"stages":[{"use":"nope"},{"use":"file-sink","with":{"path":"y"}}]}}'
  'POST|/connectors|{"name":"x","config":{"tasks":"many","stages":[{"use":"file-source","with":{"path":"a"}},{"use":"file-sink","with":{"path":"b"}}]}}'
  'POST|/connectors|{"name":"x","config":{"tasks":-1,"stages":[{"use":"file-source","with":{"path":"a"}},{"use":"file-sink","with":{"path":"b"}}]}}'
  'POST|/connectors|{"name":"x","config":{"stages":[{"use":"file-source","with":{"path":5}},{"use":"file-sink","with":{"path":[]}}]}}'
  'POST|/connectors|{"name":"x","config":{"stages":[{"use":"file-source","with":"p"},{"use":"file-sink","with":{"path":"b"}}]}}'
  'POST|/connectors|{"name":"x","config":{"pipeline":"y"}}'
  'POST|/connectors|{"name":"x","config":{"name":"y"}}'
  'POST|/connectors|{"name":"x","config":{"bogus":1}}'
  'POST|/connectors|{"name":"../x","config":{}}'
  'POST|/connectors|{"name":"a b","config":{}}'
  'POST|/connectors|{"name":".hidden","config":{}}'
  'POST|/connectors|{"name":"a/b","config":{}}'
  'POST|/connectors|{"name":"ok","config":{}}'
  'PUT|/connectors|{}'
  'DELETE|/connectors|'
  'PUT|/connectors/x/config|'
  'PUT|/connectors/x/config|[]'
  'PUT|/connectors/x/config|{"stages":"x"}'
  'PUT|/connectors/x/config|{"pipeline":"other"}'
  'PUT|/connectors/a%20b/config|{"stages":[]}'
  'PUT|/connectors/ok/config|{"stages":[{"use":"/tmp/evil.so"},{"use":"file-sink","with":{"path":"b"}}]}'
  'POST|/connectors/ok/config|{}'
  'GET|/connectors/nope|'
  'GET|/connectors/nope/config|'
  'GET|/connectors/nope/status|'
  'GET|/connectors/nope/offsets|'
  'GET|/connectors/nope/tasks|'
  'PUT|/connectors/nope/pause|'
  'PUT|/connectors/nope/resume|'
  'PUT|/connectors/nope/stop|'
  'POST|/connectors/nope/restart|'
  'DELETE|/connectors/nope|'
  'GET|/connectors/ok/restart|'
  'POST|/connectors/ok/pause|'
  'PUT|/connectors/ok/offsets|{}'
  'DELETE|/connectors/ok/offsets|'
  'GET|/connectors/ok/tasks/7/status|'
  'GET|/connectors/ok/tasks/x/status|'
  'POST|/connectors/ok/tasks/-1/restart|'
  'POST|/connectors/ok/tasks/99999999999999999999/restart|'
  'GET|/connectors/ok/nonsense|'
  'PUT|/connector-plugins/nope/config/validate|{}'
  'PUT|/connector-plugins/file-sink/config/validate|'
  'PUT|/connector-plugins/file-sink/config/validate|xx'
  'PUT|/connector-plugins/file-sink/config/validate|[1]'
  'GET|/connector-plugins/file-sink/config/validate|'
  'POST|/connector-plugins|{}'
  'GET|/connector-plugins/nope/config|'
  'POST|/|{}'
  'POST|/metrics|{}'
  'GET|/nope|'
  'POST|/api/query/x|{}'
)
for c in "${cases[@]}"; do
  IFS='|' read -r m p b <<<"$c"
  req "$m" "$p" ${b:+"$b"} >/dev/null
  code=$(code)
  { [ "$code" -ge 400 ] && [ "$code" -lt 500 ] && [ "$code" != 401 ] && [ "$code" != 403 ] && [ "$code" != 415 ]; } ||
    fail "$m $p $b: expected a 4xx from the route, got $code: $(cat "$T/body")"
  [ "$(jget 'd["error_code"]')" = "$code" ] || fail "$m $p $b: no Kafka Connect error body: $(cat "$T/body")"
  ok "$m $p ${b:0:60} -> $code"
done
assert_eq "$(ls "$SLUICE_STATE_DIR/connectors")" "ok.yaml" "only the valid pipeline was stored"
wait_for state_is ok RUNNING || fail "ok not RUNNING"; ok "and it still runs"
! grep -q '" -> 500\|level=error' log.txt || fail "errors in the log: $(grep level=error log.txt)"
ok "no server error logged"
stop_sluice
echo "all client error checks passed ($CHECKS)"
