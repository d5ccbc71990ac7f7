#!/usr/bin/env python3
"""Exactly-once KPIs across a crash, without a database: part-source (2 partitions, commits)
-> dedup -> window-kpi -> restore-feeder (plays the sink that holds durable state) -> file-sink.

 A. one uninterrupted run over the whole input: the reference KPI table (last row per window
    and partition) and the forwarded events.
 P. the run "before the crash" over the input up to Y[p]: its last KPI row per window is what a
    KPI table holds, with coverage Y = the highest offset of its KPI records per (table,
    partition); its forwarded events up to C[p] < Y[p] are what events_clean holds at the
    committed offset C.
 B. the restart: resumes after C (offset file), state = P's KPI rows (offset = coverage) and
    events up to C, handed to on_restore. P's table upserted with B's KPI records must equal A's
    table (distinct_users within the sketch's error), and P's events up to C plus B's events
    must be exactly A's: nothing counted twice (inputs in (C, Y] are replayed but skipped),
    nothing lost, no duplicate forwarded."""
import json, os, random, sys, tempfile
from kpilib import *

failures = []

def fail(msg):
    failures.append(msg)
    if len(failures) < 30:
        print("FAIL", msg)

PIPE = """pipeline: kpi-restore
batch_size: 64
stages:
  - {{name: in, use: part-source, with: {{path: in.txt, partitions: 2, offset_file: offsets.txt}}}}
  - {{name: d, use: dedup, with: {{key: event_id, ttl: 10m}}}}
  - {{name: kpi, use: window-kpi, with: {{windows: [1m, 15m, 1h, 24h], allowed_lateness: 30s,
        emit_interval: 0s, close_on_end: {close}}}}}
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
    r = run(d, PIPE.format(close="true" if close else "false"))
    out = read_ndjson(os.path.join(d, "out.ndjson"))
    kpis = [e for e in out if e["topic"].startswith("kpi_")]
    events = [e for e in out if e["topic"] == "events"]
    return kpis, events, r.stderr

def table(kpis, into=None):
    t = dict(into or {})
    for e in kpis:  # upsert: the last row per (table, partition, window) wins
        t[(e["topic"], e["partition"], e["timestamp"])] = e
    return t

def main():
    rnd = random.Random(99)
    lines, nxt, ts = [], [0, 0], [BASE, BASE]
    recent = [[], []]
    for i in range(16000):
        p = rnd.randrange(2)
        ts[p] += rnd.randrange(1400)  # ~3 h of event time per partition
        if recent[p] and rnd.random() < 0.05:
            v = rnd.choice(recent[p][-50:])  # a duplicate
        else:
            e = event(rnd, i, ts[p] - rnd.randrange(20000), users=300)  # shuffled within lateness
            v = json.dumps(e, separators=(",", ":"))
            recent[p].append(v)
        nxt[p] += 1
        lines.append((p, nxt[p], ts[p], v))

    with tempfile.TemporaryDirectory() as d:
        kA, evA, _ = go(d, lines, close=True)
        A = table(kA)
        fwdA = {(e["partition"], e["offset"]) for e in evA}

        Y = {0: nxt[0] * 3 // 5, 1: nxt[1] // 2}
        C = {0: Y[0] - 700, 1: Y[1] - 40}
        kP, evP, _ = go(d, [l for l in lines if l[1] <= Y[l[0]]], close=False)
        db = table(kP)
        cov = {}
        for e in kP:
            k = (e["topic"], e["partition"])
            cov[k] = max(cov.get(k, -1), e["offset"])
        for (topic, p), y in cov.items():
            if y > Y[p]:
                fail(f"{topic} partition {p}: coverage {y} beyond the input {Y[p]}")
        events_clean = [e for e in evP if e["offset"] <= C[e["partition"]]]
        state = [(t, p, cov[(t, p)], ts_, e["value"]) for (t, p, ts_), e in sorted(db.items())]
        state += [("events", e["partition"], e["offset"], e["timestamp"], e["value"]) for e in events_clean]

        kB, evB, err = go(d, lines, close=True, state=state, offsets=C)
        final = table(kB, db)
        updated_after = {(e["topic"], e["partition"], e["timestamp"]) for e in kB}
        split = 0
        if set(final) != set(A):
            fail(f"windows after the restart: {len(final)}, uninterrupted: {len(A)} ({len(set(final) ^ set(A))} differ)")
        for k, a in A.items():
            b = final.get(k)
            if not b:
                continue
            va, vb = json.loads(a["value"]), json.loads(b["value"])
            for f in FIELDS + ("gmv", "refund_amount", "final", "revision", "window_end"):
                if va[f] != vb[f]:
                    fail(f"{k}: {f} {vb[f]} after the restart, {va[f]} uninterrupted")
            du_a, du_b = va["distinct_users"], vb["distinct_users"]
            if k in db and k in updated_after:
                # Split by the crash: the row's own sketch (users_hll) was restored and merged,
                # so the estimate is the one the uninterrupted run's sketch gives, exactly.
                if du_b != du_a or vb.get("users_hll") != va.get("users_hll"):
                    fail(f"{k}: distinct_users {du_b} after the restart (sketch restored), uninterrupted {du_a}")
                split += 1
            elif abs(du_a - du_b) > 0.1 * du_a + 1:
                fail(f"{k}: distinct_users {du_b}, uninterrupted {du_a}")
        fwd = {(e["partition"], e["offset"]) for e in events_clean} | {(e["partition"], e["offset"]) for e in evB}
        if fwd != fwdA:
            fail(f"events: {len(fwd ^ fwdA)} differ from the uninterrupted run")
        if any(e["offset"] <= C[e["partition"]] for e in evB):
            fail("the restart forwarded records at or before the committed offset")
        if "restored" not in err:
            fail("the restore is not logged")
        # Without the state, the same restart double-counts nothing it was not given but loses
        # the windows' history: the check above must be able to fail.
        kX, _, _ = go(d, lines, close=True, offsets=C)
        blind = table(kX, db)
        if all(json.loads(blind[k]["value"])["events"] == json.loads(A[k]["value"])["events"] for k in A if k in blind):
            fail("without restore the KPIs should differ (the test would not notice a broken restore)")
        if not split:
            fail("no window was split by the crash: the sketch restore is not exercised")
        print(f"{split} windows split by the crash with distinct_users equal to the uninterrupted run")
        print(f"{len(lines)} records, {len(A)} windows, {len(kP)} KPI records before the crash, "
              f"{len(kB)} after; {len(state)} state records")
    print(f"window-kpi restore: {len(failures)} failures")
    sys.exit(1 if failures else 0)

main()
