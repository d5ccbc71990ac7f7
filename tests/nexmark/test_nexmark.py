#!/usr/bin/env python3
"""Nexmark queries checked against the Python reference (bench/nexmark/reference.py): 20,000
seeded events from nexmark-gen, each query's pipeline (bench/nexmark/qN.yaml) run by the real
host, and its output compared row by row, in order, with the reference over the same events, so
the throughput figures in bench/README.md are for correct answers."""
import json, os, shutil, subprocess, sys, tempfile

BIN, SRC, BUILD = os.environ["SLUICE_BIN"], os.environ["SLUICE_SOURCE_DIR"], os.environ["SLUICE_BUILD_DIR"]
NEX = os.path.join(SRC, "bench", "nexmark")
sys.path.insert(0, NEX)
import reference  # noqa: E402

EVENTS = 20000  # at 500 events/s of event time: 40 s, several windows for q5 and q7
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)


def main():
    gen = sys.argv[1] if len(sys.argv) > 1 else os.path.join(BUILD, "bench", "nexmark", "nexmark-gen")
    with tempfile.TemporaryDirectory() as d:
        ev = os.path.join(d, "events.ndjson")
        with open(ev, "w") as f:
            subprocess.run([gen, "-n", str(EVENTS), "-s", "7", "-r", "500"], stdout=f, check=True, timeout=60)
        events = reference.load(ev)
        types = [e["type"] for e in events]
        check(types.count("person") == EVENTS // 50 and types.count("auction") == 3 * EVENTS // 50,
              f"proportions: {types.count('person')} persons, {types.count('auction')} auctions")
        queries = sorted(q for q in reference.QUERIES if os.path.exists(os.path.join(NEX, q + ".yaml")))
        for q in queries:
            shutil.copy(os.path.join(NEX, q + ".yaml"), d)
            r = subprocess.run([BIN, "run", q + ".yaml"], cwd=d, capture_output=True, timeout=120)
            check(r.returncode == 0, f"{q}: sluice exited {r.returncode}: {r.stderr.decode()[-1500:]}")
            with open(os.path.join(d, q + ".out.ndjson")) as f:
                got = reference.final_rows(q, [reference.normalise(q, json.loads(l)) for l in f if l.strip()])
            want = reference.QUERIES[q](events)
            check(len(got) == len(want), f"{q}: {len(got)} rows, reference {len(want)}")
            bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
            check(not bad, f"{q}: {len(bad)} rows differ, first: {bad[:1]}")
            check(len(want) > 0, f"{q}: the reference is empty (a vacuous comparison)")
            print(f"{q}: {len(got)} rows match the reference")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
