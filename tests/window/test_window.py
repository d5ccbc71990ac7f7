#!/usr/bin/env python3
"""The window stage through the real host, against a straightforward recomputation in Python.

 1. kinds and aggregates: tumbling, hopping and a labelled window; group_by a nested path and a
    field (missing values group as null); count, count where, count(path), sum with a scale and
    without, min, max, avg, first, last, distinct below and above its exact bound (the
    _exact column says which), distinct with a sketch column; derived columns (a ratio, a
    division by zero -> null, arithmetic with a scale). Every final row equals the
    recomputation, exactly (decimals compared as decimals).
 2. lateness: late events within retention re-emit their group as a correction (revision + 1),
    events beyond retention are dead letters with the reason; the last revision of every
    (window, group) equals the recomputation over the accepted events.
 3. future quarantine: one event stamped ten years ahead is a dead letter and every honest event
    is counted; without future_limit the same input makes honest events late (the check can fail).
 4. idle timeout: partition 1 goes quiet while partition 0 goes on; with idle_timeout its last
    window closes (a final row) during the quiet time, without it the window stays open.
 5. config errors name the column and the position in the spec, at start and in `sluice
    validate` (file:line:column of the value, through the stage's check).
 6. session windows per user, events out of order (late events bridge sessions and move their
    starts): the live rows (not retracted with merged_into) are exactly the sessions of a
    gap-based split of each user's events."""
import json, os, random, re, subprocess, tempfile, time
from decimal import Decimal
from wlib import *

fail = Failures()

def rha(num, den):
    """num/den rounded half away from zero to an integer."""
    q = (2 * abs(num) + den) // (2 * den)
    return q if num * den >= 0 else -q

def rows_of(out):
    rows = []
    for env in out:
        v = json.loads(env["value"], parse_float=Decimal)
        rows.append((env, v))
    return rows

def dec(x, scale):  # integer minor units -> Decimal with `scale` digits
    return Decimal(x).scaleb(-scale)

# ---- 1. kinds and aggregates -------------------------------------------------------------------

WINS = {"10s": (10000, 10000), "30s_every_10s": (30000, 10000), "minute": (60000, 60000)}

