#!/bin/bash
# File stages keep "nothing lost": mode truncate truncates only at a pipeline's first start; a
# failed write leaves no torn line; an over-long line's dead letter carries the line's end as
# its position; the default offset file is kept per pipeline and stage in the state directory.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
export SLUICE_STATE_DIR="$T/state"

# 1. truncate + a restart with a resuming source: the second start appends after what the
#    first one committed (the source resumes after it), so nothing is lost.
printf '{"n":1}\n{"n":2}\n{"n":3}\n' > in.ndjson
cat > trunc.yaml <<'Y'
pipeline: trunc
stages:
  - {name: in, use: file-source, with: {path: in.ndjson}}
  - {name: out, use: file-sink, with: {path: out.ndjson, mode: truncate}}
Y
timeout 60 "$SLUICE" __pipeline trunc.yaml 2>log.txt || { cat log.txt; fail "first run failed"; }
printf '{"n":4}\n{"n":5}\n' >> in.ndjson
timeout 60 "$SLUICE" __pipeline trunc.yaml 2>log.txt || { cat log.txt; fail "second run failed"; }
assert_eq "$(cat out.ndjson)" "$(cat in.ndjson)" "truncate + restart with a resuming source: every record kept once"
assert_contains "$(cat log.txt)" "was truncated at this pipeline's first start" "the restart says why it appends"
# A fresh state directory is a first start again: the stale output goes.
echo stale >> out.ndjson
SLUICE_STATE_DIR="$T/state2" timeout 60 "$SLUICE" __pipeline trunc.yaml 2>log.txt || { cat log.txt; fail "third run failed"; }
assert_eq "$(cat out.ndjson)" "$(cat in.ndjson)" "a first start (fresh state) truncates"

# 2. A failed write (file size limit: EFBIG) leaves only complete lines.
seq 1 300 | awk '{ printf "{\"n\":%d,\"pad\":\"%080d\"}\n", $1, 0 }' > big.ndjson
cat > torn.yaml <<'Y'
pipeline: torn
stages:
  - {name: in, use: file-source, with: {path: big.ndjson, offset_file: ""}}
  - {name: out, use: file-sink, with: {path: torn.ndjson}}
Y
rc=0; (trap '' XFSZ; ulimit -f 4; exec timeout 60 "$SLUICE" __pipeline torn.yaml) 2>log.txt || rc=$?
[ "$rc" -ne 0 ] || fail "writing past the file size limit must fail"
assert_contains "$(cat log.txt)" "truncated away" "the partial write is taken back"
python3 - torn.ndjson <<'P' || fail "torn.ndjson holds a torn line"
import json, sys
data = open(sys.argv[1], "rb").read()
assert not data or data.endswith(b"\n"), data[-40:]
for line in data.splitlines():
    json.loads(line)
P
ok "after a failed write the file holds only complete lines ($(wc -c < torn.ndjson) bytes)"

# 3. An over-long line goes to the dead letter with the position of its end (committing it
#    never resumes in the middle of the line).
{ echo '{"n":1}'; printf '{"long":"%02000d"}\n' 0; echo '{"n":2}'; } > long.ndjson
end=$((8 + 2012))
cat > long.yaml <<'Y'
pipeline: long
dead_letter: {use: file-sink, with: {path: long-dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: long.ndjson, max_line: 1KiB, offset_file: long.offset}}
  - {name: out, use: file-sink, with: {path: long-out.ndjson}}
Y
timeout 60 "$SLUICE" __pipeline long.yaml 2>log.txt || { cat log.txt; fail "long-line pipeline failed"; }
assert_eq "$(python3 -c 'import json,sys; print(*[json.loads(l)["offset"] for l in open(sys.argv[1])])' long-dlq.ndjson)" \
  "$end" "the over-long line's dead letter carries its end ($end), not a mid-line offset"
assert_eq "$(cat long-out.ndjson)" $'{"n":1}\n{"n":2}' "the lines around it pass"
assert_eq "$(cat long.offset)" "$(wc -c < long.ndjson)" "the committed offset is the end of the file"

# 4. Two pipelines reading one file with the default offset file: each keeps its own position.
printf '{"n":1}\n{"n":2}\n' > shared.ndjson
for p in first second; do
  cat > $p.yaml <<Y
pipeline: $p
stages:
  - {name: in, use: file-source, with: {path: shared.ndjson}}
  - {name: out, use: file-sink, with: {path: $p-out.ndjson}}
Y
  timeout 60 "$SLUICE" __pipeline $p.yaml 2>log.txt || { cat log.txt; fail "$p failed"; }
done
assert_eq "$(cat second-out.ndjson)" "$(cat shared.ndjson)" "a second pipeline on the same input reads it all"
[ ! -e shared.ndjson.sluice-offset ] || fail "an offset file sits next to the input"
assert_eq "$(cat "$SLUICE_STATE_DIR"/file-source/first/in-*.offset "$SLUICE_STATE_DIR"/file-source/second/in-*.offset)" \
  $'16\n16' "offsets are kept per pipeline and stage under the state directory"
echo "all file-stage checks passed ($CHECKS)"
