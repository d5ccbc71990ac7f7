# testlib.sh — sourced by shell tests: temp dir, assertions, helpers. Every assertion that fails
# prints what was expected and what came, then the test exits non-zero.
set -u
SLUICE=${SLUICE_BIN:?SLUICE_BIN not set (run through meson test)}
SRC=${SLUICE_SOURCE_DIR:?}
T=$(mktemp -d /tmp/sluice-test.XXXXXX)
# Each test its own state directory (REST token, REST-created pipelines, default offsets).
export SLUICE_STATE_DIR="$T/state"
_cleanup() { local pids; pids=$(jobs -p); [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap _cleanup EXIT
CHECKS=0

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; ok "$3"; }
assert_contains() { case "$1" in *"$2"*) ok "$3" ;; *) fail "$3: expected to contain '$2', got: $1" ;; esac; }
assert_file_eq() { cmp -s "$1" "$2" || fail "$3: $1 and $2 differ ($(wc -l <"$1") vs $(wc -l <"$2") lines)"; ok "$3"; }

# wait_for CMD... — retry a condition for up to 30 s (bounded; never hangs a test).
wait_for() {
  local i
  for i in $(seq 1 300); do "$@" && return 0; sleep 0.1; done
  return 1
}
