#!/bin/bash
# The ABI, practised: a stage built against a copy of the 1.0 header (tests/host/abi10/stage.h)
# loads and runs in this host next to the same stage built against the current header; the
# 1.0 one changes timestamps in place, the current one through api->set_timestamp; the host
# reads no descriptor field past the 1.0 stage's struct_size; on a rebalance the current stage
# is told SL_FLUSH_REVOKE (2) while the 1.0 one gets the only drain reason it knows (1); and a
# stage claiming a newer minor is refused with a message naming both versions.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
cd "$T"
export SLUICE_PLUGIN_PATH="$ABI_STAGES:$TEST_STAGES:${SLUICE_PLUGIN_PATH:-}"

out=$("$SLUICE" plugins 2>&1) || { echo "$out"; fail "sluice plugins with the ABI 1.0 stage failed"; }
assert_contains "$out" "stamp10" "the 1.0 stage is listed"
assert_contains "$out" "stampnow" "the current stage is listed"

cat > p.yaml <<'Y'
pipeline: abi
batch_size: 20
stages:
  - {name: in, use: ticker, with: {count: 200, revoke_at: 100}}
  - {name: old, use: stamp10, with: {ts: 1111}}
  - {name: now, use: stampnow, with: {ts: 2222}}
  - {name: out, use: file-sink, with: {path: out.ndjson, headers: true}}
Y
"$SLUICE" validate p.yaml >log.txt 2>&1 || { cat log.txt; fail "validate with the 1.0 stage failed"; }
ok "a pipeline with the 1.0 stage validates (its descriptor has no check)"
timeout 60 "$SLUICE" __pipeline p.yaml 2>log.txt || { cat log.txt; fail "pipeline with the 1.0 stage failed"; }
assert_contains "$(cat log.txt)" "stage=old msg=\"built for ABI 1.0;" "the 1.0 stage ran"
assert_eq "$(wc -l < out.ndjson)" 200 "every record went through both stages"
python3 - out.ndjson <<'P' || fail "timestamps are not the current stage's"
import json, sys
ts = {json.loads(l)["timestamp"] for l in open(sys.argv[1])}
assert ts == {2222}, ts
P
ok "timestamps set in place (1.0) and through set_timestamp (now) both take"
old=$(grep 'stage=old ' log.txt | sed -n 's/.*flush reason \([0-9]\).*/\1/p' | tr '\n' ' ')
now=$(grep 'stage=now ' log.txt | sed -n 's/.*flush reason \([0-9]\).*/\1/p' | tr '\n' ' ')
assert_eq "$now" "2 1 " "the current stage is told revoke (2), then end (1)"
assert_eq "$old" "1 " "the 1.0 stage gets only the end reason (1) it knows, for both drains"

# A stage whose minor is newer than the host's: refused, naming both versions.
mkdir -p newer && cp "$BAD_STAGES/bad-minor.so" newer/
minor=$(sed -n 's/^#define SL_ABI_MINOR \([0-9]*\).*/\1/p' "$SRC/include/sluice/stage.h")
out=$("$SLUICE" plugins --plugin-path newer 2>&1); rc=$?
assert_eq "$rc" 2 "a newer minor exits 2"
assert_contains "$out" "built for stage ABI 1.$((minor + 7)), newer than this sluice's ABI 1.$minor" "the refusal names both versions"
echo "all abi checks passed ($CHECKS)"
