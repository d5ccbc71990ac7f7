"""The checks of a chaos run and its certificate.

Expected answer: the generator's own record of every event (--record, one line per event with
its class) and the injector's record; what happened: every record in the Kafka topic (read back
with kcat), the tables, and the group's committed offsets. The KPI recomputation is the SQL of
tests/e2e/test-crash.sh; distinct_users is held to tests/window-kpi/kpilib.py's tolerance."""
import collections
import json
import os
import re
import subprocess
from datetime import datetime

PSQL = os.path.join(os.environ.get("PGTMP_BIN", "/usr/lib/postgresql/15/bin"), "psql")
KPI_COLS = ["events", "page_views", "add_to_cart", "orders", "payment_failed", "refunds", "gmv",
            "refund_amount"]
WINDOWS = [("1m", 60), ("15m", 900), ("1h", 3600), ("24h", 86400)]
SHOW = 5  # examples per failed check


# Whether the run's PostgreSQL trigger refuses events whose id starts with fff (run.py sets it).
TRIGGER = True


def psql(sql, binary=False):
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"),
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr.decode(errors="replace"))
    return r.stdout if binary else r.stdout.decode()


def columns(table):
    return set(psql("SELECT column_name FROM information_schema.columns WHERE table_name = '%s'"
                    % table).split())


def kafka_dump(bootstrap, topic):
    """[(partition, offset, value bytes)] of every record in the topic."""
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                        "-f", "%p %o %S\n%s\n"], capture_output=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("kcat: %s" % r.stderr.decode(errors="replace")[-500:])
    out, buf, i = [], r.stdout, 0
    while i < len(buf):
        nl = buf.index(b"\n", i)
        p, o, n = (int(x) for x in buf[i:nl].split())
        i = nl + 1
        n = max(n, 0)
        out.append((p, o, buf[i:i + n]))
        i += n + 1
    return out


def load_expected(gen_records, injected):
    """{raw bytes: (class, event_id or None, seq or None)}, copies handed out per raw, counts."""
    exp, counts, not_out = {}, collections.Counter(), 0
    occ = collections.Counter()  # raw -> copies handed out (a duplicate repeats its original's bytes)
    for gen_record in gen_records:
        with open(gen_record, "rb") as f:
            for line in f:
                rec = json.loads(line)
                counts["generated"] += 1
                counts[rec["class"]] += 1
                if rec.get("late"):
                    counts["late"] += 1
                if rec.get("dest") in ("dropped", "response"):
                    not_out += 1
                    continue
                raw = line.rstrip(b"\n")
                raw = raw[raw.index(b'"event":') + len(b'"event":'):-1]
                eid = rec["event"].get("event_id") if isinstance(rec["event"], dict) else None
                cls = rec["class"]
                if TRIGGER and cls in ("valid", "duplicate") and str(eid).startswith("fff"):
                    cls = "refused"
                    counts["refused_by_trigger"] += 1
                exp.setdefault(raw, (cls, eid if cls != "invalid" else None, rec["seq"]))
                occ[raw] += 1
    counts["not_handed_out"] = not_out
    if os.path.exists(injected):
        with open(injected) as f:
            for line in f:
                rec = json.loads(line)
                raw = bytes.fromhex(rec["hex"])
                counts["injected_" + rec["class"]] += 1
                m = re.search(rb'"event_id":"([^"]*)"', raw)
                exp[raw] = ("inj_" + rec["class"], m.group(1).decode() if m else None, None)
    return exp, occ, counts


