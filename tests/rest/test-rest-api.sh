#!/bin/bash
# The REST API end to end with curl: every endpoint's status codes and bodies, token auth, the
# .so-path refusal, oversized and malformed bodies, pause/resume (consumption really stops and
# catches up), stop, restart of a failed pipeline, update restarting only that pipeline,
# delete, and persistence of REST-created pipelines across a supervisor restart.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir pdir
seq 1 50 | awk '{print "{\"n\":" $1 "}"}' > a.ndjson
: > b.ndjson
cat > a.yaml <<Y
pipeline: steady
stages:
  - {name: in, use: file-source, with: {path: $T/a.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/a-out.ndjson}}
Y
cat > host.yaml <<Y
rest: {listen: "127.0.0.1:0", token: s3cret, max_body: 4KiB, pipeline_dir: pdir, data_dir: .}
Y
start_sluice log.txt -c host.yaml a.yaml

# ---- read-only endpoints (reads other than a pipeline's config/offsets/tasks need no token)
expect 200 GET / "GET / answers"
assert_eq "$(jget 'd["version"]')" "0.1.0" "version info"
expect 200 GET /connector-plugins "GET /connector-plugins"
assert_eq "$(jget '[p["type"] for p in d if p["class"]=="file-source"][0]')" "source" "file-source listed as a source"
expect 200 GET /connector-plugins/file-sink/config "plugin schema"
assert_eq "$(jget '[c["required"] for c in d if c["name"]=="path"][0]')" "True" "schema marks path required"
expect 404 GET /connector-plugins/nope/config "unknown plugin is 404"
assert_eq "$(jget 'd["error_code"]')" 404 "error body has error_code"

# ---- token auth: every change needs it (tests/security/test-rest-auth.sh covers every route)
TOKEN= expect 401 PUT /connector-plugins/file-sink/config/validate '{}' "validate without token is 401"
TOKEN=wrong expect 401 PUT /connector-plugins/file-sink/config/validate '{}' "a wrong token is 401"
TOKEN=s3cret
expect 200 PUT /connector-plugins/file-sink/config/validate '{"path": "/tmp/x", "mode": "sideways", "flush_interval": "soon", "colour": 1}' "validate answers 200"
# path: refused too, as no data directory is configured for REST pipelines
assert_eq "$(jget 'd["error_count"]')" 4 "four bad keys reported"
assert_contains "$(jget '[c["value"]["errors"] for c in d["configs"] if c["value"]["name"]=="mode"][0]')" "append|truncate" "per-key error for mode"
assert_contains "$(jget '[c["value"]["errors"] for c in d["configs"] if c["value"]["name"]=="colour"][0]')" "unknown key" "unknown key reported"
expect 200 PUT /connector-plugins/file-sink/config/validate '{}' "validate with a missing required key"
assert_contains "$(jget '[c["value"]["errors"] for c in d["configs"] if c["value"]["name"]=="path"][0]')" "missing required key" "missing required key reported"

# ---- creating pipelines
mk() { # NAME SOURCE_FILE SINK_FILE
  printf '{"name":"%s","config":{"stages":[{"name":"in","use":"file-source","with":{"path":"%s","follow":true}},{"name":"out","use":"file-sink","with":{"path":"%s"}}]}}' "$1" "$2" "$3"
}
TOKEN= expect 401 POST /connectors "$(mk b "$T/b.ndjson" "$T/b-out.ndjson")" "POST without token is 401"
expect 201 POST /connectors "$(mk b "$T/b.ndjson" "$T/b-out.ndjson")" "POST /connectors creates"
assert_eq "$(jget 'd["name"]')" b "created info names the connector"
[ -f pdir/b.yaml ] || fail "b.yaml not persisted"; ok "persisted as YAML in the pipeline directory"
expect 409 POST /connectors "$(mk b "$T/b.ndjson" "$T/b-out.ndjson")" "duplicate name is 409"
expect 400 POST /connectors '{"name": "c", "config": {"stages": [' "malformed JSON is 400"
assert_contains "$(jget 'd["message"]')" "malformed JSON" "malformed JSON reason"
expect 400 POST /connectors '[1,2]' "a non-object body is 400"
expect 400 POST /connectors '{"config": {}}' "missing name is 400"
expect 400 POST /connectors '{"name": "../evil", "config": {"stages": []}}' "path-like name is 400"
big=$(head -c 6000 /dev/zero | tr '\0' 'x')
expect 413 POST /connectors "{\"name\":\"big\",\"config\":{\"description\":\"$big\"}}" "oversized body is 413"
so='{"name":"rce","config":{"stages":[{"use":"file-source","with":{"path":"/dev/null"}},{"use":"/tmp/evil.so","with":{}}]}}'
expect 400 POST /connectors "$so" "a .so path in use: is refused"
assert_contains "$(jget 'd["message"]')" "only use installed plugins by name" "the refusal says why"
[ ! -e pdir/rce.yaml ] || fail "refused pipeline was persisted"; ok "refused pipeline not persisted"
bad='{"name":"bad","config":{"stages":[{"use":"file-source","with":{"pth":"x"}},{"use":"file-sink","with":{"path":"y"}}]}}'
expect 400 POST /connectors "$bad" "invalid stage config is 400"
assert_contains "$(jget 'd["message"]')" "did you mean 'path'" "config error explains"

