#!/usr/bin/env python3
"""Exactly-once rows of the window stage across a crash, with groups and every restorable
aggregate: part-source (2 partitions, commits) -> window -> restore-feeder (plays the sink that
holds the durable rows, handing them to on_restore with offset = coverage) -> file-sink.

 A. one uninterrupted run: the reference table (last row per window, partition and group).
 P. the run "before the crash" over the input up to Y[p]: its last rows are the table, the
    highest offset of its rows per (topic, partition) the coverage.
 B. the restart after committed offsets C < Y, with P's rows as state. P's table upserted with
    B's rows (tumbling, hopping and session windows) must equal A's exactly — counts, sums, min/max, avg, first/last, derived columns,
    distinct counts from the exact values and from the sketch (both continued from the state
    columns) — and the events forwarded by P (up to C) and B are exactly A's.
 X. the same restart without the state gives other rows: the comparison can fail."""
import json, os, random, tempfile
from wlib import *

fail = Failures()

AGGS = {
    "n": "count", "buys": "count where event_type == \"purchase\"", "gmv": "sum(amount) scale 2 where event_type == \"purchase\"",
    "lo": "min(amount) scale 2", "hi": "max(amount) scale 2", "mean": "avg(amount) scale 2",
    "first_amount": "first(amount) scale 2", "last_amount": "last(amount) scale 2",
    "users": "distinct(user_id) exact 20 sketch users_state", "users_hll": "distinct(user_id) exact 0 sketch users_reg",
    "aov": "= gmv / buys scale 2", "buy_share": "= buys / n decimals 6",
}

PIPE = """pipeline: window-restore
batch_size: 64
stages:
  - {{name: in, use: part-source, with: {{path: in.txt, partitions: 2, offset_file: offsets.txt}}}}
  - name: w
    use: window
    with:
      windows: ["1m", "15m", "10m every 5m", "session 3s"]
      group_by: [event_type]
      allowed_lateness: 30s
      emit_interval: 0s
      close_on_end: {close}
      aggregates: {aggs}
  - {{name: state, use: restore-feeder, with: {{path: state.txt}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
"""

def go(d, lines, close, state=(), offsets=None):
    with open(os.path.join(d, "in.txt"), "w") as f:
        f.writelines(f"{p} {o} {ts}\t{v}\n" for p, o, ts, v in lines)
    with open(os.path.join(d, "state.txt"), "w") as f:
        f.writelines(f"{t} {p} {o} {ts}\t{v}\n" for t, p, o, ts, v in state)
    with open(os.path.join(d, "offsets.txt"), "w") as f:
        f.writelines(f"{p} {o}\n" for p, o in (offsets or {}).items())
    r = run(d, PIPE.format(close="true" if close else "false", aggs=json.dumps(AGGS)), timeout=400)
    out = read_ndjson(os.path.join(d, "out.ndjson"))
    rows = [e for e in out if e["topic"].startswith("window_")]
    events = [e for e in out if e["topic"] == "events"]
    return rows, events, r.stderr

def table(rows, into=None):
    t = dict(into or {})
    for e in rows:  # upsert: the last row per (table, partition, key) wins
        t[(e["topic"], e["partition"], e["key"])] = e
    return t

def main():
    rnd = random.Random(42)
    lines, nxt, ts = [], [0, 0], [BASE, BASE]
    for i in range(12000):
        p = rnd.randrange(2)
        ts[p] += rnd.randrange(1000)
        e = event(rnd, i, ts[p] - rnd.randrange(20000), users=60)
        nxt[p] += 1
        lines.append((p, nxt[p], ts[p], json.dumps(e, separators=(",", ":"))))
    with tempfile.TemporaryDirectory() as d:
        rA, evA, _ = go(d, lines, close=True)
        A = table(rA)
        Y = {0: nxt[0] * 3 // 5, 1: nxt[1] // 2}
        C = {0: Y[0] - 500, 1: Y[1] - 60}
        rP, evP, _ = go(d, [l for l in lines if l[1] <= Y[l[0]]], close=False)
        db, cov = table(rP), {}
        for e in rP:
            k = (e["topic"], e["partition"])
            cov[k] = max(cov.get(k, -1), e["offset"])
        state = [(t, p, cov[(t, p)], e["timestamp"], e["value"]) for (t, p, _), e in sorted(db.items())]
        state += [("events", e["partition"], e["offset"], e["timestamp"], e["value"]) for e in evP
                  if e["offset"] <= C[e["partition"]]]
        rB, evB, err = go(d, lines, close=True, state=state, offsets=C)
        final = table(rB, db)
        # A session merged into another (or whose start moved) leaves a retraction row
        # (merged_into) under its old key; which transient keys got a row before they were
        # retracted depends on when updates went out (wall clock). The live rows must match.
        live = lambda t: {k: e for k, e in t.items() if "merged_into" not in json.loads(e["value"])}
        A, final = live(A), live(final)
        split = {k for k in db if k in {(e["topic"], e["partition"], e["key"]) for e in rB}}
        if set(final) != set(A):
            fail(f"rows after the restart: {len(final)}, uninterrupted: {len(A)} ({len(set(final) ^ set(A))} differ)")
        sketch = exact = 0
        for k, a in A.items():
            b = final.get(k)
            if b and json.loads(a["value"]) != json.loads(b["value"]):
                va, vb = json.loads(a["value"]), json.loads(b["value"])
                fail(f"{k}: after the restart differs in {[f for f in va if va[f] != vb.get(f)]}")
            if k in split:
                v = json.loads(a["value"])
                sketch += not v["users_exact"]
                exact += v["users_exact"]
        fwd = {(e["partition"], e["offset"]) for e in evP if e["offset"] <= C[e["partition"]]} | \
              {(e["partition"], e["offset"]) for e in evB}
        if fwd != {(e["partition"], e["offset"]) for e in evA}:
            fail("events forwarded across the restart differ from the uninterrupted run")
        if "restored" not in err:
            fail("the restore is not logged")
        if not (sketch and exact):
            fail(f"rows split by the crash must include exact ({exact}) and sketch ({sketch}) distinct counts")
        rX, _, _ = go(d, lines, close=True, offsets=C)
        blind = table(rX, db)
        if all(json.loads(blind[k]["value"]) == json.loads(A[k]["value"]) for k in A if k in blind):
            fail("without the state the rows should differ (the test would not notice a broken restore)")
        print(f"{len(lines)} records, {len(A)} rows in the table, {len(split)} split by the crash "
              f"(distinct exact in {exact}, from the sketch in {sketch}); {len(state)} state records")
    fail.exit("window restore")

main()
