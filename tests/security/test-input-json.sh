#!/bin/bash
# Hostile JSON on the data plane (issue 10): NUL, invalid UTF-8, lone surrogates, control bytes,
# duplicate keys, trailing bytes and non-finite numbers at any depth, each sent
#   1. through http-source in poll mode -> validator -> dead letter: every bad record is in the
#      dead letter with a reason that names what is wrong, and none reaches the output;
#   2. through file-source -> validator (the host's api->json path every source shares);
#   3. to http-source in listen mode: a 400 whose body gives the reason, nothing queued.
# A "\u0000" must never let a value pass an enum, pattern or max_length check on a prefix.
# Bounded (every wait has a deadline), loopback only, stops what it starts.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
command -v curl >/dev/null || fail "curl needed"
cd "$T" || exit 1
export SLUICE_REST_LISTEN=127.0.0.1:0 SLUICE_STATE_DIR=$T/state
SCHEMA=$SRC/pipelines/ecommerce-event.schema.yaml

# One valid event, then one bad line per attack (name <TAB> line; the reason each must get).
python3 - <<'PY'
ok = '{"event_id":"e-%s","event_type":"purchase","user_id":"u1","product_id":"p1","amount":1.5,"currency":"USD","ts":"2024-05-01T10:00:00Z"%s}'
cases = [
    ("valid", ok % ("ok", ""), ""),
    ("nul-enum", ok.replace('"purchase"', '"purchase\\u0000x"') % ("1", ""), "string contains NUL (\\u0000)"),
    ("nul-pattern", ok.replace('"USD"', '"USD\\u0000!!"') % ("2", ""), "string contains NUL (\\u0000)"),
    ("nul-maxlen", ok % ("3\\u0000" + "x" * 100, ""), "string contains NUL (\\u0000)"),
    ("nul-key", ok % ("4", ',"a\\u0000b":1'), "string contains NUL (\\u0000)"),
    ("raw-nul", ok % ("5", ',"n":"a\x00b"'), "string contains a NUL byte"),
    ("overlong", ok % ("6", ',"n":"\xc0\xaf"'), "invalid UTF-8"),
    ("surrogate-utf8", ok % ("7", ',"n":"\xed\xa0\x80"'), "invalid UTF-8"),
    ("truncated-utf8", ok % ("8", ',"n":"\xe2\x82"'), "invalid UTF-8"),
    ("lone-surrogate", ok % ("9", ',"n":"\\ud800"'), "lone high surrogate"),
    ("control-outside", ok % ("10", ',\x0b"n":1'), "control byte 0x0b outside a string"),
    ("duplicate", ok % ("11", ',"amount":900'), 'duplicate key "amount"'),
    ("deep-duplicate", ok % ("12", ',"x":{"y":[{"k":1,"k":2}]}'), 'duplicate key "k"'),
    ("trailing", ok % ("13", "") + ' {"more":1}', "trailing bytes"),
    ("deep-inf", ok % ("14", ',"x":{"y":[[1e999]]}'), "not finite"),
    ("neg-inf", ok % ("15", ',"z":-2e308'), "not finite"),
]
with open("cases.tsv", "wb") as f, open("in.ndjson", "wb") as g:
    for name, line, why in cases:
        b = line.encode("latin-1")
        f.write(name.encode() + b"\t" + why.encode() + b"\n")
        g.write(b + b"\n")
PY
NBAD=$(($(grep -c '' cases.tsv) - 1))

# ---- 1. http-source poll -> validator -> dead letter -----------------------------------------
# A loopback server that serves in.ndjson once, then nothing (so each record comes once).
python3 - "$T" >www.out 2>www.log <<'PY' &
import http.server, socketserver, sys, os
body = open(os.path.join(sys.argv[1], "in.ndjson"), "rb").read()
served = []
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b"" if served else body
        served.append(1)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
s = socketserver.TCPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
WWW=$!
port_known() { [ -s www.out ]; }
wait_for port_known || fail "the loopback web server did not start"
PORT=$(head -1 www.out)

pipeline() { # NAME SOURCE-STAGE
    cat >"$1.yaml" <<EOF
pipeline: $1
dead_letter: {use: file-sink, with: {path: $1.dlq, headers: true, fsync: false}}
stages:
  - $2
  - {name: v, use: validator, with: {schema: "$SCHEMA"}}
  - {name: out, use: file-sink, with: {path: $1.out, fsync: false}}
EOF
}
pipeline poll "{name: in, use: http-source, with: {mode: poll, url: \"http://127.0.0.1:$PORT/e\", interval: 100ms}}"
setsid "$SLUICE" run poll.yaml >poll.log 2>&1 &
POLL=$!
all_in() { [ "$(cat poll.dlq poll.out 2>/dev/null | grep -c '')" -ge "$((NBAD + 1))" ]; }
wait_for all_in || { kill -TERM "$POLL"; fail "poll: $(cat poll.dlq poll.out 2>/dev/null | grep -c '') of $((NBAD + 1)) records arrived: $(tail -5 poll.log)"; }
sleep 0.3
kill -TERM "$POLL"
wait "$POLL"
kill "$WWW"
wait "$WWW" 2>/dev/null

