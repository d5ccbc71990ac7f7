#!/bin/bash
# Consumer lag comes from the source (api->report_end_offsets, ABI 1.8), not from the host
# knowing its config: a test source (ticker, no Kafka) that owns partition 0, emits records
# 1..50 and reports the partition's end 7 records further shows lag 7 once its records are
# committed, in the status and in /metrics.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir pl
cat > pl/t.yaml <<Y
pipeline: t
stages:
  - {name: in, use: ticker, with: {count: 50, ends_behind: 7}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
start_sluice log.txt --rest 127.0.0.1:0 pl
wait_for lines_eq out.ndjson 50 || fail "records did not arrive"
lag_is() { # END COMMITTED LAG
  curl -s "$BASE/connectors/t/status" > st.json
  python3 - "$@" <<'P'
import json, sys
lag = json.load(open("st.json")).get("lag") or []
want = [{"topic": "ticks", "partition": 0, "lag": int(sys.argv[3]), "end": int(sys.argv[1]), "committed": int(sys.argv[2])}]
sys.exit(0 if lag == want else 1)
P
}
wait_for lag_is 58 51 7 || fail "status lag: $(cat st.json)"
ok "status shows the source's end, the next offset after the last commit and the lag"
curl -s "$BASE/metrics" > m.txt
assert_contains "$(cat m.txt)" 'sluice_consumer_lag{pipeline="t",topic="ticks",partition="0"} 7' "lag gauge in /metrics"
stop_sluice
echo "all lag checks passed ($CHECKS)"