def kpi_check(name, secs, topic_col):
    """test-crash.sh's recomputation of one KPI table from events_clean, both ways."""
    K = ", ".join("k." + c for c in KPI_COLS)
    R = ", ".join("r." + c for c in KPI_COLS)
    # per input topic too when both tables say which (kpi_*.source_topic or .topic, and
    # events_clean.kafka_topic): with two topics, partition numbers repeat
    tsel, tjoin = ("kafka_topic AS topic, ", ' AND k.%s IS NOT DISTINCT FROM r.topic' % topic_col) if topic_col else ("", "")
    group = "1, 2, 3" if topic_col else "1, 2"
    rq = """
        SELECT to_timestamp(floor(extract(epoch FROM ts) / {s}) * {s}) AS window_start,
               {tsel}kafka_partition AS "partition",
               count(*) AS events,
               count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
               count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_cart,
               count(*) FILTER (WHERE event_type = 'purchase') AS orders,
               count(*) FILTER (WHERE event_type = 'payment_failed') AS payment_failed,
               count(*) FILTER (WHERE event_type = 'refund') AS refunds,
               coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS gmv,
               coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0) AS refund_amount,
               count(DISTINCT user_id) AS users
        FROM events_clean GROUP BY {g}""".format(s=secs, tsel=tsel, g=group)
    join = 'k.window_start = r.window_start AND k."partition" = r."partition"' + tjoin
    res = psql("""WITH r AS ({rq})
        SELECT count(*) FILTER (WHERE k.window_start IS NOT NULL),
               count(*) FILTER (WHERE k.window_start IS NULL),
               count(*) FILTER (WHERE r.window_start IS NULL),
               count(*) FILTER (WHERE r.window_start IS NOT NULL AND k.window_start IS NOT NULL
                   AND ROW({K}) IS DISTINCT FROM ROW({R})),
               count(*) FILTER (WHERE abs(k.distinct_users - r.users) > 0.1 * r.users + 1),
               coalesce(sum(r.events), 0)
        FROM kpi_{n} k FULL JOIN r ON {j}""".format(rq=rq, K=K, R=R, n=name, j=join)).strip()
    rows, missing, extra, wrong, users, total = (int(x) for x in res.split("|"))
    detail = ("%d rows over %d events; missing %d, unexpected %d, differing %d, distinct_users "
              "outside ±10 %% in %d" % (rows, total, missing, extra, wrong, users))
    bad = missing or extra or wrong or users or rows == 0
    examples = []
    if bad:
        ex = psql("""WITH r AS ({rq})
            SELECT coalesce(k.window_start, r.window_start), coalesce(k."partition", r."partition"),
                   k.events, r.events, k.gmv, r.gmv, k.orders, r.orders, k.distinct_users, r.users
            FROM kpi_{n} k FULL JOIN r ON {j}
            WHERE k.window_start IS NULL OR r.window_start IS NULL OR ROW({K}) IS DISTINCT FROM ROW({R})
               OR abs(k.distinct_users - r.users) > 0.1 * r.users + 1
            ORDER BY (k.window_start IS NULL OR r.window_start IS NULL
                      OR ROW({K}) IS DISTINCT FROM ROW({R})) DESC, 1, 2 LIMIT {show}""".format(rq=rq, n=name, j=join, K=K, R=R, show=SHOW))
        for line in ex.splitlines():
            f = line.split("|")
            examples.append("window %s partition %s: events %s want %s, gmv %s want %s, orders %s "
                            "want %s, distinct_users %s exact %s" % tuple(x or "-" for x in f))
    return ("FAIL" if bad else "PASS"), detail, examples


