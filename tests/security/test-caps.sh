#!/bin/bash
# Bounded input: a YAML alias bomb (337 bytes; it used to take 5 s and 600 MB) is refused with
# a message and little memory; a 20,000-key body is refused at once and the supervisor keeps
# serving meanwhile; nesting depth is capped. Time and memory figures are printed.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
cd "$T"
python3 - > bomb.yaml <<'PY'
print("pipeline: bomb")
print('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
prev = "a"
for n in "bcdefghi":
    print("%s: &%s [%s]" % (n, n, ",".join(["*" + prev] * 9)))
    prev = n
PY
echo "bomb: $(wc -c < bomb.yaml) bytes"
start=$(date +%s%N)
out=$(/usr/bin/time -f '%M' -o rss.txt "$SLUICE" validate bomb.yaml 2>&1); rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "alias bomb: sluice validate took $ms ms, max RSS $(tail -1 rss.txt) KiB"
assert_eq "$rc" 2 "the alias bomb is a config error"
assert_contains "$out" "YAML nodes" "the message says why (too many nodes after aliases)"
rss=$(tail -1 rss.txt)
# Bound the memory, not the time: 400 MB is far above the capped loader (a few MB; ASan adds
# its shadow) and far below the bomb's expansion.
[ "$rss" -lt 400000 ] || fail "the alias bomb used $rss KiB"
ok "the alias bomb stays within memory ($rss KiB)"

depth=$(python3 -c 'print("pipeline: deep\nx: " + "[" * 200 + "]" * 200)')
echo "$depth" > deep.yaml
out=$("$SLUICE" validate deep.yaml 2>&1)
assert_contains "$out" "nesting deeper than" "deep nesting is refused"

sec_start
# 20,000 keys in one body (a map of rdkafka settings): refused at once.
python3 - > big.json <<'PY'
import json
cfg = {"stages": [{"name": "in", "use": "file-source", "with": {"path": "in.ndjson"}},
                  {"name": "out", "use": "kafka-sink", "with": {"brokers": "127.0.0.1:1", "topic": "t",
                   "rdkafka": {"linger.ms.%d" % i: "1" for i in range(20000)}}}]}
print(json.dumps({"name": "big", "config": cfg}))
PY
echo "20,000-key body: $(wc -c < big.json) bytes"
cat > "$T/host.yaml" <<Y
rest: {listen: "127.0.0.1:0", token: $TOKEN, pipeline_dir: pdir, max_body: 4MiB}
Y
stop_sluice
start_sluice "$T/log2.txt" -c "$T/host.yaml"
( curl -s -o "$T/big-body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary @big.json "$BASE/connectors" > "$T/big-code"; date +%s%N > "$T/big-done" ) &
bigpid=$!
# While it is handled, the supervisor answers (no multi-second stall).
start=$(date +%s%N)
for i in 1 2 3 4 5; do curl -s --max-time 30 -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/" || fail "GET / failed while a big body was handled"; done
wait $bigpid
ms=$(( ($(cat "$T/big-done") - start) / 1000000 ))
echo "20,000-key body answered within $ms ms of the first concurrent GET"
assert_eq "$(cat "$T/big-code")" 400 "a 20,000-key body is refused"
assert_contains "$(cat "$T/big-body")" "keys (at most" "the refusal says why"
# validate checks each key on its own: at most 1,000 per request, answered; 20,000 refused.
for n in 1000 20000; do
  python3 -c '
import json, sys
print(json.dumps({"path": "x", **{"k%d" % i: 1 for i in range(int(sys.argv[1]) - 1)}}))' "$n" > many.json
  start=$(date +%s%N)
  code=$(curl -s -o "$T/many-body" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary @many.json "$BASE/connector-plugins/file-sink/config/validate")
  echo "validate with $n keys: HTTP $code in $(( ($(date +%s%N) - start) / 1000000 )) ms"
  if [ "$n" = 1000 ]; then assert_contains "$(cat "$T/many-body")" '"error_count":' "a 1,000-key validate body is answered"
  else assert_eq "$code" 400 "a 20,000-key validate body is refused"; fi
done
stop_sluice
