#!/usr/bin/env python3
"""End to end through the real binary: file-source -> validator -> dedup -> window-kpi ->
file-sink over a generated NDJSON file (valid events shuffled within the lateness bound, 5 %
duplicates, a few invalid ones). Checks that the invalid events are exactly the dead letters,
with their reasons, and that the last final record of every window (1m, 15m, 1h, 24h)
equals a recomputation from the valid, unique events."""
import json, os, random, subprocess, sys, tempfile
from datetime import datetime, timezone

BIN = os.environ["SLUICE_BIN"]
SRC = os.environ["SLUICE_SOURCE_DIR"]
PLUGINS = os.environ["SLUICE_PLUGIN_PATH"]
SIZES = {"1m": 60_000, "15m": 900_000, "1h": 3_600_000, "24h": 86_400_000}
BASE = 1714521600000  # 2024-05-01T00:00:00Z
TYPES = ["page_view"] * 30 + ["add_to_cart"] * 25 + ["purchase"] * 35 + ["payment_failed"] * 8 + ["refund"] * 2

def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)

def main():
    rnd = random.Random(2024)
    events, lines, invalid = [], [], {}
    n, span = 8000, 6 * 3600 * 1000
    for i in range(n):
        t = rnd.choice(TYPES)
        ts = BASE + i * span // n + rnd.randrange(1000)
        e = {"event_id": "e%d" % i, "event_type": t, "user_id": "u%d" % rnd.randrange(300), "ts": iso(ts)}
        if t != "page_view":
            e["product_id"] = "p%d" % rnd.randrange(50)
        if t in ("purchase", "payment_failed", "refund"):
            e["amount"] = rnd.randrange(1, 50000) / 100
        events.append((ts + rnd.randrange(30000), e))
        if rnd.random() < 0.05:
            events.append((ts + rnd.randrange(30000) + 1, dict(e)))
    bad = [('{"event_id": "x1", "event_type": "purchase"', "record: malformed JSON"),
           ('[1, 2, 3]', "record: not a JSON object"),
           ('{"event_id":"x2","event_type":"purchase","user_id":"u","product_id":"p","ts":"2024-05-01T01:00:00Z"}',
            "amount: required when event_type=purchase"),
           ('{"event_id":"x3","event_type":"page_view","user_id":"u","ts":"2024-05-01T01:00:00"}',
            "ts: timestamp without time zone"),
           ('{"event_id":"x4","event_type":"page_view","user_id":"u","ts":"2024-05-01T01:00:00Z","quantity":0}',
            "quantity: below min 1")]
    events.sort(key=lambda p: p[0])
    for _, e in events:
        lines.append(json.dumps(e))
    for k, (line, reason) in enumerate(bad):
        lines.insert(500 + 1000 * k, line)
        invalid[line] = reason

    seen, agg = set(), {}
    for _, e in events:
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        ts = int(datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000 + 0.5)
        for w, size in SIZES.items():
            a = agg.setdefault((w, ts // size * size), {"events": 0, "page_views": 0, "add_to_cart": 0, "orders": 0,
                                                        "payment_failed": 0, "refunds": 0, "gmv": 0, "refund_amount": 0,
                                                        "users": set()})
            a["events"] += 1
            a["users"].add(e["user_id"])
            t = e["event_type"]
            key = {"page_view": "page_views", "add_to_cart": "add_to_cart", "purchase": "orders",
                   "payment_failed": "payment_failed", "refund": "refunds"}[t]
            a[key] += 1
            if t == "purchase":
                a["gmv"] += round(e["amount"] * 100)
            if t == "refund":
                a["refund_amount"] += round(e["amount"] * 100)

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "in.ndjson"), "w") as f:
            f.write("\n".join(lines) + "\n")
        schema = os.path.join(SRC, "pipelines", "ecommerce-event.schema.yaml")
        with open(os.path.join(d, "p.yaml"), "w") as f:
            f.write(f"""pipeline: e2e-kpi
tasks: 1
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson}}}}
  - {{name: v, use: validator, with: {{schema: "{schema}"}}}}
  - {{name: d, use: dedup, with: {{key: event_id, ttl: 10m}}}}
  - {{name: k, use: window-kpi, with: {{windows: [1m, 15m, 1h, 24h], passthrough: false, close_on_end: true}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson}}}}
""")
        r = subprocess.run([BIN, "run", "--plugin-path", PLUGINS, os.path.join(d, "p.yaml")], cwd=d,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            print(r.stderr[-3000:])
            sys.exit("sluice exited with %d" % r.returncode)
        out = [json.loads(l) for l in open(os.path.join(d, "out.ndjson")) if l.strip()]
        dlq = [json.loads(l) for l in open(os.path.join(d, "dlq.ndjson")) if l.strip()]

    fails = []
    got = {}
    for d in dlq:
        got[d["value"]] = d["headers"].get("sluice.error.reason", "")
    if set(got) != set(invalid):
        fails.append("dead letters %r != invalid %r" % (sorted(got), sorted(invalid)))
    for line, reason in invalid.items():
        if line in got and not got[line].startswith(reason):
            fails.append("reason %r, want %r" % (got[line], reason))
    last = {}
    for rec in out:
        if rec["final"]:
            start = int(datetime.strptime(rec["window_start"], "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)
            last[(rec["window"], start)] = rec
    if set(last) != set(agg):
        fails.append("windows differ: %d final vs %d expected" % (len(last), len(agg)))
    for k, a in agg.items():
        g = last.get(k)
        if not g:
            continue
        for f in ("events", "page_views", "add_to_cart", "orders", "payment_failed", "refunds"):
            if g[f] != a[f]:
                fails.append("%s %s: %s %s != %s" % (k[0], k[1], f, g[f], a[f]))
        for f in ("gmv", "refund_amount"):
            if round(g[f] * 100) != a[f]:
                fails.append("%s %s: %s %s != %.2f" % (k[0], k[1], f, g[f], a[f] / 100))
        du = len(a["users"])
        if abs(g["distinct_users"] - du) > 0.1 * du + 1:
            fails.append("%s: distinct_users %s vs %s" % (k, g["distinct_users"], du))
    for f in fails[:20]:
        print("FAIL", f)
    print("%d KPI records, %d windows, %d dead letters, %d failures" % (len(out), len(agg), len(dlq), len(fails)))
    sys.exit(1 if fails else 0)

main()
