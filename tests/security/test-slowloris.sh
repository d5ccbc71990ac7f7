#!/bin/bash
# Slow and half-open connections are limited per client on the REST server: one address
# holding 300 half-sent requests cannot lock out another client, idle ones are dropped, and the
# refusals are not logged one warning each.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
sec_start
port=${BASE##*:}
python3 - "$port" > slow.txt <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
held = []
for i in range(300):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        held.append(s)
    except OSError:
        pass
print(len(held), flush=True)
time.sleep(8)
PY
slow=$!
sleep 2
start=$(date +%s%N)
code=$(curl -s --interface 127.0.0.2 --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/" || true)
echo "another client answered in $(( ($(date +%s%N) - start) / 1000000 )) ms while one address held slow connections"
assert_eq "$code" 200 "another client is served while one address holds 300 slow connections"
wait $slow
echo "the slow client opened $(cat slow.txt) connections"
warns=$(grep -c 'level=warn' "$T/log.txt" || true)
[ "$warns" -lt 5 ] || fail "$warns warnings logged for slow connections"
ok "slow connections are not logged one warning each"
stop_sluice
