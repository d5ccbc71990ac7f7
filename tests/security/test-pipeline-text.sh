#!/bin/bash
# The child process runs exactly the text that was checked. A definition changed on disk and
# refused (here: a REST-created pipeline edited to load a plugin by path) leaves the old
# definition running, and a later restart must run the old text again, never the refused file.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
echo '{"n":1}' > data/in.ndjson
cp data/in.ndjson pdir/in.ndjson # where a supervisor without a data directory looks
sec_start
post_pipeline x "$(file_pipeline '"path": "in.ndjson", "follow": true' '"path": "out-a.ndjson"')"
assert_eq "$(code)" 201 "pipeline created over REST"
outa() { [ -f data/out-a.ndjson ] && echo data/out-a.ndjson || echo pdir/out-a.ndjson; }
outa_has() { lines_eq "$(outa)" "$1"; }
wait_for outa_has 1 || fail "the pipeline did not run"
pid1=$(pid_of x)

# Edit the file behind the API: a sink loaded by path (refused for REST pipelines) writing elsewhere.
so=$(ls "${SLUICE_PLUGIN_PATH##*:}"/file-sink/file-sink.so "${SLUICE_PLUGIN_PATH##*:}"/file-sink.so 2>/dev/null | head -1)
[ -n "$so" ] || so=$SLUICE_BUILD_DIR/plugins/file-sink/file-sink.so
sed -e "s|\(\"\\?use\"\\?\): \"\\?file-sink\"\\?|\1: \"$so\"|" -e 's|out-a.ndjson|out-b.ndjson|' pdir/x.yaml > pdir/.x.new
mv pdir/.x.new pdir/x.yaml
grep -q "file-sink.so" pdir/x.yaml || fail "the edit did not happen"
has_reload_error() { req GET /connectors/x/status >/dev/null; grep -q reload_error "$T/body"; }
wait_for has_reload_error || fail "the edited definition was not refused"
ok "the edited definition is refused"

expect 204 POST /connectors/x/restart "restart"
wait_for eval '[ "$(pid_of x)" != "$pid1" ] && [ "$(pid_of x)" != 0 ]' || fail "the pipeline did not restart"
echo '{"n":2}' >> data/in.ndjson
echo '{"n":2}' >> pdir/in.ndjson
wait_for outa_has 2 || fail "after the restart the checked definition does not run (out-a has $(cat "$(outa)" | wc -l) lines)"
ok "after a restart the checked definition runs"
[ ! -e data/out-b.ndjson ] && [ ! -e pdir/out-b.ndjson ] || fail "the refused definition ran"
ok "the refused definition never ran"
stop_sluice
