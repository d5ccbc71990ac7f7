# taplib.sh — a running host with a small file pipeline fed continuously, for the tap/top tests.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"

# start_flow — pipeline "flow": in (file-source, follow) -> check (validator; every 10th record
# invalid) -> out (file-sink), dead letters to dlq. A writer appends ~200 records/s (bounded:
# at most 60 s). Sets SUP, BASE, TOKEN, WRITER.
start_flow() {
  cat >"$T/schema.yaml" <<'Y'
fields:
  id: {type: integer, required: true}
  kind: {type: string, enum: [a, b]}
Y
  cat >"$T/flow.yaml" <<Y
pipeline: flow
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson, follow: true}}
  - {name: check, use: validator, with: {schema: $T/schema.yaml}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
dead_letter: {name: dlq, use: file-sink, with: {path: $T/dlq.ndjson}}
Y
  : >"$T/in.ndjson"
  start_sluice "$T/log.txt" --rest 127.0.0.1:0 "$T/flow.yaml"
  (
    for i in $(seq 1 12000); do
      if [ $((i % 10)) = 0 ]; then echo "{\"id\":$i,\"kind\":\"zzz\"}"; else echo "{\"id\":$i,\"kind\":\"a\"}"; fi
      [ $((i % 20)) = 0 ] && sleep 0.1
    done >>"$T/in.ndjson"
  ) &
  WRITER=$!
  wait_for grep -q '"id":1' "$T/out.ndjson" || fail "the pipeline did not start moving records"
}

stop_flow() {
  kill "$WRITER" 2>/dev/null; wait "$WRITER" 2>/dev/null
  stop_sluice
}
