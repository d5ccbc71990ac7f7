#!/bin/bash
# Slowloris on http-source's listen mode (issue 10): one client (127.0.0.2) opens 300
# connections and trickles half a request on each. It must hold at most
# max_connections_per_client of them, idle ones are closed after idle_timeout, a client on
# another address (127.0.0.1) is answered meanwhile, and the log gets a summary, not one warning
# per connection. Bounded (the attack lasts a few seconds), loopback only.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T" || exit 1
export SLUICE_REST_LISTEN=127.0.0.1:0 SLUICE_STATE_DIR=$T/state
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >p.yaml <<EOF
pipeline: slowloris
stages:
  - name: in
    use: http-source
    with: {mode: listen, address: "127.0.0.1:$PORT", path: /events, max_connections_per_client: 8, idle_timeout: 2s}
  - {name: out, use: file-sink, with: {path: out.ndjson, fsync: false}}
EOF
setsid "$SLUICE" run p.yaml >run.log 2>&1 &
PID=$!
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary '' "http://127.0.0.1:$PORT/events")" = 200 ]; }
wait_for up || fail "listen mode did not come up: $(tail -5 run.log)"

python3 - "$PORT" >attack.txt 2>&1 <<'PY'
import socket, sys, time, urllib.request
port = int(sys.argv[1])
socks = []
for i in range(300):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")  # never finished
        socks.append(s)
    except OSError:
        s.close()

def alive(s):
    """Still open on the server's side? (EOF or reset = closed)"""
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False

time.sleep(0.5)
held = sum(alive(s) for s in socks)
print("connected %d, held by the server after 0.5 s: %d" % (len(socks), held))
# Meanwhile another client is answered.
req = urllib.request.Request("http://127.0.0.1:%d/events" % port, data=b'{"ok":1}\n', method="POST")
t0 = time.time()
with urllib.request.urlopen(req, timeout=10) as r:
    print("other client: HTTP %d" % r.status)
# Keep trickling a header byte to the held ones for a while: limited, not starved.
for _ in range(4):
    for s in socks:
        try:
            s.send(b"X")
        except OSError:
            pass
    time.sleep(0.25)
# Then nothing: idle_timeout (2 s) must close them.
time.sleep(3.5)
left = sum(alive(s) for s in socks)
print("held after 3.5 s idle: %d" % left)
ok = held <= 8 and left == 0
sys.exit(0 if ok else 1)
PY
rc=$?
cat attack.txt
[ $rc = 0 ] || { kill -TERM "$PID"; fail "slowloris: $(tr '\n' ';' <attack.txt)"; }
ok "one client holds at most 8 connections, idle ones are closed, others are answered"
got() { [ "$(grep -c '' out.ndjson 2>/dev/null)" -ge 1 ]; }
wait_for got || fail "the other client's record did not arrive"
kill -TERM "$PID"
wait "$PID"
warns=$(grep -c 'level=warn.*http:' run.log)
[ "$warns" -le 1 ] || fail "$warns warning lines about connections (want one summary at most): $(grep 'level=warn' run.log | head -3)"
ok "connection trouble is summarised: $warns warning line(s), $(grep -c 'level=debug.*http:' run.log) debug line(s)"
echo "$CHECKS checks passed"
