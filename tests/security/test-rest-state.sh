#!/bin/bash
# The state directory and /health (issue 10, control plane):
#  - `sluice run` with no file and no flag serves REST, and POST /connectors works out of the
#    box: the pipeline is stored as STATE/connectors/NAME.yaml, runs, and survives a restart;
#  - the state directory is --state-dir, else $SLUICE_STATE_DIR, else $XDG_STATE_HOME/sluice,
#    else ~/.local/state/sluice, created 0700;
#  - GET /health answers KIP-1017's shape.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
echo '{"n":1}' > in.ndjson
mk() { # NAME
  printf '{"name":"%s","config":{"stages":[{"name":"in","use":"file-source","with":{"path":"%s/in.ndjson","follow":true}},{"name":"out","use":"file-sink","with":{"path":"%s/%s-out.ndjson"}}]}}' "$1" "$T" "$T" "$1"
}
STATE=$SLUICE_STATE_DIR

# ---- out of the box -------------------------------------------------------------------------
start_sluice log.txt
expect 201 POST /connectors "$(mk first)" "POST /connectors works with no flags"
[ -f "$STATE/connectors/first.yaml" ] || fail "not stored in STATE/connectors: $(ls -R "$STATE")"
ok "stored as STATE/connectors/first.yaml"
assert_eq "$(stat -c %a "$STATE/connectors")" 700 "STATE/connectors is mode 0700"
wait_for lines_eq first-out.ndjson 1 || fail "the created pipeline does not run"
ok "the created pipeline runs"

# ---- /health --------------------------------------------------------------------------------
TOKEN= expect 200 GET /health "GET /health is open and 200 once started"
assert_eq "$(jget 'd["status"]')" healthy "status healthy"
assert_contains "$(jget 'd["message"]')" "ready" "with a message"
assert_eq "$(jget 'sorted(d)')" '["message", "status"]' "KIP-1017's shape: status and message"
assert_eq "$(curl -s -o /dev/null -w '%{content_type}' "$BASE/health")" application/json "as JSON"
expect 405 POST /health "{}" "POST /health is 405"
stop_sluice

mv log.txt log1.txt
# A pipeline whose source is still opening (a FIFO without a writer blocks its open) has not
# reported yet: the worker is "starting" (503) until it does.
mkfifo slow.fifo
printf 'pipeline: slow\nstages:\n  - {name: in, use: file-source, with: {path: %s/slow.fifo}}\n  - {name: out, use: file-sink, with: {path: %s/slow-out.ndjson}}\n' "$T" "$T" > slow.yaml
start_sluice log.txt slow.yaml
expect 200 GET /connectors/first/config "the REST-created pipeline survives a restart"
TOKEN= expect 503 GET /health "GET /health is 503 while a pipeline is starting"
assert_eq "$(jget 'd["status"]')" starting "status starting"
exec 3>slow.fifo # a writer: the source's open returns, the pipeline reports
health_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ]; }
wait_for health_ok || fail "/health did not turn 200 once the pipeline reported"
ok "then 200 once it has reported"
exec 3>&-
stop_sluice

# ---- where the state directory is -------------------------------------------------------------
# wait_token DIR — sluice has made DIR/rest.token
wait_token() { wait_for test -s "$1/rest.token"; }
run_bg() { # LOG ENV... — start `sluice run` with the given environment changes
  local log=$1; shift
  env "$@" "$SLUICE" run >"$log" 2>&1 &
  BG=$!
}
stop_bg() { kill -TERM "$BG"; wait "$BG"; }

run_bg xdg.txt -u SLUICE_STATE_DIR XDG_STATE_HOME="$T/xdg" HOME="$T/home"
wait_token "$T/xdg/sluice" || { cat xdg.txt; fail "no token in \$XDG_STATE_HOME/sluice"; }
stop_bg
ok "\$XDG_STATE_HOME/sluice is used when \$SLUICE_STATE_DIR is unset"
assert_eq "$(stat -c %a "$T/xdg/sluice")" 700 "created 0700"
[ -d "$T/xdg/sluice/connectors" ] || fail "no connectors/ under it"; ok "with connectors/"

run_bg home.txt -u SLUICE_STATE_DIR -u XDG_STATE_HOME HOME="$T/home"
wait_token "$T/home/.local/state/sluice" || { cat home.txt; fail "no token in ~/.local/state/sluice"; }
stop_bg
ok "~/.local/state/sluice when neither is set"
assert_eq "$(stat -c %a "$T/home/.local/state/sluice")" 700 "created 0700"

mkdir -p flagdir
# exec: $! is sluice itself, not a subshell around it, so stop_bg stops it (no orphan).
(cd flagdir && exec env SLUICE_STATE_DIR="$T/envdir" "$SLUICE" run --state-dir rel >"$T/flag.txt" 2>&1) &
BG=$!
wait_token "$T/flagdir/rel" || { cat flag.txt; fail "--state-dir (relative) not used"; }
stop_bg
ok "--state-dir wins over \$SLUICE_STATE_DIR (relative to the working directory)"
[ ! -e "$T/envdir" ] || fail "\$SLUICE_STATE_DIR was created although --state-dir was given"
ok "... which is not touched"

# Two sluices starting at once on a fresh state directory agree on one token.
env SLUICE_STATE_DIR="$T/race" "$SLUICE" token > tok1.txt & a=$!
env SLUICE_STATE_DIR="$T/race" "$SLUICE" token > tok2.txt & b=$!
wait "$a" "$b"
assert_eq "$(cat tok1.txt)" "$(cat tok2.txt)" "two first starts at once agree on the token"
assert_eq "$(cat tok1.txt)" "$(cat "$T/race/rest.token")" "and it is the file's"
[ -z "$(ls -A "$T/race" | grep -v '^rest.token$')" ] || fail "temporary files left: $(ls -A "$T/race")"
ok "no temporary files left"
echo "all state directory checks passed ($CHECKS)"
