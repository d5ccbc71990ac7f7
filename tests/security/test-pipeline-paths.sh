#!/bin/bash
# Pipelines created over REST name files only inside the operator's data directory (rest.data_dir):
# no '..', no absolute path elsewhere, no symbolic link out of it, never the pipeline directory.
# The operator's own files stay free to name any path.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
echo '{"n":1}' > data/in.ndjson
echo 'secret' > outside.txt
ln -s "$T" data/link
sec_start

refused() { # NAME WHAT SRC-WITH SINK-WITH
  post_pipeline "$1" "$(file_pipeline "$3" "$4")"
  [ "$(code)" = 400 ] || fail "$2: expected 400, got $(code): $(cat "$T/body")"
  ok "$2 is refused (400)"
}
refused dotdot "a source path with .." '"path": "../outside.txt"' '"path": "out.ndjson"'
refused abs "an absolute source path" "\"path\": \"$T/outside.txt\"" '"path": "out.ndjson"'
refused etc "/etc/passwd" '"path": "/etc/passwd"' '"path": "out.ndjson"'
refused sinkabs "an absolute sink path" '"path": "in.ndjson"' "\"path\": \"$T/pwned.ndjson\""
refused symlink "a path through a symbolic link out of the data directory" '"path": "link/outside.txt"' '"path": "out.ndjson"'
refused offsets "an offset file outside" '"path": "in.ndjson", "offset_file": "/tmp/x.off"' '"path": "out.ndjson"'
refused stdout "stdout as a sink" '"path": "in.ndjson"' '"path": "-"'
assert_contains "$(cat "$T/body")" "'path'" "the refusal names the key"
[ ! -e "$T/pwned.ndjson" ] || fail "a refused pipeline wrote outside the data directory"
ok "nothing was written outside"

# A validator schema is a path too.
post_pipeline schema "{\"stages\": [{\"name\": \"in\", \"use\": \"file-source\", \"with\": {\"path\": \"in.ndjson\"}}, {\"name\": \"v\", \"use\": \"validator\", \"with\": {\"schema\": \"/etc/passwd\"}}, {\"name\": \"out\", \"use\": \"file-sink\", \"with\": {\"path\": \"out.ndjson\"}}]}"
assert_eq "$(code)" 400 "a validator schema outside the data directory is refused"

# Inside the data directory: accepted, and relative paths are relative to it.
post_pipeline good "$(file_pipeline '"path": "in.ndjson"' '"path": "out.ndjson"')"
assert_eq "$(code)" 201 "a pipeline inside the data directory is created"
wait_for lines_eq "$T/data/out.ndjson" 1 || fail "the good pipeline did not copy its input"
ok "relative paths resolve in the data directory"
stop_sluice

# The operator's file may name any path (trusted).
cat > op.yaml <<Y
pipeline: op
stages:
  - {name: in, use: file-source, with: {path: $T/outside.txt}}
  - {name: out, use: file-sink, with: {path: ../$(basename "$T")/op-out.ndjson}}
Y
"$SLUICE" validate op.yaml >/dev/null 2>&1 || fail "an operator file with absolute and .. paths was refused"
ok "operator files are trusted with paths"

# A REST-written file that does not pass (here: an absolute path written by hand) is refused
# with a log line, and does not keep the supervisor from starting.
cat > pdir/stale.yaml <<Y
# created over the sluice REST API; edits here are picked up on reload
pipeline: stale
stages:
  - {name: in, use: file-source, with: {path: $T/outside.txt}}
  - {name: out, use: file-sink, with: {path: out.ndjson}}
Y
start_sluice "$T/log2.txt" -c "$T/host.yaml"
expect 200 GET / "the supervisor starts with a refused REST-written file"
grep -q "stale.yaml.*is refused" "$T/log2.txt" || fail "the refused file is not logged"
ok "the refused REST-written file is logged"
expect 404 GET /connectors/stale "the refused pipeline does not run"
stop_sluice

# Operator-only settings (SL_CFG_OPERATOR_ONLY): pg-sink's create_tables runs DDL in the
# operator's database; a pipeline created over REST may not set it.
start_sluice "$T/log3.txt" -c "$T/host.yaml"
req POST /connectors '{"name": "ddl", "config": {"stages": [{"name": "in", "use": "file-source", "with": {"path": "in.ndjson"}}, {"name": "out", "use": "pg-sink", "with": {"dsn": "host=127.0.0.1 port=1", "tables": {"t": {"columns": {"id": "text"}}}, "create_tables": true}}]}}' >/dev/null
assert_eq "$(code)" 400 "create_tables over REST is refused"
assert_contains "$(cat "$T/body")" "'create_tables' may be set only in the operator's own pipeline files" "the refusal names the setting"
stop_sluice
