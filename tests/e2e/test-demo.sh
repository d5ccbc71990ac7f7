#!/bin/bash
# README command 1 itself: the demo runs ~30 s (--for), and by then every table of the
# reference application has rows; it stops by itself, exits 0 and removes its temp dirs.
# DEMO_ARGS: more demo.sh options (e2e-demo-real: --kafka real).
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
before=$(ls -d /tmp/sluice-demo.* 2>/dev/null | wc -l)
out=$(SLUICE_REST_PORT=$port timeout 240 bash "$SRC/scripts/demo.sh" --no-build --for 30 --check --rate 300 ${DEMO_ARGS:-} 2>&1)
rc=$?
echo "$out" | tail -20
assert_eq "$rc" 0 "the demo exits 0 by itself with --for"
assert_contains "$out" "dashboard        http://127.0.0.1:$port/ui/" "it prints the dashboard URL"
assert_contains "$out" "/ui/?token=$(cat "$SLUICE_STATE_DIR/rest.token")" "the dashboard URL carries the REST token"
assert_contains "$out" "PostgreSQL       psql" "it prints a psql line"
for t in events_clean events_rejected kpi_1m kpi_15m kpi_1h kpi_24h sluice_offsets; do
  n=$(echo "$out" | sed -n "s/^demo: table $t: \([0-9]*\) rows$/\1/p")
  [ -n "$n" ] && [ "$n" -gt 0 ] || fail "table $t has no rows (${n:-not reported})"
  ok "table $t has $n rows"
done
lines=$(echo "$out" | grep -c "events/s .* orders(min) .* GMV(min)")
[ "$lines" -ge 3 ] || fail "expected a live figures line every 5 s, got $lines"
ok "$lines live figure lines"
after=$(ls -d /tmp/sluice-demo.* 2>/dev/null | wc -l)
assert_eq "$after" "$before" "the demo removed its temp dir"
echo "all demo checks passed ($CHECKS)"
