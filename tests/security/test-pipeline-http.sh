#!/bin/bash
# http-source in poll mode reads what a URL answers, and a pipeline created over REST chooses the
# URL and the offset file: the offset file stays in the data directory, only http(s) is fetched,
# and a response larger than max_body is refused instead of growing the process without bound.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
echo 'precious' > victim.txt
echo '[{"secret": "local file"}]' > local.json
# An endpoint that answers a 2 MiB record, with cursor headers.
cat > big.py <<'PY'
import http.server, sys
body = b'[{"s": "' + b'x' * (2 << 20) + b'"}]'
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Seq-First", "1")
        self.send_header("X-Seq-Epoch", "pwned")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 big.py > port.txt &
BIG_PID=$!
wait_for test -s port.txt || fail "the test endpoint did not start"
PORT=$(cat port.txt)
sec_start

http_pipeline() { # WITH-JSON
  echo "{\"stages\": [{\"name\": \"in\", \"use\": \"http-source\", \"with\": {$1}}, {\"name\": \"out\", \"use\": \"file-sink\", \"with\": {\"path\": \"out.ndjson\"}}]}"
}
post_pipeline offw "$(http_pipeline "\"mode\": \"poll\", \"url\": \"http://127.0.0.1:$PORT/e\", \"cursor\": \"after\", \"offset_file\": \"$T/victim.txt\"")"
assert_eq "$(code)" 400 "an http-source offset file outside the data directory is refused"
assert_contains "$(cat "$T/body")" "'offset_file'" "the refusal names the key"
sleep 1
assert_eq "$(cat victim.txt)" precious "the file outside the data directory is untouched"
stop_sluice

# The operator's own pipelines (trusted) are held to the same transport rules.
cat > file.yaml <<Y
pipeline: fileurl
stages:
  - {name: in, use: http-source, with: {mode: poll, url: "file://$T/local.json", interval: 100ms}}
  - {name: out, use: file-sink, with: {path: $T/file-out.ndjson}}
Y
cat > big.yaml <<Y
pipeline: bigbody
stages:
  - {name: in, use: http-source, with: {mode: poll, url: "http://127.0.0.1:$PORT/e", interval: 100ms, max_body: 1MiB}}
  - {name: out, use: file-sink, with: {path: $T/big-out.ndjson}}
Y
"$SLUICE" run --no-rest file.yaml big.yaml > run.log 2>&1 &
RUN_PID=$!
wait_for grep -q "response larger than max_body" run.log || { cat run.log >&2; fail "a 2 MiB poll response under max_body 1MiB was not refused"; }
ok "a response larger than max_body is refused with the reason"
wait_for grep -qiE "fileurl.*unsupported protocol" run.log || { cat run.log >&2; fail "file:// was not refused as a protocol"; }
ok "file:// URLs are refused (http and https only)"
kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null || true
[ ! -s "$T/big-out.ndjson" ] || fail "the oversized record reached the sink"
[ ! -s "$T/file-out.ndjson" ] || fail "the local file reached the sink"
ok "neither reached the sink"
kill "$BIG_PID"; wait "$BIG_PID" 2>/dev/null || true
