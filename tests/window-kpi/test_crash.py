#!/usr/bin/env python3
"""window-kpi acknowledges an input only when the KPI state containing it is durable, checked
end to end: file-source -> validator -> dedup -> window-kpi -> file-sink is killed with
SIGKILL mid-run. Every input at or before the offset the source committed must then be covered
by KPI records already in the sink's file, for every window size: the highest KPI record
offset (its coverage) per size is at least the last aggregated input at or before the commit."""
import json, os, random, signal, subprocess, sys, tempfile, time
from kpilib import *

def main():
    rnd = random.Random(5)
    n, lines, ends, accepted, seen, pos = 200000, [], [], [], set(), 0
    for i in range(n):
        if i > 10 and rnd.random() < 0.05:
            line = lines[-1 - rnd.randrange(10)]  # a duplicate
        else:
            e = event(rnd, i, BASE + i * 20 + rnd.randrange(1000))
            line = json.dumps(e, separators=(",", ":"))
        lines.append(line)
        pos += len(line) + 1
        ends.append(pos)
        eid = json.loads(line)["event_id"]
        if eid not in seen:
            seen.add(eid)
            accepted.append(pos)  # offsets of inputs window-kpi aggregates
    schema = os.path.join(SRC, "pipelines", "ecommerce-event.schema.yaml")
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "in.ndjson"), "w").write("\n".join(lines) + "\n")
        open(os.path.join(d, "p.yaml"), "w").write(f"""pipeline: kpi-crash
batch_size: 64
commit_interval: 20ms
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson, offset_file: in.offset}}}}
  - {{name: v, use: validator, with: {{schema: "{schema}"}}}}
  - {{name: d, use: dedup, with: {{key: event_id, ttl: 10m}}}}
  - {{name: kpi, use: window-kpi, with: {{windows: [1m, 15m, 1h, 24h], passthrough: false, emit_interval: 30ms}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, flush_interval: 10ms}}}}
""")
        p = subprocess.Popen([BIN, "run", "p.yaml"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        off = os.path.join(d, "in.offset")
        deadline = time.time() + 60
        # Kill once a few commits have happened, while most of the input is still unread.
        while time.time() < deadline and p.poll() is None:
            if os.path.exists(off) and int(open(off).read() or 0) > ends[n // 20]:
                break
            time.sleep(0.005)
        finished = p.poll() is not None
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        committed = int(open(off).read())
        out = read_ndjson(os.path.join(d, "out.ndjson"))
    cov = {}
    for e in out:
        w = e["topic"][len("kpi_"):]
        cov[w] = max(cov.get(w, -1), e["offset"])
    last = max((a for a in accepted if a <= committed), default=-1)
    fails = [f"{w}: KPI records cover offset {cov.get(w)}, but the source committed {committed} "
             f"(last aggregated input at or before it: {last})" for w in SIZES if cov.get(w, -1) < last]
    for f in fails:
        print("FAIL", f)
    print(f"killed {'after the end (no crash tested)' if finished else 'mid-run'}: committed {committed} "
          f"of {pos} bytes, coverage {cov}")
    if finished or committed >= pos:
        fails.append("the pipeline was not killed mid-run")
        print("FAIL the pipeline finished before the kill: make the input larger")
    sys.exit(1 if fails else 0)

main()
