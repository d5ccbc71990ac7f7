"""Helpers shared by the window-kpi tests: event generation, recomputation, running sluice."""
import json, os, random, subprocess
from datetime import datetime, timezone

BIN = os.environ["SLUICE_BIN"]
SRC = os.environ["SLUICE_SOURCE_DIR"]
STAGES = os.environ.get("DEDUP_TEST_STAGES", "")
SIZES = {"1m": 60_000, "15m": 900_000, "1h": 3_600_000, "24h": 86_400_000}
BASE = 1714521600000  # 2024-05-01T00:00:00Z, a 24h boundary
TYPES = ["page_view", "add_to_cart", "purchase", "payment_failed", "refund"]
COUNT = {"page_view": "page_views", "add_to_cart": "add_to_cart", "purchase": "orders",
         "payment_failed": "payment_failed", "refund": "refunds"}
FIELDS = ("events", "page_views", "add_to_cart", "orders", "payment_failed", "refunds")

def iso(ms):
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)

def parse_ts(s):
    return int(round(datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z").timestamp() * 1000)) \
        if "." not in s else int(round(datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000))

def pick_type(rnd):
    r = rnd.randrange(100)  # the reference mix 30-25-35-8-2
    return TYPES[0 if r < 30 else 1 if r < 55 else 2 if r < 90 else 3 if r < 98 else 4]

def event(rnd, i, ts, users=1000):
    t = pick_type(rnd)
    e = {"event_id": "e%d" % i, "event_type": t, "user_id": "u%d" % rnd.randrange(users), "product_id": "p%d" % (i % 77)}
    if t in ("purchase", "payment_failed", "refund"):
        e["amount"] = rnd.randrange(1, 50001) / 100
        e["currency"] = "USD"
    e["ts"] = iso(ts)
    return e

class Agg:
    def __init__(self):
        self.c = dict.fromkeys(FIELDS, 0)
        self.gmv = self.refund = 0
        self.users = set()

    def add(self, e):
        self.c["events"] += 1
        self.c[COUNT[e["event_type"]]] += 1
        if e["event_type"] == "purchase":
            self.gmv += round(e["amount"] * 100)
        if e["event_type"] == "refund":
            self.refund += round(e["amount"] * 100)
        self.users.add(e["user_id"])

def recompute(events):
    """{(window, start): Agg} over events (dicts with 'ts')."""
    aggs = {}
    for e in events:
        ts = parse_ts(e["ts"])
        for w, size in SIZES.items():
            aggs.setdefault((w, ts // size * size), Agg()).add(e)
    return aggs

def compare(agg, row, where, fail, users_tol=0.1):
    for f in FIELDS:
        if row[f] != agg.c[f]:
            fail(f"{where}: {f} {row[f]}, want {agg.c[f]}")
    if round(row["gmv"] * 100) != agg.gmv or round(row["refund_amount"] * 100) != agg.refund:
        fail(f"{where}: gmv {row['gmv']} refund {row['refund_amount']}, want {agg.gmv / 100} {agg.refund / 100}")
    du = len(agg.users)
    if abs(row["distinct_users"] - du) > users_tol * du + 1:
        fail(f"{where}: distinct_users {row['distinct_users']}, exact {du}")

def run(d, yaml_text, timeout=120, check=True):
    with open(os.path.join(d, "p.yaml"), "w") as f:
        f.write(yaml_text)
    env = dict(os.environ)
    if STAGES:
        env["SLUICE_PLUGIN_PATH"] = STAGES + ":" + os.environ.get("SLUICE_PLUGIN_PATH", "")
    for _out in ("out.ndjson", "dlq.ndjson"):  # mode truncate empties only at a first start
        if os.path.exists(os.path.join(d, _out)):
            os.remove(os.path.join(d, _out))
    r = subprocess.run([BIN, "run", "p.yaml"], cwd=d, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise SystemExit("sluice exited %d: %s" % (r.returncode, r.stderr[-3000:]))
    return r

def read_ndjson(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []
