#!/bin/bash
# REST authentication is on by default (issue 10, control plane):
#  - at first start sluice creates STATE/rest.token (64 hex chars, mode 0600) and reuses it;
#  - every call that changes something, and every read of a pipeline's configuration, offsets or
#    tasks, answers 401 in Kafka Connect's error shape without the token or with a wrong one;
#  - /, /health, /metrics, statuses and plugins stay open on loopback;
#  - $SLUICE_REST_TOKEN wins over rest.token in the host config, which wins over the file;
#  - an unsafe token file (readable by others) refuses to start;
#  - `sluice token` prints the token; pipeline processes do not inherit $SLUICE_REST_TOKEN;
#  - --no-auth restores the old behaviour and logs a warning.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
: > in.ndjson
cat > p.yaml <<Y
pipeline: p
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
mk() { # NAME: a pipeline definition for POST /connectors
  printf '{"name":"%s","config":{"stages":[{"name":"in","use":"file-source","with":{"path":"%s/in.ndjson","follow":true}},{"name":"out","use":"file-sink","with":{"path":"%s/%s-out.ndjson"}}]}}' "$1" "$T" "$T" "$1"
}
STATE=$SLUICE_STATE_DIR

# ---- the token file -------------------------------------------------------------------------
start_sluice log.txt p.yaml
[ -f "$STATE/rest.token" ] || fail "no $STATE/rest.token after the first start"
ok "first start creates STATE/rest.token"
assert_eq "$(stat -c %a "$STATE/rest.token")" 600 "the token file is mode 0600"
assert_eq "$(stat -c %a "$STATE")" 700 "the state directory is mode 0700"
grep -Eqx '[0-9a-f]{64}' "$STATE/rest.token" || fail "token is not 32 random bytes in hex: $(cat "$STATE/rest.token")"
ok "the token is 32 bytes in hex"
FILE_TOKEN=$(cat "$STATE/rest.token")
assert_eq "$TOKEN" "$FILE_TOKEN" "restlib picked up the generated token"
assert_eq "$("$SLUICE" token)" "$FILE_TOKEN" "sluice token prints it"
! grep -q "$FILE_TOKEN" log.txt || fail "the token was written to the log"
ok "the token is not in the log"

# ---- without a token: 401 on every protected route ----------------------------------------
expect 201 POST /connectors "$(mk q)" "with the token, POST /connectors creates"
wait_for state_is q RUNNING || fail "q not RUNNING"
protected=(
  "POST /connectors $(mk z)"
  "PUT /connectors/q/config {\"stages\":[]}"
  "PUT /connectors/z/config {\"stages\":[]}"
  "DELETE /connectors/q"
  "PUT /connectors/q/pause"
  "PUT /connectors/q/resume"
  "PUT /connectors/q/stop"
  "POST /connectors/q/restart"
  "POST /connectors/q/tasks/0/restart"
  "PUT /connector-plugins/file-sink/config/validate {}"
  "GET /connectors/q"
  "GET /connectors/q/config"
  "GET /connectors/q/offsets"
  "GET /connectors/q/tasks"
  "GET /connectors?expand=info"
  "GET /connectors?expand=status,info"
  "GET /connectors/nope/config"
)
for r in "${protected[@]}"; do
  read -r m p b <<<"$r"
  TOKEN= expect 401 $m "$p" ${b:+"$b"} "no token: $m $p is 401"
  assert_eq "$(jget 'd["error_code"]')" 401 "  in Kafka Connect's error shape"
  TOKEN=wrong expect 401 $m "$p" ${b:+"$b"} "wrong token: $m $p is 401"
done
TOKEN=${FILE_TOKEN}x expect 401 PUT /connectors/q/pause "a token with a byte more is 401"
TOKEN=${FILE_TOKEN%?} expect 401 PUT /connectors/q/pause "a token with a byte less is 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Basic $FILE_TOKEN" "$BASE/connectors/q/pause")
assert_eq "$code" 401 "a non-Bearer scheme is 401"
hdr=$(curl -s -D - -o /dev/null -X PUT "$BASE/connectors/q/pause" | tr -d '\r')
assert_contains "$hdr" "WWW-Authenticate: Bearer" "401 says WWW-Authenticate: Bearer"
[ ! -e "$STATE/connectors/z.yaml" ] || fail "a refused POST stored a pipeline"
ok "nothing stored by refused calls"
assert_eq "$(state_of q)" RUNNING "q untouched by the refused calls"