check_dlq() { # NAME — every bad case in NAME.dlq once, with its reason; only the valid one out
    python3 - "$1" <<'PY'
import json, sys
name = sys.argv[1]
cases = [l.rstrip(b"\n").split(b"\t") for l in open("cases.tsv", "rb")]
lines = open("in.ndjson", "rb").read().split(b"\n")[:-1]
dlq = [json.loads(l.decode("utf-8", "surrogateescape")) for l in open(name + ".dlq", "rb")]
out = open(name + ".out", "rb").read().split(b"\n")[:-1]
assert len(out) == 1 and b'"e-ok"' in out[0], "%s: output is not just the valid event: %r" % (name, out[:3])
assert len(dlq) == len(cases) - 1, "%s: %d dead letters for %d bad records" % (name, len(dlq), len(cases) - 1)
reasons = {d["value"].encode("utf-8", "surrogateescape"): d["headers"]["sluice.error.reason"] for d in dlq}
bad = 0
for (case, why), line in zip(cases[1:], lines[1:]):
    r = reasons.get(line)
    if r is None or why.decode() not in r or "byte " not in r:
        print("%s: %s: reason %r, want one containing %r and where" % (name, case.decode(), r, why.decode()))
        bad += 1
print("%s: %d bad records, each in the dead letter with its reason, e.g. %r" % (name, len(dlq), reasons[lines[1]]))
sys.exit(1 if bad else 0)
PY
}
check_dlq poll >poll.check 2>&1 || fail "poll mode: $(cat poll.check)"
ok "$(cat poll.check)"
grep -q '"sluice.error.stage":"in"' poll.dlq || fail "poll mode: http-source did not refuse the records itself"
ok "http-source (poll) refused them itself, before any stage read a prefix"

# ---- 2. file-source -> validator: the host's api->json path ---------------------------------
pipeline file "{name: in, use: file-source, with: {path: in.ndjson, offset_file: \"\"}}"
"$SLUICE" run file.yaml >file.log 2>&1 || fail "file pipeline failed: $(tail -5 file.log)"
check_dlq file >file.check 2>&1 || fail "file-source -> validator: $(cat file.check)"
ok "$(cat file.check)"
grep -q '"sluice.error.reason":"record: malformed JSON (byte [0-9]*: string contains NUL' file.dlq ||
    fail "the validator did not get the host's reason for a NUL"
ok "the validator's reason carries the host's check (a NUL never reaches an enum, pattern or max_length check)"

# ---- 3. http-source listen: 400 with the reason, nothing queued -----------------------------
LPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pipeline listen "{name: in, use: http-source, with: {mode: listen, address: \"127.0.0.1:$LPORT\", path: /events}}"
setsid "$SLUICE" run listen.yaml >listen.log 2>&1 &
LIS=$!
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary '' "http://127.0.0.1:$LPORT/events")" = 200 ]; }
wait_for up || { kill -TERM "$LIS"; fail "listen mode did not come up: $(tail -5 listen.log)"; }
n=0
while IFS=$'\t' read -r name why; do
    n=$((n + 1))
    [ "$name" = valid ] && continue
    sed -n "${n}p" in.ndjson >body.bin
    code=$(curl -s -o resp.json -w '%{http_code}' -X POST --data-binary @body.bin "http://127.0.0.1:$LPORT/events")
    [ "$code" = 400 ] || { kill -TERM "$LIS"; fail "listen $name: HTTP $code $(cat resp.json)"; }
    python3 -c 'import json,sys; e=json.load(open("resp.json"))["error"]; sys.exit(0 if sys.argv[1] in e and "byte " in e else 1)' "$why" ||
        { kill -TERM "$LIS"; fail "listen $name: the 400 does not give the reason '$why': $(cat resp.json)"; }
done <cases.tsv
ok "listen mode answers each of the $NBAD bad bodies 400 with its reason"
# An array with one bad element is refused whole, naming the element's byte.
printf '[{"a":1},{"a":"x\\u0000"}]' >arr.bin
code=$(curl -s -o resp.json -w '%{http_code}' -X POST --data-binary @arr.bin "http://127.0.0.1:$LPORT/events")
assert_eq "$code" 400 "listen: a JSON array with a NUL in an element is refused"
sed -n 1p in.ndjson >good.bin
code=$(curl -s -o resp.json -w '%{http_code}' -X POST --data-binary @good.bin "http://127.0.0.1:$LPORT/events")
assert_eq "$code" 202 "listen: the valid event is accepted (202: queued, not yet durable)"
got_one() { [ "$(grep -c '' listen.out 2>/dev/null)" -ge 1 ]; }
wait_for got_one || fail "the accepted event did not reach the output"
kill -TERM "$LIS"
wait "$LIS"
assert_eq "$(grep -c '' listen.out)" 1 "listen: only the accepted event reached the output"
assert_eq "$(cat listen.dlq 2>/dev/null | grep -c '')" 0 "listen: nothing refused with 400 went anywhere"
echo "$CHECKS checks passed"
