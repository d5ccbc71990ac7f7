#!/bin/bash
# A FIFO (or any non-regular file) in a watched pipeline directory is skipped, never opened
# for reading: opening it blocked the supervisor for good (REST stopped answering).
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
mkdir pipes
echo '{"n":1}' > in.ndjson
cat > pipes/a.yaml <<Y
pipeline: a
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
mkfifo pipes/evil.yaml
sec_start pipes
curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/" > code1 || true
assert_eq "$(cat code1)" 200 "with a FIFO present at start the supervisor serves REST"
assert_eq "$(state_of a)" RUNNING "the regular pipeline file runs"
grep -q "evil.yaml" "$T/log.txt" || fail "the skipped FIFO is not logged"
ok "the FIFO is reported"
# One more arrives while running (inotify reload): still skipped.
mkfifo pipes/evil2.yaml
touch pipes/a.yaml
kill -HUP "$SUP"
sleep 1
curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/" > code2 || true
assert_eq "$(cat code2)" 200 "after a reload with a new FIFO the supervisor still answers"
assert_eq "$(state_of a)" RUNNING "the pipeline still runs"
stop_sluice
