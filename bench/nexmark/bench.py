#!/usr/bin/env python3
"""Nexmark throughput of sluice: generates EVENTS seeded events (nexmark-gen), then runs each
query's pipeline (qN.yaml in this folder) with its file-sink swapped for bench/stages'
null-sink (a blackhole, as Nexmark's Flink figures use), `sluice run` as a child process, best
of RUNS. Prints events/s by wall clock and per CPU-second of the sluice process (user + sys:
"per core"), next to file-source -> null-sink (the host's floor). Never fails on time.
usage: SLUICE_BUILD_DIR=build bench/nexmark/bench.py [EVENTS] [RUNS]"""
import os, re, resource, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD_DIR", os.path.join(HERE, "..", "..", "build")))
BIN = os.path.join(BUILD, "host", "sluice")
NULL = os.path.join(BUILD, "bench", "stages", "null-sink.so")
GEN = os.path.join(BUILD, "bench", "nexmark", "nexmark-gen")
FLINK = {"q0": "155 k", "q1": "—", "q2": "—", "q5": "22.1 k", "q7": "12.3 k"}

FLOOR = """pipeline: nexmark-floor
batch_size: 1024
stages:
  - {name: events, use: file-source, with: {path: events.ndjson, offset_file: ""}}
  - {name: out, use: file-sink, with: {path: floor.out.ndjson, mode: truncate, fsync: false}}
"""


def timed(cwd, yaml):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([BIN, "run", "--no-rest", yaml], cwd=cwd, capture_output=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        sys.exit(f"{yaml}: exit {r.returncode}: {r.stderr.decode()[-800:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2000000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for p in (BIN, NULL, GEN):
        if not os.path.exists(p):
            sys.exit(f"missing {p}: ninja -C {BUILD} host/sluice bench/stages/null-sink.so bench/nexmark/nexmark-gen "
                     "plugins/file-source/file-source.so plugins/transform/transform.so")
    env_note = f"{events} events, best of {runs}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "events.ndjson"), "w") as f:
            subprocess.run([GEN, "-n", str(events), "-s", "1"], stdout=f, check=True)
        size = os.path.getsize(os.path.join(d, "events.ndjson"))
        queries = [("floor", FLOOR)]
        for q in ("q0", "q1", "q2", "q5", "q7"):
            p = os.path.join(HERE, q + ".yaml")
            if os.path.exists(p):
                queries.append((q, open(p).read()))
        print(f"# Nexmark on sluice: {env_note}, {size / events:.0f} bytes/event")
        print("| query | wall events/s | events/s per core (CPU s) | Flink per core |")
        print("|---|---|---|---|")
        for q, text in queries:
            # The result goes to a blackhole: the file-sink line becomes null-sink.
            text = re.sub(r"use: file-sink, with: \{[^}]*\}", f"use: {NULL}", text)
            with open(os.path.join(d, q + ".yaml"), "w") as f:
                f.write(text)
            best = min((timed(d, q + ".yaml") for _ in range(runs)), key=lambda x: x[1])
            wall, cpu = best
            print(f"| {q} | {events / wall / 1e3:,.0f} k | {events / cpu / 1e3:,.0f} k ({cpu:.2f} s) | "
                  f"{FLINK.get(q, '—')} |", flush=True)


if __name__ == "__main__":
    main()
