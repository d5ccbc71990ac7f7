#!/bin/bash
# A plugin whose constructor crashes is probed in a child process: sluice refuses it with the
# reason instead of dying of SIGSEGV, and a running supervisor survives a pipeline that names it.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
so=${SEC_STAGES:?}/crash-ctor.so
[ -f "$so" ] || fail "no $so"
mkdir bad && cp "$so" bad/
out=$(SLUICE_PLUGIN_PATH="$T/bad:$SLUICE_PLUGIN_PATH" "$SLUICE" plugins 2>&1); rc=$?
assert_eq "$rc" 2 "a plugin directory holding a crashing plugin is refused (exit 2, not a crash)"
assert_contains "$out" "crashes the process (signal 11" "the refusal names the signal"

echo '{"n":1}' > in.ndjson
mkdir pipes
cat > pipes/a.yaml <<Y
pipeline: a
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
sec_start pipes
cat > pipes/b.yaml <<Y
pipeline: b
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson}}
  - {name: out, use: $T/bad/crash-ctor.so}
Y
kill -HUP "$SUP"
wait_for grep -q "crash-ctor.so" "$T/log.txt" || fail "the crashing plugin was not reported"
kill -0 "$SUP" 2>/dev/null || fail "the supervisor died loading a crashing plugin"
ok "the supervisor survives a crashing plugin"
assert_contains "$(grep crash-ctor "$T/log.txt")" "crashes the process" "the log says why it was refused"
assert_eq "$(state_of a)" RUNNING "other pipelines run on"
stop_sluice