def run_all(gen_records, injected, bootstrap, topics, end, committed, drained):
    """The checks; end and committed are {(topic, partition): offset}."""
    results = []

    def add(name, ok, detail, examples=()):
        results.append({"check": name, "result": "PASS" if ok else "FAIL", "detail": detail,
                        "evidence": list(examples)[:SHOW]})

    def at(t, p, o):
        return "%s[%s]@%s" % (t, p, o)

    exp, occ, counts = load_expected(gen_records, injected)
    records = [(t, p, o, v) for t in topics for p, o, v in kafka_dump(bootstrap, t)]
    counts["in_kafka"] = len(records)
    seen = collections.defaultdict(list)  # raw -> [(topic, p, o)]
    unknown = []
    for t, p, o, v in records:
        if v in exp:
            seen[v].append((t, p, o))
        else:
            unknown.append((t, p, o, v[:120]))

    clean = set(psql("COPY (SELECT event_id FROM events_clean) TO STDOUT").split("\n")) - {""}
    n_clean = int(psql("SELECT count(*) FROM events_clean"))
    rej = {}
    for line in psql("COPY (SELECT topic, \"partition\", \"offset\", coalesce(stage, ''), "
                     "coalesce(reason, '') FROM events_rejected) TO STDOUT").splitlines():
        t, p, o, st, why = line.split("\t", 4)
        rej.setdefault((t, p, o), []).append((st, why))
    n_rej = sum(len(v) for v in rej.values())
    counts["events_clean"], counts["events_rejected"] = n_clean, n_rej
    rej_by_stage = collections.Counter(s for v in rej.values() for s, _ in v)
    counts["rejected_by_stage"] = dict(rej_by_stage)

    def pos(t, p, o):
        return (t, str(p), str(o))

    # 1. ingest: the generators' events reached Kafka (at least once; ingest may repeat). By
    # bytes: a duplicate is its original's bytes again, so an event handed out twice must be in
    # Kafka at least twice.
    missing = [(c, e, s) for raw, (c, e, s) in exp.items() if len(seen.get(raw, ())) < occ[raw]]
    copies = sum(max(len(v) - occ[raw], 0) for raw, v in seen.items() if raw in occ)
    counts["ingest_repeats"] = copies
    add("ingest: every generated event is in Kafka, nothing else is",
        not missing and not unknown,
        "%d generated events handed out, %d missing from Kafka, %d records in Kafka not generated, "
        "%d repeated by ingest replays" % (sum(occ.values()), len(missing), len(unknown), copies),
        ["seq %s (%s, event_id %s) not in Kafka as often as handed out" % (s, c, e)
         for c, e, s in sorted(missing, key=lambda x: x[2])[:SHOW]]
        + ["unknown record %s: %r" % (at(t, p, o), v) for t, p, o, v in unknown[:SHOW]])

    # 2. events_clean = distinct valid events, once each
    want = {e for raw, (c, e, s) in exp.items() if c in ("valid", "duplicate")}
    lost = want - clean
    extra = clean - want
    places_of = collections.defaultdict(list)
    for raw, (c, e, s) in exp.items():
        if e:
            places_of[e] += seen.get(raw, [])
    lost_in_kafka = {e for e in lost if places_of.get(e)}
    add("events_clean holds each distinct valid event exactly once",
        not lost and not extra and n_clean == len(clean),
        "%d distinct valid events expected, events_clean has %d rows (%d distinct): %d missing "
        "(%d of them reached Kafka), %d unexpected" % (len(want), n_clean, len(clean), len(lost),
                                                       len(lost_in_kafka), len(extra)),
        ["missing %s (%s)" % (e, "in Kafka at " + ", ".join(at(*x) for x in places_of[e])
                              if e in lost_in_kafka else "never reached Kafka") for e in sorted(lost)[:SHOW]]
        + ["unexpected %s" % e for e in sorted(extra)[:SHOW]])

    # 3. every invalid or refused event is in the dead letter, with its stage and reason
    no_dl = []
    per_class = collections.Counter()
    for raw, (c, e, s) in exp.items():
        if c in ("valid", "duplicate"):
            continue
        places = seen.get(raw, [])
        if not places:
            continue  # never reached Kafka: check 1 reports it
        per_class[c] += 1
        if c in ("invalid", "inj_invalid_utf8"):
            # each copy is rejected by position (nothing upstream of the validator drops any)
            for t, p, o in places:
                rows = rej.get(pos(t, p, o), [])
                if not any(st and why for st, why in rows):
                    no_dl.append("%s %s (%s): %s" % (c, at(t, p, o), "seq %s" % s if s else "injected",
                                                     "no dead letter" if not rows else "no reason: %r" % rows))
        else:
            # refused / out of range: valid-looking events; dedup may drop later copies
            if not any(any(st and why for st, why in rej.get(pos(*x), [])) for x in places):
                no_dl.append("%s event %s at %s: no dead letter" % (c, e, ", ".join(at(*x) for x in places)))
    counts["must_reject_by_class"] = dict(per_class)
    add("every invalid or refused event is in the dead letter with a reason", not no_dl,
        "%d invalid/refused events reached Kafka (%s); %d without a dead letter; dead letters by "
        "stage: %s" % (sum(per_class.values()), dict(per_class), len(no_dl), dict(rej_by_stage)), no_dl)

    # 4. the dead letter holds nothing else
    where = {}
    for raw, places in seen.items():
        for x in places:
            where[pos(*x)] = exp[raw]
    wrong_dl = []
    for k, rows in rej.items():
        c = where.get(k)
        if c is None:
            wrong_dl.append("dead letter at %s with no such record in Kafka: %r" % (at(*k), rows[:1]))
        elif c[0] in ("valid", "duplicate"):
            wrong_dl.append("valid event %s (%s) dead-lettered: %r" % (c[1], at(*k), rows[:1]))
    add("the dead letter holds only invalid or refused events", not wrong_dl,
        "%d dead-letter rows, %d of them not expected" % (n_rej, len(wrong_dl)), wrong_dl)

    # 5. KPIs
    kcols = columns("kpi_1m")
    topic_col = next((c for c in ("source_topic", "topic") if c in kcols), None) \
        if "kafka_topic" in columns("events_clean") else None
    if topic_col and psql("SELECT count(*) FROM events_clean WHERE kafka_topic IS NOT NULL").strip() == "0":
        topic_col = None  # the pipeline does not store the topic: one topic, as before
    for name, secs in WINDOWS:
        res, detail, ex = kpi_check(name, secs, topic_col)
        add("kpi_%s: every row equals the KPI recomputed in SQL over events_clean" % name,
            res == "PASS", detail, ex)

    # 6. offsets
    behind = {k: (committed.get(k, -1), end[k]) for k in end if committed.get(k, -1) != end[k]}
    neither = []
    rej_ids = {e for e, places in places_of.items() if any(pos(*x) in rej for x in places)}
    for t, p, o, v in records:
        if o >= committed.get((t, p), -1):
            continue
        c = exp.get(v)
        if c is None:
            continue  # check 1
        if pos(t, p, o) in rej or (c[1] and (c[1] in clean or c[1] in rej_ids)):
            continue
        neither.append("%s %s event %s (committed %d)" % (at(t, p, o), c[0], c[1] or ("seq %s" % c[2]),
                                                          committed.get((t, p), -1)))
    add("no committed offset is past an event that is in neither table", not neither and drained and not behind,
        "committed == end on %d/%d partitions%s; %d records below a committed offset in neither table"
        % (len(end) - len(behind), len(end), "" if drained else " (drain timed out)", len(neither)),
        neither + ["%s[%d]: committed %d, end %d" % (k[0], k[1], c, e) for k, (c, e) in sorted(behind.items())])
    return results, dict(counts)


