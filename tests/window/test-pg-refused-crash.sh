#!/bin/bash
# tests/pg/test-kpi-refused.sh — a row PostgreSQL refuses (a trigger) is never counted, and every
# KPI row equals SQL over events_clean, also after kill -9 and a restart — run with the window
# stage (the reference KPIs of pipelines/ecommerce-analytics.yaml) in place of window-kpi.
# The script is taken as it is; only its kpi stage line is replaced.
src="$SLUICE_SOURCE_DIR/tests/pg/test-kpi-refused.sh"
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
python3 - "$src" "$SLUICE_SOURCE_DIR" >"$tmp" <<'PY' || exit 1
import json, sys, yaml
src, root = sys.argv[1], sys.argv[2]
st = [s for s in yaml.safe_load(open(root + "/pipelines/ecommerce-analytics.yaml"))["stages"] if s["name"] == "kpi"][0]
st["with"].update(windows=["1m", "15m"], emit_interval="20ms", close_on_end=True)
text = open(src).read()
old = "  - {name: kpi, use: window-kpi, with: {windows: [1m, 15m], emit_interval: 20ms, close_on_end: true}}"
if old not in text:
    sys.exit("tests/pg/test-kpi-refused.sh changed: its kpi stage line is not there")
text = text.replace(old, "  - " + json.dumps(st)).replace('$(dirname "$0")/pglib.sh', root + "/tests/pg/pglib.sh")
print(text)
PY
bash "$tmp"
