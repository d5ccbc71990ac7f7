#!/usr/bin/env python3
"""dedup through the real host: part-source (partitions, offsets, timestamps, commits) ->
dedup -> restore-feeder -> file-sink. Checks duplicates within ttl dropped and beyond ttl
forwarded, partitions isolated, multi-field keys, records without a key forwarded, eviction,
60,000 random records against a reference FIFO model, and state restore: a run that resumes
after committed offsets C with the events up to C handed back by api->restore forwards exactly
what one uninterrupted run forwarded after C."""
import json, os, random, subprocess, sys, tempfile

BIN = os.environ["SLUICE_BIN"]
STAGES = os.environ["DEDUP_TEST_STAGES"]
failures = []

def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)

def run(d, lines, dedup_with, partitions=2, state=(), offsets=None):
    """lines: (partition, offset, ts_ms, value). Returns (set of forwarded (partition, offset), stderr)."""
    with open(os.path.join(d, "in.txt"), "w") as f:
        for p, o, ts, v in lines:
            f.write(f"{p} {o} {ts}\t{v}\n")
    with open(os.path.join(d, "state.txt"), "w") as f:
        for topic, p, o, ts, v in state:
            f.write(f"{topic} {p} {o} {ts}\t{v}\n")
    off_file = os.path.join(d, "offsets.txt")
    if offsets:
        open(off_file, "w").write("".join(f"{p} {o}\n" for p, o in offsets.items()))
    elif os.path.exists(off_file):
        os.remove(off_file)
    with open(os.path.join(d, "p.yaml"), "w") as f:
        f.write(f"""pipeline: dedup-test
batch_size: 50
stages:
  - {{name: in, use: part-source, with: {{path: in.txt, partitions: {partitions}, offset_file: offsets.txt}}}}
  - {{name: dedup, use: dedup, with: {dedup_with}}}
  - {{name: state, use: restore-feeder, with: {{path: state.txt}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    env = dict(os.environ, SLUICE_PLUGIN_PATH=STAGES + ":" + os.environ.get("SLUICE_PLUGIN_PATH", ""))
    for _out in ("out.ndjson", "dlq.ndjson"):  # mode truncate empties only at a first start
        if os.path.exists(os.path.join(d, _out)):
            os.remove(os.path.join(d, _out))
    r = subprocess.run([BIN, "run", "p.yaml"], cwd=d, capture_output=True, text=True, timeout=120, env=env)
    check(r.returncode == 0, f"sluice exited {r.returncode}: {r.stderr[-2000:]}")
    out = [json.loads(l) for l in open(os.path.join(d, "out.ndjson")) if l.strip()]
    return {(e["partition"], e["offset"]) for e in out}, r.stderr

MIN = 60000
BASE = 1714521600000  # 2024-05-01T00:00:00Z

def feeds(seq):
    """seq: (key or raw value, partition, ts, expected forwarded) -> lines with offsets."""
    nxt, lines = {}, []
    for key, p, ts, _ in seq:
        nxt[p] = nxt.get(p, 0) + 1
        v = key if key.startswith(("{", "not")) else json.dumps({"event_id": key, "n": 1})
        lines.append((p, nxt[p], BASE + ts, v))  # the host stamps a timestamp of 0 with "now"
    return lines

def expect(d, name, seq, dedup_with, partitions=2):
    lines = feeds(seq)
    fwd, err = run(d, lines, dedup_with, partitions)
    for (key, p, ts, want), (p_, o, _, _) in zip(seq, lines):
        check(((p, o) in fwd) == want, f"{name}: {key} partition {p} ts {ts}: forwarded {not want}, want {want}")
    return err

def topics(d):
    """Partition 0 of topic "events" and partition 0 of topic "other" are different partitions:
    a key seen in one is not a duplicate in the other (issue 11: state keyed by topic too)."""
    lines = [(0, 1, BASE, json.dumps({"event_id": "k1"})),
             ("other/0", 1, BASE + 1000, json.dumps({"event_id": "k1"})),   # other topic: forwarded
             (0, 2, BASE + 2000, json.dumps({"event_id": "k1"})),           # same topic: duplicate
             ("other/0", 2, BASE + 3000, json.dumps({"event_id": "k1"}))]   # same topic: duplicate
    run(d, lines, "{key: event_id, ttl: 10m}", partitions=1)
    out = [json.loads(l) for l in open(os.path.join(d, "out.ndjson")) if l.strip()]
    got = sorted((e["topic"], e["partition"], e["offset"]) for e in out)
    check(got == [("events", 0, 1), ("other", 0, 1)], f"topics: forwarded {got}")

def seen_restore(d):
    """A late event is remembered from when it arrived (the clock), not from its own ts. With
    seen_field the forwarded record carries that time, and a restore whose state starts after
    the record that moved the clock (a cut by offset or event time) still remembers the late
    key until clock + ttl."""
    conf = "{key: event_id, ttl: 10m, seen_field: dedup_seen}"
    lines = [(0, 1, BASE + 11 * MIN, json.dumps({"event_id": "a"})),
             (0, 2, BASE + 1 * MIN, json.dumps({"event_id": "late"})),
             (0, 3, BASE + 15 * MIN, json.dumps({"event_id": "b"})),
             (0, 4, BASE + 1 * MIN, json.dumps({"event_id": "late"}))]  # 14 min after 'late' arrived
    fwd, _ = run(d, lines, conf, partitions=1)
    check(fwd == {(0, 1), (0, 2), (0, 3)}, f"seen: uninterrupted run forwarded {sorted(fwd)}")
    out = [json.loads(l) for l in open(os.path.join(d, "out.ndjson")) if l.strip()]
    late = [e for e in out if e["offset"] == 2]
    seen = json.loads(late[0]["value"]).get("dedup_seen") if late else None
    check(seen == BASE + 11 * MIN, f"seen: the late record carries its first-seen time ({seen})")
    if late:
        state = [("events", 0, 2, BASE + 1 * MIN, late[0]["value"])]
        fwd, _ = run(d, lines, conf, partitions=1, state=state, offsets={0: 2})
        check(fwd == {(0, 3)}, f"seen: restart with the stored first-seen time forwarded {sorted(fwd)}")
        plain = [("events", 0, 2, BASE + 1 * MIN, json.dumps({"event_id": "late"}))]
        fwd, _ = run(d, lines, conf, partitions=1, state=plain, offsets={0: 2})
        check((0, 4) in fwd, "seen: without the stored time the late key expires early (the check above can fail)")

def basics(d):
    seq = [("e1", 0, 0, True), ("e2", 0, 1000, True),
           ("e1", 0, 5 * MIN, False),    # within ttl
           ("e1", 0, 1000, False),       # again, older time
           ("e1", 0, 10 * MIN, False),   # exactly ttl later: still remembered (at least ttl)
           ("e3", 0, 11 * MIN, True),
           ("e1", 0, 11 * MIN, True),    # beyond ttl
           ("e1", 0, 12 * MIN, False),   # remembered again
           ("old", 0, 1 * MIN, True),    # a late event...
           ("old", 0, 1 * MIN, False),   # ...remembered from when it was seen, not its own ts
           ("e3", 1, 11 * MIN, True),    # partitions are isolated
           ("e3", 1, 11 * MIN, False),
           ('{"other":1}', 0, 12 * MIN, True),   # no key: forwarded
           ("not json", 0, 12 * MIN, True)]
    expect(d, "basics", seq, "{key: event_id, ttl: 10m}")

def multi_key(d):
    a, b, c = '{"user_id":"u","n":1}', '{"user_id":"u","n":2}', '{"user_id":"u","n":"1"}'
    expect(d, "multi-key", [(a, 0, 0, True), (b, 0, 0, True), (c, 0, 0, True), (a, 0, 0, False)],
           "{key: [user_id, n]}")

def eviction(d):
    seq = [("k1", 0, 0, True), ("k2", 0, 0, True), ("k3", 0, 0, True), ("k4", 0, 0, True),  # evicts k1
           ("k1", 0, 0, True),                      # k1 was evicted first; re-inserting evicts k2
           ("k4", 0, 0, False), ("k3", 0, 0, False), ("k2", 0, 0, True)]
    err = expect(d, "eviction", seq, "{max_keys: 3}")
    check("max_keys 3 reached" in err, "eviction is logged")

def randomized(d):
    """Random keys against a plain FIFO with a presence set; the clock alternates between fast
    (keys expire) and slow (the table fills, keys are evicted)."""
    KEYS, N, MAXK, TTL_S = 5000, 60000, 1500, 30
    rnd = random.Random(42)
    fifo, head, present, ts, seq = [], 0, set(), 0, []
    evicted = 0
    for i in range(N):
        k = rnd.randrange(KEYS)
        ts += rnd.randrange(41 if (i // 10000) % 2 else 3)
        now = ts // 1000
        while head < len(fifo) and now - fifo[head][1] > TTL_S:
            present.discard(fifo[head][0]); head += 1
        want = k not in present
        if want:
            if len(fifo) - head == MAXK:
                present.discard(fifo[head][0]); head += 1; evicted += 1
            present.add(k); fifo.append((k, now))
        seq.append(("k%d" % k, 0, ts, want))
    before = len(failures)
    expect(d, "randomized", seq, "{max_keys: 1500, ttl: 30s}", partitions=1)
    check(evicted > 0 and head > evicted, "the run exercised both eviction and expiry")
    print(f"randomized: {N} records, {evicted} evicted, {head - evicted} expired, "
          f"{len(failures) - before} mismatches")

def restore(d):
    """Two partitions, duplicates near each other and across the cut. Run A: everything. Run B:
    resume after C (offsets file) with A's forwarded events up to C as state."""
    rnd = random.Random(7)
    lines, nxt, ts = [], [0, 0], [1714521600000, 1714521600000]
    ids = [[], []]
    for i in range(6000):
        p = rnd.randrange(2)
        ts[p] += rnd.randrange(200)
        if ids[p] and rnd.random() < 0.15:
            key = rnd.choice(ids[p][-300:])          # a duplicate of a recent event
        else:
            key = "e%d-%d" % (p, i)
            ids[p].append(key)
        nxt[p] += 1
        lines.append((p, nxt[p], ts[p], json.dumps({"event_id": key, "ts": ts[p]})))
    conf = "{key: event_id, ttl: 2m}"  # the input spans ~10 min: some keys expire
    full, _ = run(d, lines, conf)
    C = {0: nxt[0] // 2, 1: nxt[1] // 3}
    state = [("events", p, o, t, v) for p, o, t, v in lines if (p, o) in full and o <= C[p]]
    resumed, err = run(d, lines, conf, state=state, offsets=C)
    want = {(p, o) for p, o in full if o > C[p]}
    check(resumed == want, f"restore: {len(resumed ^ want)} decisions differ after the cut "
                           f"({len(resumed)} forwarded, want {len(want)})")
    check("restored %d keys" % len(state) in err, "restore is logged with the number of keys")
    dups_after_cut = sum(1 for p, o, t, v in lines if o > C[p] and (p, o) not in full)
    check(dups_after_cut > 50, f"the suffix has duplicates to drop ({dups_after_cut})")
    # Without the state the same resume forwards duplicates of events before the cut.
    blind, _ = run(d, lines, conf, offsets=C)
    check(len(blind) > len(want), "without restore, duplicates of pre-cut events get through")

def main():
    with tempfile.TemporaryDirectory() as d:
        basics(d)
        topics(d)
        seen_restore(d)
        multi_key(d)
        eviction(d)
        randomized(d)
        restore(d)
    print(f"dedup: {len(failures)} failures")
    sys.exit(1 if failures else 0)

main()
