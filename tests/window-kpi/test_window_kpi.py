#!/usr/bin/env python3
"""window-kpi correctness through the real host: seeded random streams through file-source ->
validator -> dedup -> window-kpi -> file-sink (dead letters to a file-sink), checked against a
straightforward recomputation.

 1. in-order-ish: events shuffled within allowed_lateness, 5 % duplicates: every window of all
    four sizes has exactly one final record (revision 0) equal to the recomputation.
 2. with late events: some arrive minutes late (corrections), some beyond retention (dead
    letters). The last revision of every window equals the recomputation over the events within
    retention, revisions are consecutive, and the dead letters are exactly the events beyond it.
Both check every KPI record's key, timestamp, partition, fields and offset (the coverage: the
highest input offset aggregated so far, never decreasing), and that everything was committed."""
import json, os, sys, tempfile
from kpilib import *

failures = []

def fail(msg):
    failures.append(msg)
    if len(failures) < 30:
        print("FAIL", msg)

def run_case(d, n, seed, late_share=0.0, late_min=0, late_max=1, retention="48h"):
    import random
    rnd = random.Random(seed)
    span, lateness = 30 * 3600 * 1000, 30000
    ret_ms = 900000 if retention == "15m" else 172800000
    evs = []  # (arrival key, is_dup, event)
    for i in range(n):
        ts = BASE + i * span // n + rnd.randrange(1000)
        e = event(rnd, i, ts)
        order = ts + rnd.randrange(lateness)
        if rnd.random() < late_share:
            order = ts + late_min + rnd.randrange(late_max - late_min)
        evs.append((order, 0, e))
        if rnd.randrange(100) < 5:
            evs.append((order + rnd.randrange(20000), 1, dict(e)))
    evs.sort(key=lambda x: (x[0], x[1]))
    # Reference: what window-kpi must reject (arrival order; duplicates never reach it).
    max_ts, accepted, rejected, covered = None, [], set(), 0
    for i, (_, dup, e) in enumerate(evs):
        if dup:
            continue
        ts = parse_ts(e["ts"])
        m = ts if max_ts is None or ts > max_ts else max_ts
        if ts < m - lateness - ret_ms:
            rejected.add(e["event_id"])
        else:
            max_ts = m
            accepted.append(e)
            covered = i  # index of the last input window-kpi aggregates
    aggs = recompute(accepted)
    lines = [json.dumps(e, separators=(",", ":")) for _, _, e in evs]
    ends, pos = [], 0
    for l in lines:
        pos += len(l) + 1
        ends.append(pos)
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        f.write("\n".join(lines) + "\n")
    schema = os.path.join(SRC, "pipelines", "ecommerce-event.schema.yaml")
    run(d, f"""pipeline: kpi-recompute
batch_size: 100
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson, offset_file: in.offset}}}}
  - {{name: v, use: validator, with: {{schema: "{schema}"}}}}
  - {{name: d, use: dedup, with: {{key: event_id, ttl: 10m}}}}
  - {{name: kpi, use: window-kpi, with: {{windows: [1m, 15m, 1h, 24h], passthrough: false, close_on_end: true,
        retention: {retention}, emit_interval: 0s}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    out = read_ndjson(os.path.join(d, "out.ndjson"))
    dlq = read_ndjson(os.path.join(d, "dlq.ndjson"))
    committed = int(open(os.path.join(d, "in.offset")).read())
    if committed != pos:
        fail(f"committed offset {committed}, want the file size {pos}: everything finished")
    os.remove(os.path.join(d, "in.offset"))

    state, updates, corrections, last_off = {}, 0, 0, {}
    for env in out:
        v = json.loads(env["value"])
        w, start = v["window"], parse_ts(v["window_start"])
        key = (w, start)
        where = f"{w} {v['window_start']}"
        if env["topic"] != "kpi_" + w or env["timestamp"] != start or env["partition"] != 0 or v["partition"] != 0:
            fail(f"{where}: topic {env['topic']} timestamp {env['timestamp']} partition {env['partition']}")
        if env.get("key") != "%s|%s|0" % (w, v["window_start"]):
            fail(f"{where}: key {env.get('key')}")
        if len(v) != 19 + ("source_topic" in v) or len(v.get("users_hll", "")) != 1368:
            fail(f"{where}: {len(v)} fields (18, the sketch users_hll, and source_topic when the input has a topic)")
        if env["offset"] < last_off.get(w, 0) or env["offset"] not in ends:
            fail(f"{where}: offset {env['offset']} after {last_off.get(w)}: not an input position, or going back")
        last_off[w] = env["offset"]
        s = state.setdefault(key, {"finals": 0, "last": None})
        if not v["final"]:
            updates += 1
            if s["finals"]:
                fail(f"{where}: an update after the window's final record")
            continue
        if v["revision"] != s["finals"]:
            fail(f"{where}: revision {v['revision']}, want {s['finals']}")
        corrections += v["revision"] > 0
        s["finals"] += 1
        s["last"] = v
    for w in SIZES:
        if last_off.get(w) != ends[covered]:
            fail(f"{w}: the last KPI record covers offset {last_off.get(w)}, want {ends[covered]}")
    if set(k for k, s in state.items() if s["last"]) != set(aggs):
        fail(f"windows with a final record: {len(state)}, recomputed {len(aggs)}")
    for key, a in aggs.items():
        row = state.get(key, {}).get("last")
        if not row:
            continue
        where = f"{key[0]} {row['window_start']}"
        compare(a, row, where, fail)
        o, pf, pv = a.c["orders"], a.c["payment_failed"], a.c["page_views"]
        if (row["avg_order_value"] is None) != (o == 0) or (o and abs(row["avg_order_value"] - a.gmv / o / 100) > 0.005 + 1e-9):
            fail(f"{where}: avg_order_value {row['avg_order_value']}")
        if (row["success_rate"] is None) != (o + pf == 0) or (o + pf and abs(row["success_rate"] - o / (o + pf)) > 1e-6):
            fail(f"{where}: success_rate {row['success_rate']}")
        if (row["conversion_rate"] is None) != (pv == 0) or (pv and abs(row["conversion_rate"] - o / pv) > 1e-6):
            fail(f"{where}: conversion_rate {row['conversion_rate']}")
    got_dl = set()
    for env in dlq:
        eid = json.loads(env["value"]).get("event_id")
        got_dl.add(eid)
        if "older than retention" not in env["headers"]["sluice.error.reason"] or env["headers"]["sluice.error.stage"] != "kpi":
            fail(f"dead letter {eid}: {env['headers']}")
    if got_dl != rejected or len(dlq) != len(rejected):
        fail(f"dead letters {len(dlq)}, want {len(rejected)} ({len(got_dl ^ rejected)} differ)")
    n_dups = sum(d for _, d, _ in evs)
    print(f"{n} events (+{n_dups} duplicates), {len(aggs)} windows, {updates} updates, "
          f"{corrections} corrections, {len(rejected)} dead letters")
    if late_share:
        if not (corrections and rejected):
            fail("the late run exercised corrections and dead letters")
    elif corrections or rejected:
        fail("no corrections without late events")

def main():
    with tempfile.TemporaryDirectory() as d:
        run_case(d, 20000, 7)
        run_case(d, 20000, 11, late_share=0.03, late_min=60000, late_max=40 * 60000, retention="15m")
    print(f"window-kpi: {len(failures)} failures")
    sys.exit(1 if failures else 0)

main()