# ---- reading connectors
expect 200 GET /connectors "GET /connectors"
assert_eq "$(jget 'sorted(d)')" '["b", "steady"]' "both pipelines listed"
expect 200 GET "/connectors?expand=status&expand=info" "expand=status&expand=info"
assert_eq "$(jget 'sorted(d["b"].keys())')" '["info", "status"]' "expanded entries"
expect 200 GET /connectors/b "GET /connectors/b"
expect 200 GET /connectors/b/config "GET config"
assert_eq "$(jget 'd["stages"][1]["use"]')" file-sink "config round-trips"
expect 404 GET /connectors/nope "unknown connector is 404"
expect 404 GET /connectors/nope/status "unknown connector status is 404"
wait_for state_is b RUNNING || fail "b not RUNNING"
ok "b is RUNNING"
expect 200 GET /connectors/b/status "status"
assert_eq "$(jget 'd["tasks"][0]["state"]')" RUNNING "task state"
assert_eq "$(jget 'd["tasks"][0]["worker_id"]')" "${BASE#http://}" "worker id"
expect 200 GET /connectors/b/tasks "tasks"
assert_eq "$(jget 'd[0]["id"]["task"]')" 0 "task id"
expect 200 GET /connectors/b/tasks/0/status "task status"
expect 404 GET /connectors/b/tasks/7/status "unknown task is 404"

# ---- records flow; pause really stops consumption; resume catches up
seq 1 100 | awk '{print "{\"b\":" $1 "}"}' >> b.ndjson
wait_for lines_eq b-out.ndjson 100 || fail "b did not copy 100 records"
ok "records flow"
expect 202 PUT /connectors/b/pause "pause is 202"
wait_for state_is b PAUSED || fail "not PAUSED"
ok "state PAUSED"
sleep 1.5 # let the child see the pause before more input arrives
seq 101 200 | awk '{print "{\"b\":" $1 "}"}' >> b.ndjson
sleep 2.5
assert_eq "$(wc -l < b-out.ndjson)" 100 "paused: new input is not consumed (lag grows)"
expect 202 PUT /connectors/b/resume "resume is 202"
wait_for lines_eq b-out.ndjson 200 || fail "resume did not catch up"
ok "resumed pipeline catches up"

# ---- offsets
wait_for sh -c "curl -s -H 'Authorization: Bearer $TOKEN' $BASE/connectors/b/offsets | grep -q '\"offset\":{\"offset\":[1-9]'" || fail "no committed offset"
expect 200 GET /connectors/b/offsets "offsets"
ok "committed offset reported: $(jget 'd["offsets"][0]')"

# ---- stop and resume
expect 204 PUT /connectors/b/stop "stop is 204"
wait_for state_is b STOPPED || fail "not STOPPED"
wait_for pid_is b 0 || fail "stopped pipeline still has a process"
ok "stopped: no process"
expect 202 PUT /connectors/b/resume "resume a stopped pipeline"
wait_for state_is b RUNNING || fail "not RUNNING after resume"
ok "running again"

# ---- update restarts only that pipeline
pid_steady=$(pid_of steady); pid_b=$(pid_of b)
expect 200 PUT /connectors/b/config "$(mk b "$T/b.ndjson" "$T/b-out2.ndjson" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]))')" "PUT config updates"
seq 201 210 | awk '{print "{\"b\":" $1 "}"}' >> b.ndjson
wait_for lines_eq b-out2.ndjson 10 || fail "updated pipeline does not write to its new sink (from where the old one stopped)"
ok "updated definition runs"
[ "$(pid_of b)" != "$pid_b" ] || fail "b was not restarted"; ok "the updated pipeline restarted"
assert_eq "$(pid_of steady)" "$pid_steady" "the other pipeline kept its process"
echo '{"c":1}' > c.ndjson
expect 201 PUT /connectors/c/config "$(mk c "$T/c.ndjson" "$T/c-out.ndjson" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]))')" "PUT config creates"
expect 400 PUT /connectors/b/config '{"stages": "nope"}' "an invalid update is 400"
wait_for state_is b RUNNING || fail "b not running after the refused update"
ok "after a refused update the old definition keeps running"
expect 409 DELETE /connectors/steady "a file-defined pipeline cannot be deleted over REST"

# ---- restart of a failed pipeline
expect 201 POST /connectors "$(mk f "$T/missing.ndjson" "$T/f-out.ndjson")" "create a pipeline that will fail"
wait_for state_is f FAILED || fail "f not FAILED: $(cat "$T/body")"
ok "f is FAILED"
expect 200 GET /connectors/f/status "failed status"
assert_contains "$(jget 'd["connector"]["trace"]')" "missing.ndjson" "the trace says why"
echo '{"f":1}' > missing.ndjson
expect 202 POST "/connectors/f/restart?includeTasks=true&onlyFailed=true" "restart with includeTasks/onlyFailed is 202"
wait_for state_is f RUNNING || fail "f not RUNNING after restart"
ok "the failed pipeline runs after a restart"
expect 204 POST /connectors/f/restart "plain restart is 204"
expect 204 POST /connectors/f/tasks/0/restart "task restart is 204"
expect 404 POST /connectors/f/tasks/3/restart "restart of an unknown task is 404"
expect 405 GET /connectors/f/restart "wrong method is 405"

# ---- delete
expect 204 DELETE /connectors/f "delete is 204"
expect 404 GET /connectors/f "deleted connector is gone"
[ ! -e pdir/f.yaml ] || fail "f.yaml left behind"; ok "its file is removed"

# ---- persistence across a supervisor restart
stop_sluice
mv log.txt log1.txt
start_sluice log.txt -c host.yaml a.yaml
expect 200 GET /connectors "after a restart"
assert_eq "$(jget 'sorted(d)')" '["b", "c", "steady"]' "REST-created pipelines survive a supervisor restart"
stop_sluice
grep -q 'level=error msg="REST API' log1.txt log.txt && fail "unexpected REST error in the log"
echo "all REST API checks passed ($CHECKS)"