def case_aggregates(d):
    rnd = random.Random(3)
    base = 1714521600000
    evs = []
    for i in range(6000):
        ts = base + i * 100 + rnd.randrange(100)
        e = {"id": i, "t": ts, "kind": rnd.choice("ab"), "user": "u%d" % rnd.randrange(40 if i % 2 else 3)}
        if rnd.random() < 0.8:
            e["dev"] = {"region": rnd.choice(["eu", "us"])}
        if rnd.random() < 0.95:
            e["v"] = rnd.randrange(1, 10001) / 100
        if rnd.random() < 0.3:
            e["tag"] = "x"
        evs.append((ts + rnd.randrange(4000), e))
    evs.sort(key=lambda x: x[0])
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        for _, e in evs:
            f.write(json.dumps(e) + "\n")
    aggs = {
        "n": "count", "big": "count where v > 50", "with_tag": "count(tag)", "total": "sum(v) scale 2",
        "vsum": "sum(v)", "lo": "min(v) scale 2", "hi": "max(v) scale 2", "mean": "avg(v) scale 3",
        "first_v": "first(v) scale 2", "last_v": "last(v) scale 2", "users": "distinct(user) exact 5",
        "users_all": "distinct(user) exact 1000 sketch users_state", "share_big": "= big / n decimals 4",
        "per_tag": "= total / with_tag scale 2", "spread2": "= (hi - lo) * 2 scale 1",
    }
    run(d, f"""pipeline: w-aggs
batch_size: 50
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson}}}}
  - name: w
    use: window
    with:
      time_field: t
      windows: ["10s", "30s every 10s", "1m as minute"]
      group_by: ["dev.region as region", kind]
      allowed_lateness: 5s
      emit_interval: 0s
      close_on_end: true
      passthrough: false
      aggregates: {json.dumps(aggs)}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    # recomputation, in arrival order (first/last ties: the first / the last to arrive)
    ref = {}
    for _, e in evs:
        g = (e.get("dev", {}).get("region"), e["kind"])
        for label, (size, slide) in WINS.items():
            start = e["t"] // slide * slide
            while start > e["t"] - size:
                s = ref.setdefault((label, start, g), {"n": 0, "big": 0, "tag": 0, "cents": 0, "vals": [],
                                                       "first": None, "last": None, "users": set()})
                s["n"] += 1
                s["tag"] += "tag" in e
                s["users"].add(e["user"])
                if "v" in e:
                    c = round(e["v"] * 100)
                    s["big"] += e["v"] > 50
                    s["cents"] += c
                    s["vals"].append(c)
                    if s["first"] is None or e["t"] < s["first"][0]:
                        s["first"] = (e["t"], c)
                    if s["last"] is None or e["t"] >= s["last"][0]:
                        s["last"] = (e["t"], c)
                start -= slide
    out = read_ndjson(os.path.join(d, "out.ndjson"))
    got = {}
    for env, v in rows_of(out):
        if not v["final"]:
            continue
        g = (v["region"], v["kind"])
        k = (v["window"], int(env["timestamp"]), g)
        if k in got:
            fail(f"aggregates: two final rows for {k}")
        got[k] = (env, v)
    if set(got) != set(ref):
        fail(f"aggregates: {len(got)} final rows, want {len(ref)} ({len(set(got) ^ set(ref))} differ)")
    over = under = nulls = 0
    for k, s in ref.items():
        if k not in got:
            continue
        env, v = got[k]
        label, start, (region, kind) = k
        where = f"{label} {start} {region}/{kind}"
        want_key = "%s|%s|0|%s|%s" % (label, v["window_start"], region or "", kind)
        if env["key"] != want_key or env["topic"] != "window_" + label or env["partition"] != 0:
            fail(f"{where}: key {env['key']} topic {env['topic']}")
        nv = len(s["vals"])
        want = {
            "n": s["n"], "big": s["big"], "with_tag": s["tag"], "total": dec(s["cents"], 2),
            "vsum": Decimal(s["cents"]).scaleb(-2).normalize() if s["cents"] else Decimal(0),
            "lo": dec(min(s["vals"]), 2) if nv else None, "hi": dec(max(s["vals"]), 2) if nv else None,
            "mean": dec(rha(s["cents"] * 10, nv), 3) if nv else None,
            "first_v": dec(s["first"][1], 2) if nv else None, "last_v": dec(s["last"][1], 2) if nv else None,
            "users_all": len(s["users"]), "users_all_exact": True,
            "share_big": Decimal("%.4f" % (s["big"] / s["n"])),
            "per_tag": dec(rha(s["cents"], s["tag"]), 2) if s["tag"] else None,
            "spread2": dec(rha((max(s["vals"]) - min(s["vals"])) * 2, 10), 1) if nv else None,
        }
        for f, w in want.items():
            if v.get(f) != w and not (isinstance(w, Decimal) and isinstance(v.get(f), (int, Decimal)) and Decimal(v[f]) == w):
                fail(f"{where}: {f} {v.get(f)!r}, want {w!r}")
        nulls += want["per_tag"] is None
        du = len(s["users"])
        if du <= 5:
            under += 1
            if v["users"] != du or v["users_exact"] is not True:
                fail(f"{where}: users {v['users']} exact {v['users_exact']}, want {du} exactly")
        else:
            over += 1
            if v["users_exact"] is not False or abs(v["users"] - du) > 0.1 * du + 1:
                fail(f"{where}: users {v['users']} exact {v['users_exact']}, want ~{du} from the sketch")
        if not str(v.get("users_state", "")).startswith("x") or v.get("first_v_at") != s["first"][0]:
            fail(f"{where}: state columns users_state / first_v_at missing or wrong")
    if not (over and under and nulls):
        fail(f"aggregates: groups above ({over}) and below ({under}) the exact bound and per_tag nulls ({nulls}) all expected")
    print(f"aggregates: {len(ref)} (window, group) final rows checked; distinct exact in {under}, sketch in {over}; "
          f"{nulls} divisions by zero")

# ---- 2. lateness, corrections, retention -----------------------------------------------------

def case_lateness(d):
    rnd = random.Random(8)
    base, lateness, retention = 1714521600000, 5000, 120000
    evs = []
    for i in range(8000):
        ts = base + i * 150
        e = {"id": "e%d" % i, "t": ts, "kind": rnd.choice("abc"), "v": rnd.randrange(1, 1000)}
        order = ts + rnd.randrange(lateness)
        if rnd.random() < 0.04:
            order = ts + 10000 + rnd.randrange(240000)
        evs.append((order, e))
    evs.sort(key=lambda x: x[0])
    max_ts, accepted, rejected = None, [], set()
    for _, e in evs:
        m = e["t"] if max_ts is None or e["t"] > max_ts else max_ts
        if e["t"] < m - lateness - retention:
            rejected.add(e["id"])
        else:
            max_ts = m
            accepted.append(e)
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        for _, e in evs:
            f.write(json.dumps(e) + "\n")
    run(d, f"""pipeline: w-late
batch_size: 40
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson}}}}
  - {{name: w, use: window, with: {{time_field: t, windows: [1m], group_by: [kind], allowed_lateness: 5s,
      retention: 2m, emit_interval: 0s, close_on_end: true, passthrough: false,
      aggregates: {{n: count, total: sum(v) scale 0}}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    ref = {}
    for e in accepted:
        s = ref.setdefault((e["t"] // 60000 * 60000, e["kind"]), [0, 0])
        s[0] += 1
        s[1] += e["v"]
    last, finals, corrections = {}, {}, 0
    for env, v in rows_of(read_ndjson(os.path.join(d, "out.ndjson"))):
        k = (env["timestamp"], v["kind"])
        if not v["final"]:
            if finals.get(k):
                fail(f"lateness: an update of {k} after its final row")
            continue
        if v["revision"] != finals.get(k, 0):
            fail(f"lateness: {k} revision {v['revision']}, want {finals.get(k, 0)}")
        finals[k] = finals.get(k, 0) + 1
        corrections += v["revision"] > 0
        last[k] = v
    if set(last) != set(ref):
        fail(f"lateness: {len(last)} groups with a final row, want {len(ref)}")
    for k, (n, total) in ref.items():
        v = last.get(k)
        if v and (v["n"] != n or v["total"] != total):
            fail(f"lateness: {k}: n {v['n']} total {v['total']}, want {n} {total}")
    dl = read_ndjson(os.path.join(d, "dlq.ndjson"))
    got = {json.loads(x["value"])["id"] for x in dl}
    if got != rejected or any("older than retention" not in x["headers"]["sluice.error.reason"] for x in dl):
        fail(f"lateness: dead letters {len(got)}, want {len(rejected)} ({len(got ^ rejected)} differ), or a reason wrong")
    if not (corrections and rejected):
        fail("lateness: the case must exercise corrections and dead letters")
    print(f"lateness: {len(ref)} groups, {corrections} corrections, {len(rejected)} dead letters")

# ---- 3. future quarantine --------------------------------------------------------------------

def case_future(d):
    now = int(time.time() * 1000) // 60000 * 60000 - 3600000
    lines = []
    for i in range(600):
        lines.append({"id": i, "t": now + i * 1000})
        if i == 100:
            lines.append({"id": "future", "t": now + 10 * 365 * 86400000})
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        for e in lines:
            f.write(json.dumps(e) + "\n")
    results = {}
    for limit in ("1h", "0s"):
        run(d, f"""pipeline: w-future-{limit}
batch_size: 10
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson, offset_file: in-{limit}.offset}}}}
  - {{name: w, use: window, with: {{time_field: t, windows: [1m], allowed_lateness: 5s, retention: 1h,
      future_limit: {limit}, emit_interval: 0s, close_on_end: true, passthrough: false,
      aggregates: {{n: count}}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
        rows = [v for _, v in rows_of(read_ndjson(os.path.join(d, "out.ndjson"))) if v["final"]]
        dl = read_ndjson(os.path.join(d, "dlq.ndjson"))
        results[limit] = (sum(v["n"] for v in rows), dl)
    n, dl = results["1h"]
    if n != 600 or len(dl) != 1 or json.loads(dl[0]["value"])["id"] != "future" or \
            "ahead of the wall clock" not in dl[0]["headers"]["sluice.error.reason"]:
        fail(f"future: {n} counted (want 600), dead letters {[x['headers'].get('sluice.error.reason') for x in dl]}")
    n0, dl0 = results["0s"]
    if len(dl0) < 400:
        fail(f"future: without future_limit the far-future event should make honest events late ({len(dl0)} dead letters)")
    print(f"future: with future_limit 600 counted, 1 quarantined; without it {len(dl0)} honest events were too late")

# ---- 4. idle timeout -------------------------------------------------------------------------

def case_idle(d):
    base = 1714521600000
    lines, off = [], [0, 0]
    for i in range(600):  # partition 1: the first 3 minutes, then quiet; partition 0: 10 minutes
        p = 1 if i % 2 and i < 360 else 0
        off[p] += 1
        lines.append(f"{p} {off[p]} {base + i * 1000}\t" + json.dumps({"t": base + i * 1000}))
    lines.append("sleep 600")
    with open(os.path.join(d, "in.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    last_p1 = max(base + i * 1000 for i in range(360) if i % 2) // 60000 * 60000
    res = {}
    for idle in ("100ms", "0s"):
        run(d, f"""pipeline: w-idle
batch_size: 20
stages:
  - {{name: in, use: gap-source, with: {{path: in.txt, partitions: 2}}}}
  - {{name: w, use: window, with: {{time_field: t, windows: [1m], allowed_lateness: 5s, idle_timeout: {idle},
      emit_interval: 0s, passthrough: false, aggregates: {{n: count}}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
        res[idle] = {(env["partition"], env["timestamp"]): v for env, v in rows_of(read_ndjson(os.path.join(d, "out.ndjson")))
                     if v["final"]}
    with_idle, without = res["100ms"], res["0s"]
    if (1, last_p1) not in with_idle or with_idle[(1, last_p1)]["n"] != 30:
        fail(f"idle: partition 1's last window has no final row (or a wrong count) with idle_timeout: {with_idle.get((1, last_p1))}")
    if (1, last_p1) in without:
        fail("idle: without idle_timeout partition 1's last window should stay open (the check can fail)")
    print(f"idle: partition 1's last window closed by the idle timeout ({len(with_idle)} final rows; {len(without)} without it)")

# ---- 6. session windows ---------------------------------------------------------------------

def case_sessions(d):
    rnd = random.Random(12)
    base, gap = 1714521600000, 30000
    evs, t = [], {u: base for u in "abcd"}
    for i in range(3000):
        u = rnd.choice("abcd")
        t[u] += rnd.choice([1000, 5000, 20000, 29999, 30000, 45000, 120000])
        evs.append((t[u] + rnd.randrange(8000), {"id": i, "t": t[u], "user": u, "v": rnd.randrange(100)}))
    evs.sort(key=lambda x: x[0])  # out of order within 8 s: bridging events merge sessions
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        for _, e in evs:
            f.write(json.dumps(e) + "\n")
    run(d, f"""pipeline: w-sessions
batch_size: 25
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson}}}}
  - {{name: w, use: window, with: {{time_field: t, windows: ["session 30s"], group_by: [user], allowed_lateness: 10s,
      emit_interval: 0s, close_on_end: true, passthrough: false,
      aggregates: {{n: count, total: sum(v) scale 0, first_id: first(id) scale 0, last_id: last(id) scale 0}}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    ref = {}
    for u in "abcd":
        mine = sorted((e for _, e in evs if e["user"] == u), key=lambda e: (e["t"], e["id"]))
        cur = None
        for e in mine:
            if cur is None or e["t"] - cur["last"] >= gap:
                cur = {"start": e["t"], "last": e["t"], "n": 0, "total": 0, "first": e, "lastev": e}
                ref[(u, e["t"])] = cur
            cur["last"] = e["t"]
            cur["n"] += 1
            cur["total"] += e["v"]
            cur["lastev"] = e
    table, merged = {}, 0
    for env, v in rows_of(read_ndjson(os.path.join(d, "out.ndjson"))):
        table[env["key"]] = (env, v)
    live = {}
    for key, (env, v) in table.items():
        if "merged_into" in v:
            merged += 1
            if v["n"] != 0 or not v["final"]:
                fail(f"sessions: a retraction row must be final and empty: {v}")
            continue
        live[(v["user"], env["timestamp"])] = v
    if set(live) != set(ref):
        fail(f"sessions: {len(live)} sessions, want {len(ref)} ({len(set(live) ^ set(ref))} differ: "
             f"{sorted(set(live) - set(ref))[:3]} not expected, {sorted(set(ref) - set(live))[:3]} missing)")
    for k, r in ref.items():
        v = live.get(k)
        if not v:
            continue
        want_end = r["last"] + gap
        if (v["n"], v["total"], parse_ts(v["window_end"]), v["final"]) != (r["n"], r["total"], want_end, True):
            fail(f"sessions: {k}: n {v['n']} total {v['total']} end {v['window_end']}, want {r['n']} {r['total']} {want_end}")
    print(f"sessions: {len(ref)} sessions of 4 users, {merged} merged away (retraction rows)")

# ---- 5. config errors --------------------------------------------------------------------------

def case_errors(d):
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        f.write("{}\n")
    for spec, want in (('count where v >', "aggregates: x: 'count where v >': column"),
                       ('count", final: "count', "aggregates: final: the name of a field every row has"),
                       ('count", "a\\"b": "count', "letters, digits"),
                       ('= n / nope', "'nope' is not an aggregate column"),
                       ('sum(v) exact 3', "exact applies to distinct"),
                       ('median(v)', "expected count, sum")):
        r = run(d, f"""pipeline: w-err
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson}}}}
  - {{name: w, use: window, with: {{aggregates: {{n: count, x: "{spec}"}}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson}}}}
""", check=False)
        if r.returncode != 2 or want not in r.stderr:
            fail(f"config error for '{spec}': exit {r.returncode}, want 2 and '{want}' in: {r.stderr[-400:]}")
        # `sluice validate` finds it too (the stage's check), at file:line:column of the value
        v = subprocess.run([BIN, "validate", "p.yaml"], cwd=d, capture_output=True, text=True, timeout=60)
        if v.returncode == 0 or not re.search(r"p\.yaml:4:\d+: stage 'w' \(window\): ", v.stdout + v.stderr) or want not in v.stdout + v.stderr:
            fail(f"sluice validate for '{spec}': exit {v.returncode}, want p.yaml:4:COL and '{want}' in: {(v.stdout + v.stderr)[-400:]}")
    print("config errors: reported with the column and position")

def main():
    with tempfile.TemporaryDirectory() as d:
        case_aggregates(d)
        case_lateness(d)
        case_future(d)
        case_idle(d)
        case_sessions(d)
        case_errors(d)
    fail.exit("window")

main()