# ---- open on loopback ------------------------------------------------------------------------
for p in / /health /metrics /connectors "/connectors?expand=status" /connectors/q/status /connectors/q/tasks/0/status \
         /connector-plugins /connector-plugins/file-sink/config; do
  TOKEN= expect 200 GET "$p" "open read: GET $p"
done
TOKEN= req GET /connectors/q/status >/dev/null
! grep -q '"config"' "$T/body" || fail "the open status shows the configuration"
ok "the open status does not carry the configuration"

# Pipeline processes get the state directory but not the token.
pid=$(pid_of q)
tr '\0' '\n' < "/proc/$pid/environ" > child-env.txt
grep -qx "SLUICE_STATE_DIR=$STATE" child-env.txt || fail "the pipeline process has no SLUICE_STATE_DIR=$STATE"
ok "pipeline processes see SLUICE_STATE_DIR"
stop_sluice

# ---- reused on the next start ---------------------------------------------------------------
ino=$(stat -c %i "$STATE/rest.token")
mv log.txt log1.txt
start_sluice log.txt p.yaml
assert_eq "$(cat "$STATE/rest.token")" "$FILE_TOKEN" "the token is reused on a later start"
assert_eq "$(stat -c %i "$STATE/rest.token")" "$ino" "the file is not rewritten"
expect 202 PUT /connectors/q/pause "the same token works after a restart"
stop_sluice

# ---- rest.token in the host config, and $SLUICE_REST_TOKEN wins ------------------------------
printf 'rest: {token: cfg-token-123}\n' > host.yaml
mv log.txt log2.txt
TOKEN=cfg-token-123 start_sluice log.txt -c host.yaml p.yaml
TOKEN=cfg-token-123 expect 202 PUT /connectors/q/resume "rest.token from the host config works"
TOKEN=$FILE_TOKEN expect 401 PUT /connectors/q/resume "the file's token does not when one is configured"
stop_sluice
mv log.txt log3.txt
export SLUICE_REST_TOKEN=env-token-456
TOKEN=env-token-456 start_sluice log.txt -c host.yaml p.yaml
TOKEN=env-token-456 expect 202 PUT /connectors/q/resume "SLUICE_REST_TOKEN works"
TOKEN=cfg-token-123 expect 401 PUT /connectors/q/resume "SLUICE_REST_TOKEN wins over rest.token"
wait_for state_is q RUNNING || fail "q not RUNNING"
TOKEN=$FILE_TOKEN expect 401 PUT /connectors/q/resume "... and over the file"
pid=$(pid_of q)
! tr '\0' '\n' < "/proc/$pid/environ" | grep -q '^SLUICE_REST_TOKEN=' || fail "the pipeline process inherited SLUICE_REST_TOKEN"
ok "pipeline processes do not inherit SLUICE_REST_TOKEN"
assert_eq "$("$SLUICE" token -c host.yaml)" env-token-456 "sluice token agrees"
stop_sluice
unset SLUICE_REST_TOKEN

# ---- an unsafe token file refuses to start --------------------------------------------------
chmod 644 "$STATE/rest.token"
timeout 20 "$SLUICE" run p.yaml > unsafe.txt 2>&1; rc=$?
assert_eq "$rc" 2 "a token file readable by others: exit 2"
assert_contains "$(cat unsafe.txt)" "can be read by others" "... saying why"
chmod 600 "$STATE/rest.token"

# ---- --no-auth ----------------------------------------------------------------------------
mv log.txt log4.txt
TOKEN=none-sent start_sluice log.txt --no-auth p.yaml
grep -q 'level=warn.*--no-auth' log.txt || fail "--no-auth logs no warning"
ok "--no-auth logs a warning"
TOKEN= expect 201 POST /connectors "$(mk n)" "--no-auth: POST without a token is accepted"
TOKEN= expect 200 GET /connectors/n/config "--no-auth: config readable without a token"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Origin: http://evil.example' "$BASE/connectors/n/pause")
assert_eq "$code" 403 "--no-auth: a cross-origin call is still refused"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: text/plain' --data-binary "$(mk m)" "$BASE/connectors")
assert_eq "$code" 415 "--no-auth: a text/plain body is still refused"
stop_sluice
echo "all REST auth checks passed ($CHECKS)"
