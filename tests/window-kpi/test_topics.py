#!/usr/bin/env python3
"""window-kpi keeps state per (topic, partition): partition 0 of topic "events" and partition 0
of topic "other" are aggregated apart, and each KPI record names its source topic
(source_topic), so two topics read by one pipeline never mix their counts."""
import json, os, random, sys, tempfile
from kpilib import *

PIPE = """pipeline: kpi-topics
stages:
  - {name: in, use: part-source, with: {path: in.txt, partitions: 1, offset_file: ""}}
  - {name: kpi, use: window-kpi, with: {windows: [1m], passthrough: false, close_on_end: true}}
  - {name: out, use: file-sink, with: {path: out.ndjson, headers: true, fsync: false}}
"""

def main():
    rnd = random.Random(7)
    evs = {"events": [], "other": []}
    lines = []
    for i in range(400):
        topic = "events" if i % 3 else "other"
        e = event(rnd, i, BASE + i * 100, users=50)
        evs[topic].append(e)
        prefix = "0" if topic == "events" else "other/0"
        lines.append(f"{prefix} {len(evs[topic])} {BASE + i * 100}\t{json.dumps(e)}\n")
    failures = []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "in.txt"), "w") as f:
            f.writelines(lines)
        run(d, PIPE)
        rows = {}
        for e in read_ndjson(os.path.join(d, "out.ndjson")):
            v = json.loads(e["value"])
            rows[(v.get("source_topic"), v["window_start"])] = v  # the last row wins
    for topic, es in evs.items():
        want = recompute(es)
        for (w, start), agg in want.items():
            if w != "1m":
                continue
            row = rows.get((topic, iso(start).replace(".000Z", "Z")))
            if not row:
                failures.append(f"{topic} {iso(start)}: no KPI row (rows: {sorted(rows)[:4]})")
                continue
            compare(agg, row, f"{topic} {iso(start)}", failures.append)
    for f in failures[:20]:
        print("FAIL", f)
    print(f"window-kpi topics: {len(failures)} failures, {len(rows)} rows")
    sys.exit(1 if failures else 0)

main()
