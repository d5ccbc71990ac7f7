# restlib.sh — helpers for the REST tests: start a supervisor on a free port, call it with curl.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
export SLUICE_PLUGIN_PATH="$TEST_STAGES:${SLUICE_PLUGIN_PATH:-}"
# The bearer token sent by req/expect: a test may set it; else start_sluice reads the one sluice
# generated in the state directory. `TOKEN= expect ...` sends none.
TOKEN=${TOKEN:-}
# Pipelines created over REST may name files only in the data directory: the test's own.
export SLUICE_DATA_DIR=${SLUICE_DATA_DIR:-$T}

# start_sluice LOG ARGS... — runs `sluice run ARGS` in the background; sets SUP (pid) and BASE.
start_sluice() {
  local log=$1; shift
  "$SLUICE" run "$@" 2>>"$log" &
  SUP=$!
  wait_for grep -q 'REST API listening on' "$log" || { cat "$log"; fail "REST API did not start"; }
  BASE=$(grep -o 'REST API listening on http://[0-9.]*:[0-9]*' "$log" | tail -1 | sed 's/REST API listening on //')
  if [ -z "$TOKEN" ] && [ -f "$SLUICE_STATE_DIR/rest.token" ]; then TOKEN=$(cat "$SLUICE_STATE_DIR/rest.token"); fi
}

# stop_sluice — SIGTERM, then the supervisor must exit 0 (under ASan: no leak, no error) and no
# pipeline process may have crashed (an ASan report in a child aborts it).
stop_sluice() {
  kill -TERM "$SUP" 2>/dev/null
  wait "$SUP"; local rc=$?
  [ "$rc" = 0 ] || fail "supervisor exited with $rc"
  ! grep -q 'crashed (signal' "$T"/log*.txt || fail "a pipeline process crashed"
  ! grep -q 'Sanitizer' "$T"/log*.txt || fail "sanitizer report in the log"
}

# req METHOD PATH [BODY] — prints the body; the status code goes to $T/code.
req() {
  local auth=()
  [ -n "$TOKEN" ] && auth=(-H "Authorization: Bearer $TOKEN")
  if [ $# -ge 3 ]; then
    curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" -H 'Content-Type: application/json' \
      --data-binary "$3" "$BASE$2" >"$T/code"
  else
    curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" "$BASE$2" >"$T/code"
  fi
  cat "$T/body"
}
code() { cat "$T/code"; }

# expect CODE METHOD PATH [BODY] WHAT — asserts the status code; the body is in $T/body.
expect() {
  local want=$1 what=${!#}; shift
  local args=("${@:1:$(($# - 1))}")
  req "${args[@]}" >/dev/null
  [ "$(code)" = "$want" ] || fail "$what: expected HTTP $want, got $(code): $(cat "$T/body")"
  ok "$what"
}

# jq-free JSON field access through python3 (present on the build machines).
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("r="+sys.argv[2]); print(r if not isinstance(r,(dict,list)) else json.dumps(r))' "$T/body" "$1"; }

state_of() { req GET "/connectors/$1/status" >/dev/null; jget 'd["connector"]["state"]'; }
pid_of() { req GET "/connectors/$1/status" >/dev/null; jget 'd["pid"]'; }
sink_in() { req GET "/connectors/$1/status" >/dev/null; jget '[s for s in d["stages"]][-1]["in"]'; }

# On failure show the supervisor's log: it says what the pipelines did.
fail() { echo "FAIL: $*" >&2; [ -f "$T/log.txt" ] && tail -n 40 "$T/log.txt" >&2; exit 1; }
# Conditions for wait_for (re-evaluated on every try).
state_is() { [ "$(state_of "$1")" = "$2" ]; }
pid_is() { [ "$(pid_of "$1")" = "$2" ]; }
lines_eq() { [ -f "$1" ] && [ "$(wc -l < "$1")" -eq "$2" ]; }