def rebalances(logs):
    """Assignment rounds seen in the hosts' logs: 'assigned' lines, grouped when < 3 s apart."""
    times = []
    for path in logs:
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            for line in f:
                if b"msg=\"assigned " not in line:
                    continue
                m = re.match(rb"ts=(\S+)Z", line)
                if m:
                    times.append(datetime.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S.%f").timestamp())
    times.sort()
    rounds, last = 0, None
    for t in times:
        if last is None or t - last > 3:
            rounds += 1
        last = t
    return rounds


def print_certificate(c):
    L = print
    L("")
    L("=" * 78)
    L("sluice chaos certificate — %s" % c["result"])
    L("=" * 78)
    L("seed %d (%s run, kafka %s: %d brokers; topics %s, %d partitions each, replication %d, "
      "min.insync.replicas %d)"
      % (c["seed"], c["mode"], c["kafka"], c["cluster"]["brokers"], ", ".join(c["cluster"]["topics"]),
         c["cluster"]["partitions"], c["cluster"]["replication"], c["cluster"]["min_insync_replicas"]))
    L("source %s, build %s, pipelines %s" % (c["source"], c.get("build"), c.get("pipelines")))
    L("%d analytics hosts x %d tasks + %d ingest host(s); %.0f s"
      % (c["hosts"], c["tasks_per_host"], len(c["cluster"]["topics"]), c["duration_s"]))
    e = c["events"]
    L("events: %d generated (%d valid, %d duplicates, %d invalid, %d late, %d refused by the trigger), "
      "%d injected (invalid UTF-8 %d, out of range %d, refused %d)"
      % (e.get("generated", 0), e.get("valid", 0), e.get("duplicate", 0), e.get("invalid", 0),
         e.get("late", 0), e.get("refused_by_trigger", 0),
         e.get("injected_invalid_utf8", 0) + e.get("injected_out_of_range", 0) + e.get("injected_refused", 0),
         e.get("injected_invalid_utf8", 0), e.get("injected_out_of_range", 0), e.get("injected_refused", 0)))
    L("        %d records in Kafka (%d ingest repeats); events_clean %d rows; events_rejected %d rows %s"
      % (e.get("in_kafka", 0), e.get("ingest_repeats", 0), e.get("events_clean", 0),
         e.get("events_rejected", 0), e.get("rejected_by_stage", {})))
    L("faults: " + ", ".join("%s x%d" % kv for kv in sorted(c["faults"].items())))
    for f in c["fault_log"]:
        rec = f.get("recovered_after_s")
        L("  %6.1fs %-12s %-40s %s" % (f["at_s"], f["kind"], f.get("target", ""),
                                        "NOT PLAYED: " + f["error"] if "error" in f else
                                        "recovered after %.1f s" % rec if rec is not None else
                                        "not recovered within the run"))
    L("rebalances (assignment rounds): %d; max lag %d records (end - committed, all partitions); "
      "restarts %s" % (c["rebalances"], c["max_lag"], c["host_restarts"]))
    L("exit status on SIGTERM at the end: %s" % c["exit_on_sigterm"])
    L("checks:")
    for r in c["checks"]:
        L("  %s  %s" % (r["result"], r["check"]))
        L("        %s" % r["detail"])
        for ex in r["evidence"]:
            L("        - %s" % ex)
    L("%s: %d/%d checks passed (seed %d)" % (c["result"], sum(r["result"] == "PASS" for r in c["checks"]),
                                             len(c["checks"]), c["seed"]))
