#!/bin/bash
# Cross-site requests are refused (issue 10, control plane):
#  - a body that is not application/json is 415 (HTML forms and no-preflight fetches can only
#    send text/plain, form or multipart bodies), even with the token;
#  - an Origin other than the server itself is 403 on calls that change something (CSRF);
#  - a Host that is neither loopback nor the listen address is 403 (DNS rebinding), reads too;
#  - binding a non-loopback address without a token (--no-auth) refuses to start.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
: > in.ndjson
cat > p.yaml <<Y
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
mk() { # NAME
  printf '{"name":"%s","config":{"stages":[{"name":"in","use":"file-source","with":{"path":"%s/in.ndjson","follow":true}},{"name":"out","use":"file-sink","with":{"path":"%s/%s-out.ndjson"}}]}}' "$1" "$T" "$T" "$1"
}
start_sluice log.txt p.yaml
HOSTPORT=${BASE#http://}
PORT=${HOSTPORT##*:}
# call METHOD PATH [curl args...] — the status code, with the token.
call() { local m=$1 p=$2; shift 2; curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN" "$@" "$BASE$p"; }

# ---- Content-Type ---------------------------------------------------------------------------
for ct in 'text/plain' 'text/plain;charset=UTF-8' 'application/x-www-form-urlencoded' 'multipart/form-data; boundary=x' \
          'application/jsonx' 'text/json'; do
  assert_eq "$(call POST /connectors -H "Content-Type: $ct" --data-binary "$(mk a)")" 415 "POST with Content-Type $ct is 415"
done
assert_eq "$(jget 'd["error_code"]')" 415 "415 in Kafka Connect's error shape"
assert_eq "$(call POST /connectors -H 'Content-Type:' --data-binary "$(mk a)")" 415 "a body without Content-Type is 415"
assert_eq "$(call PUT /connector-plugins/file-sink/config/validate -H 'Content-Type: text/plain' --data-binary '{}')" 415 "validate with text/plain is 415"
assert_eq "$(call PUT /connectors/p/pause -H 'Content-Type: text/plain')" 415 "a body-less call that names a non-JSON type is 415"
[ ! -e "$SLUICE_STATE_DIR/connectors/a.yaml" ] || fail "a refused request stored a pipeline"
ok "nothing stored"
assert_eq "$(call POST /connectors -H 'Content-Type: application/json; charset=utf-8' --data-binary "$(mk a)")" 201 "application/json; charset=utf-8 is accepted"
assert_eq "$(call PUT /connectors/a/pause)" 202 "a body-less PUT needs no Content-Type (Kafka Connect clients)"

# ---- Origin (CSRF) --------------------------------------------------------------------------
for o in 'http://evil.example' "http://evil.example:$PORT" 'null' "http://127.0.0.1:$((PORT == 65535 ? 1 : PORT + 1))" "ftp://$HOSTPORT"; do
  assert_eq "$(call PUT /connectors/a/resume -H "Origin: $o")" 403 "Origin $o on a change is 403"
  assert_eq "$(call POST /connectors -H "Origin: $o" -H 'Content-Type: application/json' --data-binary "$(mk b)")" 403 "Origin $o on POST /connectors is 403"
done
assert_eq "$(jget 'd["error_code"]')" 403 "403 in Kafka Connect's error shape"
[ ! -e "$SLUICE_STATE_DIR/connectors/b.yaml" ] || fail "a cross-origin request stored a pipeline"
ok "nothing stored by cross-origin calls"
assert_eq "$(call PUT /connectors/a/resume -H "Origin: http://$HOSTPORT")" 202 "the same origin (the dashboard) is accepted"
assert_eq "$(call GET /connectors -H 'Origin: http://evil.example')" 200 "a read with a foreign Origin is still answered (no CORS headers, so the page cannot read it)"
hdr=$(curl -s -D - -o /dev/null -H 'Origin: http://evil.example' "$BASE/connectors" | tr -d '\r')
case "$hdr" in *Access-Control-Allow-Origin*) fail "CORS headers sent: $hdr" ;; esac
ok "no Access-Control-Allow-Origin"

# ---- Host (DNS rebinding) -------------------------------------------------------------------
for h in "evil.example:$PORT" 'evil.example' "127.0.0.1:$PORT, evil.example" '127.0.0.1:' "127.0.0.1.evil.example:$PORT" "localhost.evil.example:$PORT" "10.1.2.3:$PORT"; do
  assert_eq "$(call GET / -H "Host: $h")" 403 "Host $h: GET / is 403"
  assert_eq "$(call GET '/connectors?expand=status' -H "Host: $h")" 403 "Host $h: the dashboard's data is 403"
  assert_eq "$(call PUT /connectors/a/pause -H "Host: $h")" 403 "Host $h: a change is 403"
done
for h in "localhost:$PORT" "127.0.0.1:$PORT" "LOCALHOST:$PORT" "127.0.0.2:$PORT" "localhost:9999" "[::1]:$PORT"; do
  assert_eq "$(call GET / -H "Host: $h")" 200 "Host $h is accepted (loopback; any port, e.g. an ssh tunnel)"
done
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --http1.0 -H 'Host:' "$BASE/")" 403 "no Host header is 403"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --http1.0 -H 'Host:' "$BASE/health")" 200 "GET /health answers probes without Host"
assert_eq "$(call GET /health -H "Host: lb-probe.internal")" 200 "... or with another name"
stop_sluice

# ---- rest.allowed_hosts: the name a reverse proxy is reached by ---------------------------------
printf 'rest: {allowed_hosts: [sluice.example]}\n' > host.yaml
mv log.txt log1.txt
start_sluice log.txt -c host.yaml p.yaml
PORT=${BASE##*:}
assert_eq "$(call GET / -H "Host: sluice.example:$PORT")" 200 "a listed Host is accepted"
assert_eq "$(call GET / -H "Host: other.example:$PORT")" 403 "an unlisted one is not"
assert_eq "$(call PUT /connectors/p/pause -H 'Origin: https://sluice.example')" 202 "a listed Origin behind a proxy is accepted"
assert_eq "$(call PUT /connectors/p/resume -H 'Origin: https://sluice.example.evil')" 403 "a look-alike Origin is not"
stop_sluice
printf 'rest: {allowed_hosts: ["https://x/"]}\n' > bad-host.yaml
timeout 20 "$SLUICE" run -c bad-host.yaml p.yaml > bad-host.txt 2>&1; rc=$?
assert_eq "$rc" 2 "an allowed_hosts entry with a scheme is a config error"
assert_contains "$(cat bad-host.txt)" "bad-host.yaml:1:" "... with file:line"

# ---- a non-loopback address without a token refuses to start ----------------------------------
for addr in 0.0.0.0:0 10.255.255.1:0; do
  timeout 20 "$SLUICE" run --no-auth --rest "$addr" p.yaml > refuse.txt 2>&1; rc=$?
  assert_eq "$rc" 2 "--no-auth --rest $addr: exit 2"
  assert_contains "$(cat refuse.txt)" "without a token" "... saying why"
  ! grep -q 'listening on' refuse.txt || fail "it listened on $addr"
  ok "... without listening"
done
echo "all cross-site request checks passed ($CHECKS)"
