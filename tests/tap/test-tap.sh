#!/bin/bash
# sluice tap: a live sample of the records leaving a stage, and the dead letters with reasons,
# from a running host over GET /connectors/NAME/tap (server-sent events behind the REST token).
. "$SLUICE_SOURCE_DIR/tests/tap/taplib.sh"
start_flow
A=${BASE#http://}

# Records leaving a stage: the validator's output, as the sink will get them.
out=$(timeout 20 "$SLUICE" tap flow check --limit 3 --rest "$A") || fail "sluice tap exited $?: $out"
assert_eq "$(grep -c '^\[check\] {"id":[0-9]*,"kind":"a"}$' <<<"$out")" 3 "tap shows 3 records leaving 'check'"

# The source's output, as JSON: one object per line, the value kept as JSON.
out=$(timeout 20 "$SLUICE" tap flow in --limit 2 --json --rest "$A") || fail "sluice tap --json exited $?"
assert_eq "$(python3 -c 'import json,sys
n=0
for l in sys.stdin:
    d=json.loads(l); assert d["tap"]=="in" and isinstance(d["rec"]["value"]["id"], int) and d["rec"]["offset"]>=0; n+=1
print(n)' <<<"$out")" 2 "tap --json: 2 JSON records with offsets"

# Dead letters, with the stage that rejected them and why.
out=$(timeout 20 "$SLUICE" tap flow --dead-letter --limit 2 --rest "$A") || fail "sluice tap --dead-letter exited $?"
assert_eq "$(grep -c '^\[dead letter from check: kind: not one of a, b\] {"id":[0-9]*0,"kind":"zzz"}$' <<<"$out")" 2 \
  "tap --dead-letter shows rejected records with stage and reason"

# The rate cap: at most R records per second reach a listener (4 s at 5/s: at most 5*4 + 1 burst).
out=$(timeout 4 "$SLUICE" tap flow check --rate 5 --rest "$A")
n=$(grep -c '^\[check\]' <<<"$out")
[ "$n" -ge 5 ] && [ "$n" -le 21 ] || fail "tap --rate 5 for 4 s showed $n records"
ok "tap --rate 5 for 4 s showed $n records (cap 21)"

# Sampling stops when the last listener goes: the pipeline process says so.
wait_for grep -q 'tap: sampling stopped' "$T/log.txt" || fail "the pipeline kept sampling after the tap closed"
ok "sampling stops when nobody listens"
starts=$(grep -c 'tap: sampling started' "$T/log.txt")
sleep 1.5
assert_eq "$(grep -c 'tap: sampling started' "$T/log.txt")" "$starts" "nothing is sampled while nobody listens"

# A tap outlives a restart of the pipeline's process: the new process is told what to sample.
before=$(grep -c 'tap: sampling started' "$T/log.txt")
timeout 60 "$SLUICE" tap flow check --rate 5 --rest "$A" >"$T/across" &
TAPPER=$!
wait_for grep -q '^\[check\]' "$T/across" || fail "the tap showed nothing before the restart"
old_pid=$(pid_of flow)
expect 204 POST /connectors/flow/restart "restart the pipeline while tapped"
new_pid() { local p; p=$(pid_of flow); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old_pid" ]; }
wait_for new_pid || fail "the pipeline did not restart"
started_twice() { [ $(($(grep -c 'tap: sampling started' "$T/log.txt") - before)) -ge 2 ]; }
wait_for started_twice || fail "the new process was not told to sample"
ok "the new process samples for the open tap"
n=$(grep -c '^\[check\]' "$T/across")
more() { [ "$(grep -c '^\[check\]' "$T/across")" -gt "$n" ]; }
wait_for more || fail "the tap showed nothing after the restart"
ok "the tap keeps showing records across the restart"
kill "$TAPPER"; wait "$TAPPER" 2>/dev/null

# Bad requests: a clear 4xx, nothing opened.
TOKEN_SAVED=$TOKEN
expect 404 GET "/connectors/flow/tap?stage=nope" "unknown stage: 404"
assert_contains "$(cat "$T/body")" "its stages: in, check, out" "the 404 names the stages"
expect 404 GET "/connectors/nope/tap" "unknown pipeline: 404"
expect 400 GET "/connectors/flow/tap?rate=0" "rate 0: 400"
expect 400 GET "/connectors/flow/tap?rate=5000" "rate above 1000: 400"
expect 400 GET "/connectors/flow/tap?limit=x" "bad limit: 400"
expect 405 POST "/connectors/flow/tap" '{}' "POST: 405"
out=$("$SLUICE" tap flow nope --rest "$A" 2>&1); rc=$?
assert_eq "$rc" 1 "sluice tap with an unknown stage exits 1"
assert_contains "$out" "no stage 'nope'" "and says why"

# ---- security: the tap shows record contents; only the token holder gets any ----------------
code=$(curl -s -m 5 -o "$T/notoken" -w '%{http_code}' "$BASE/connectors/flow/tap")
assert_eq "$code" 401 "no token: 401"
! grep -q '"rec"' "$T/notoken" || fail "a caller without the token got records"
ok "no token: no record"
code=$(curl -s -m 5 -o "$T/badtoken" -w '%{http_code}' -H "Authorization: Bearer x$TOKEN" "$BASE/connectors/flow/tap")
assert_eq "$code" 401 "wrong token: 401"
! grep -q '"rec"' "$T/badtoken" || fail "a caller with a wrong token got records"
ok "wrong token: no record"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Host: evil.example' "$BASE/connectors/flow/tap")
assert_eq "$code" 403 "DNS rebinding (foreign Host) with the token: 403"
# A query-string token is not a token (it would end up in logs and browser history).
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$BASE/connectors/flow/tap?token=$TOKEN")
assert_eq "$code" 401 "token in the query string: 401"
out=$(SLUICE_REST_TOKEN=wrong timeout 10 "$SLUICE" tap flow --rest "$A" 2>&1); rc=$?
assert_eq "$rc" 1 "sluice tap with a wrong token exits 1"
assert_contains "$out" "HTTP 401" "and says 401"
# A foreign web page cannot read the stream: no CORS headers, even for a request with Origin.
hdr=$(curl -s -m 3 -D - -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Origin: http://evil.example' \
  "$BASE/connectors/flow/tap?limit=1" | tr -d '\r')
! grep -qi '^access-control-allow' <<<"$hdr" || fail "the tap stream sent CORS headers"
ok "no CORS headers on the tap stream"

# The live status stream (dashboard, sluice top): rates per stage, once a second.
timeout 3 curl -sN "$BASE/api/live" >"$T/live" 2>/dev/null
python3 - "$T/live" <<'PY' || fail "GET /api/live: $(head -c 600 "$T/live")"
import json, sys
evs = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith('data: ')]
assert len(evs) >= 2, evs
p = [x for x in evs[-1]["pipelines"] if x["name"] == "flow"][0]
assert p["state"] == "RUNNING", p
st = {s["name"]: s for s in p["stages"]}
assert st["check"]["in_per_s"] > 0 and st["check"]["rejected_per_s"] > 0, st["check"]
assert "trace" not in json.dumps(evs)
PY
ok "GET /api/live streams per-stage rates"

# KPI queries on the live stream: checked before the stream opens (no web.queries here).
code=$(curl -s -m 5 -o "$T/kpi" -w '%{http_code}' "$BASE/api/live?query=nope")
assert_eq "$code" 404 "live stream with an unknown query: 404"
assert_contains "$(cat "$T/kpi")" "no such query" "and says so"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$BASE/api/live?query=nope&every=0")
assert_eq "$code" 400 "live stream with every=0: 400"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" "$BASE/api/live")
assert_eq "$code" 405 "POST /api/live: 405"

stop_flow
echo "all $CHECKS checks passed"
