"""The chaos run (scripts/chaos.sh is the entry point: it starts PostgreSQL and calls this).

Plays a seeded fault schedule against the reference application running on a 3-broker
cluster, then checks the database against the generator's own record of every event and
prints the certificate. See docs/guarantees.md."""
import argparse
import faulthandler
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402
import kq  # noqa: E402
from procs import (Generator, Host, MockCluster, RealCluster, log, stop_all,  # noqa: E402
                   wait_for)

TOPIC = "events_raw"      # the reference topic (ingest pipeline -> analytics)
TOPIC2 = "events_more"    # the second topic: a second generator and ingest pipeline
GROUP = "ecommerce-analytics"


def parse_args():
    ap = argparse.ArgumentParser(prog="chaos.sh")
    ap.add_argument("--minutes", type=float, default=10, help="length of the fault phase")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="every fault kind once or twice, ~2 min")
    ap.add_argument("--kafka", choices=["mock", "real"], default="real")
    ap.add_argument("--json", default=None, help="also write the certificate here")
    ap.add_argument("--pipelines", default=None, help="dir with ecommerce-ingest.yaml, ecommerce-analytics.yaml")
    ap.add_argument("--rate", type=int, default=None, help="generator events/s")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--topics", type=int, choices=[1, 2], default=2,
                    help="2: the analytics pipeline also reads a second topic, fed by its own generator")
    ap.add_argument("--keep", default=None, help="copy logs and records into this dir")
    ap.add_argument("--no-trigger", dest="trigger", action="store_false",
                    help="no PostgreSQL trigger refusing rows (and no injected rows for it)")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2 ** 31)
    if a.rate is None:
        a.rate = 500 if a.quick else 1500
    return a


def prepare_pipelines(src, work, tasks, topics):
    """A copy of the pipeline directory with the analytics pipeline set to `tasks` tasks (the
    files are otherwise used as they are). With two topics, the analytics pipeline also reads
    TOPIC2 (its records stored like TOPIC's), and a copy of the ingest pipeline feeds TOPIC2
    from a second generator (GEN_URL_MORE)."""
    dst = os.path.join(work, "pipelines")
    shutil.copytree(src, dst)
    path = os.path.join(dst, "ecommerce-analytics.yaml")
    text = open(path).read()
    if re.search(r"^tasks:", text, re.M):
        text = re.sub(r"^tasks:.*$", "tasks: %d" % tasks, text, count=1, flags=re.M)
    else:
        text = re.sub(r"^(pipeline:.*)$", r"\1\ntasks: %d" % tasks, text, count=1, flags=re.M)
    open(path, "w").write(text)
    if topics == 2:
        import yaml
        doc = yaml.safe_load(text)
        src_stage = doc["stages"][0]
        src_stage["with"]["topics"] = list(src_stage["with"]["topics"]) + [TOPIC2]
        for st in doc["stages"]:
            tables = st.get("with", {}).get("tables")
            if st["use"] == "pg-sink" and tables and TOPIC in tables:
                tables[TOPIC2] = tables[TOPIC]
        with open(path, "w") as f:
            f.write("# written by scripts/chaos.sh from ecommerce-analytics.yaml: a second topic\n")
            yaml.safe_dump(doc, f, sort_keys=False)
        ing = yaml.safe_load(open(os.path.join(dst, "ecommerce-ingest.yaml")))
        ing["pipeline"] = ing["pipeline"] + "-more"
        for st in ing["stages"]:
            w = st.get("with", {})
            if "url" in w:
                w["url"] = w["url"].replace("${GEN_URL", "${GEN_URL_MORE")
            if w.get("topic") == TOPIC:
                w["topic"] = TOPIC2
        with open(os.path.join(dst, "ecommerce-ingest-more.yaml"), "w") as f:
            f.write("# written by scripts/chaos.sh from ecommerce-ingest.yaml: the second topic\n")
            yaml.safe_dump(ing, f, sort_keys=False)
    return dst


def psql(sql, **kw):
    return check.psql(sql, **kw)


TRIGGER = r"""
CREATE OR REPLACE FUNCTION chaos_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A few specific rows, refused like a real constraint would: the chaos certificate expects
    -- each in events_rejected (with the reason) and in no KPI.
    IF NEW.event_id LIKE 'fff%' THEN
        RAISE EXCEPTION 'chaos trigger refuses event %', NEW.event_id USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS chaos_refuse ON events_clean;
CREATE TRIGGER chaos_refuse BEFORE INSERT OR UPDATE ON events_clean
    FOR EACH ROW EXECUTE FUNCTION chaos_refuse();
"""


class Injector:
    """The test's own input beside the generator's (which never makes them): invalid UTF-8,
    out-of-range numbers and rows the trigger refuses, produced straight to the topic with kcat."""

    def __init__(self, bootstrap, work, rnd, refused=True):
        self.bootstrap, self.rnd, self.refused = bootstrap, rnd, refused
        self.path = os.path.join(work, "injected.ndjson")
        self.count = 0

    def _uuid(self, prefix=""):
        u = str(uuid.UUID(int=self.rnd.getrandbits(128), version=4))
        return prefix + u[len(prefix):]

    def batch(self, topic):
        now = datetime.now(timezone.utc)
        ts = now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)
        user = "u-%06d" % self.rnd.randrange(10000)
        out = []
        # invalid UTF-8 inside a string value (the JSON is otherwise well formed)
        out.append(("invalid_utf8", ('{"event_id":"%s","event_type":"page_view","user_id":"%s",'
                                     '"session_id":"s-\xff\xfe","product_id":"p-00001","ts":"%s"}'
                                     % (self._uuid(), user, ts)).encode("latin-1")))
        # numbers no column of the reference schema can hold
        out.append(("out_of_range", ('{"event_id":"%s","event_type":"purchase","user_id":"%s",'
                                     '"session_id":"s-0","product_id":"p-00002","quantity":3000000000,'
                                     '"amount":9.99,"currency":"USD","payment_method":"card","ts":"%s"}'
                                     % (self._uuid(), user, ts)).encode()))
        out.append(("out_of_range", ('{"event_id":"%s","event_type":"purchase","user_id":"%s",'
                                     '"session_id":"s-0","product_id":"p-00003","quantity":1,'
                                     '"amount":1e11,"currency":"USD","payment_method":"card","ts":"%s"}'
                                     % (self._uuid(), user, ts)).encode()))
        # a valid event the PostgreSQL trigger refuses
        if self.refused:
            out.append(("refused", ('{"event_id":"%s","event_type":"purchase","user_id":"%s",'
                                    '"session_id":"s-0","product_id":"p-00004","quantity":1,'
                                    '"amount":19.99,"currency":"USD","payment_method":"card","ts":"%s"}'
                                    % (self._uuid("fff"), user, ts)).encode()))
        lines = b"".join(user.encode() + b"\t" + v + b"\n" for _, v in out)
        with open(self.path, "ab") as f:
            for cls, v in out:
                f.write(json.dumps({"class": cls, "topic": topic, "key": user, "hex": v.hex()}).encode() + b"\n")
        r = subprocess.run(["kcat", "-P", "-b", self.bootstrap, "-t", topic, "-K", "\t",
                            "-X", "message.timeout.ms=60000"], input=lines,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=90)
        self.count += len(out)
        if r.returncode != 0:
            log("  injector: kcat exit %d: %s" % (r.returncode, r.stderr.decode()[-300:]))


class Monitor(threading.Thread):
    """Samples end and committed offsets every second: lag, and recovery after each fault."""

    def __init__(self, bootstrap, topics, partitions, t0):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.client = kq.Client(bootstrap, GROUP, {"socket.timeout.ms": "5000"})
        self.qlock = threading.Lock()
        self.topics, self.partitions, self.t0 = topics, partitions, t0
        self.max_lag, self.samples, self.pending = 0, 0, []
        self.errors, self.last_error = 0, None
        self.last = None
        self.running = True
        self.generating = True
        self.lock = threading.Lock()

    def snapshot(self):
        """(end offsets, committed offsets); after a failure the handle is made anew (one that
        lost its group coordinator to a broker kill does not always find it again)."""
        with self.qlock:
            for attempt in (1, 2):
                try:
                    end, com = {}, {}
                    for t in self.topics:
                        for p, o in self.client.end_offsets(t, self.partitions, 5000).items():
                            end[(t, p)] = o
                        for p, o in self.client.committed(t, self.partitions, 5000).items():
                            com[(t, p)] = max(o, 0)
                    return end, com
                except kq.KafkaError:
                    self.client.close()
                    self.client = kq.Client(self.bootstrap, GROUP, {"socket.timeout.ms": "5000"})
                    if attempt == 2:
                        raise

    def fault(self, entry):
        """Register a fault; it counts as recovered when every partition's committed offset has
        reached the end offset it had at the fault, and (while the generator runs) new events
        arrived in Kafka since — ingest works again."""
        try:
            end, _ = self.snapshot()
        except kq.KafkaError:
            end = self.last[0] if self.last else {(t, p): 0 for t in self.topics for p in range(self.partitions)}
        entry["_end"] = end
        entry["_t"] = time.monotonic()
        with self.lock:
            self.pending.append(entry)

    def run(self):
        while self.running:
            try:
                end, com = self.snapshot()
            except Exception as e:  # noqa: BLE001 — a sample lost, not the run
                self.errors += 1
                self.last_error = str(e)
                time.sleep(1)
                continue
            now = time.monotonic()
            self.last = (end, com)
            self.samples += 1
            lag = sum(max(end[p] - com.get(p, 0), 0) for p in end)
            self.max_lag = max(self.max_lag, lag)
            with self.lock:
                for e in list(self.pending):
                    fe = e["_end"]
                    caught_up = all(com.get(p, 0) >= fe[p] for p in fe)
                    flowing = sum(end.values()) > sum(fe.values()) or not self.generating
                    if caught_up and flowing and now > e["_t"]:
                        e["recovered_after_s"] = round(now - e["_t"], 1)
                        self.pending.remove(e)
            time.sleep(1)


def schedule(seed, quick):
    """The seeded fault kinds, in order. Quick: every kind once, host kills twice. Full: that
    round, then kinds drawn at random (host kills most often) for as long as the caller keeps
    asking — it stops when the fault phase's minutes are used up. A Random of its own, so the
    sequence depends on the seed only."""
    rnd = random.Random(seed * 7919 + 1)
    kinds = ["host_kill", "host_kill", "host_stop", "broker_kill", "pg_restart", "ingest_kill",
             "rebalance"]
    first = list(kinds)
    rnd.shuffle(first)
    yield from first
    if quick:
        return
    pool = kinds + ["host_kill"]
    while True:
        yield rnd.choice(pool)


def main():
    a = parse_args()
    src = os.environ["SLUICE_SOURCE_DIR"]
    build = os.environ["SLUICE_BUILD_DIR"]
    work = os.environ["CHAOS_WORK"]
    sluice = os.environ.get("SLUICE_BIN") or os.path.join(build, "host", "sluice")
    gen_exe = os.path.join(build, "tools", "sluice-gen", "sluice-gen")
    rnd = random.Random(a.seed)
    t0 = time.monotonic()
    elapsed = lambda: round(time.monotonic() - t0, 1)  # noqa: E731
    log("chaos: seed %d (replay: scripts/chaos.sh --seed %d%s --kafka %s)"
        % (a.seed, a.seed, " --quick" if a.quick else " --minutes %g" % a.minutes, a.kafka))

    cert = {"seed": a.seed, "mode": "quick" if a.quick else "full", "kafka": a.kafka,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": subprocess.run(["git", "-C", src, "describe", "--always", "--dirty", "--all"],
                                     capture_output=True, text=True).stdout.strip(),
            "build": build, "pipelines": a.pipelines or os.path.join(src, "pipelines")}
    faults = []
    topics = [TOPIC, TOPIC2][:a.topics]

    # ---- the cluster and the database -------------------------------------------------------
    if a.kafka == "real":
        cluster = RealCluster(os.path.join(src, "scripts", "kafka.sh"), work, 3, topics,
                              a.partitions, 3, 2)
    else:
        cluster = MockCluster(os.path.join(build, "tests", "kafka", "mock-kafka"), work, 3, topics,
                              a.partitions)
    try:
        return run(a, cert, faults, cluster, topics, src, work, sluice, gen_exe, rnd, elapsed)
    finally:
        stop_all()
        cluster.stop()


def run(a, cert, faults, cluster, topics, src, work, sluice, gen_exe, rnd, elapsed):
    boot = cluster.bootstrap
    log("kafka (%s): %s, topics %s with %d partitions each, replication %d, min.insync.replicas %d"
        % (cluster.kind, boot, ", ".join(topics), a.partitions, cluster.replication, cluster.min_isr))
    cert["cluster"] = {"brokers": 3, "topics": topics, "partitions": a.partitions,
                       "replication": cluster.replication, "min_insync_replicas": cluster.min_isr}
    cert["refusing_trigger"] = a.trigger
    check.TRIGGER = a.trigger
    if a.trigger:
        psql(TRIGGER)
    pdir = prepare_pipelines(a.pipelines or os.path.join(src, "pipelines"), work, a.tasks, len(topics))

    mix = {"invalid_pct": 3, "duplicate_pct": 5, "late_pct": 5, "late_by": "60s"}
    gens = [Generator(gen_exe, work, a.seed, a.rate, mix)]
    env = dict(os.environ, KAFKA_BROKERS=boot, GEN_URL=gens[0].url, PGTZ="UTC")
    ingests = [Host("ingest", sluice, os.path.join(pdir, "ecommerce-ingest.yaml"), work, env)]
    if len(topics) == 2:
        # its own seed (other event ids), a quarter of the rate
        gens.append(Generator(gen_exe, work, a.seed + 1, max(a.rate // 4, 1), mix, name="gen-more"))
        env["GEN_URL_MORE"] = gens[1].url
        ingests.append(Host("ingest-more", sluice, os.path.join(pdir, "ecommerce-ingest-more.yaml"),
                            work, env))
    hosts = [Host("host%d" % i, sluice, os.path.join(pdir, "ecommerce-analytics.yaml"), work, env)
             for i in range(3)]
    cert["hosts"], cert["tasks_per_host"] = 2, a.tasks
    inj = Injector(boot, work, rnd, a.trigger)

    for h in ingests + hosts[:2]:
        h.start()
    mon = Monitor(boot, topics, a.partitions, time.monotonic())
    mon.start()
    wait_for("the first partition assignment",
             lambda: any("assigned %s[" % TOPIC in h.tail(400) for h in hosts[:2]), 90)
    for g in gens:
        g.running(True)
    log("%5.1fs generator%s running at %s events/s; hosts host0, host1 (%d tasks each), %s"
        % (elapsed(), "s" if len(gens) > 1 else "", "+".join(str(g.rate) for g in gens), a.tasks,
           ", ".join(h.name for h in ingests)))

    plan = schedule(a.seed, a.quick)
    phase_end = time.monotonic() + a.minutes * 60
    log("fault schedule: every kind once (host_kill twice) in a seeded order%s"
        % ("" if a.quick else ", then drawn at random until %g minutes have passed" % a.minutes))
    extra = None  # the host added by a rebalance
    died = []     # hosts that exited without being told to
    for n, kind in enumerate(plan):
        if not a.quick and n >= 7 and time.monotonic() >= phase_end:
            break
        time.sleep(rnd.uniform(4, 10))
        for t in topics:
            inj.batch(t)
        for h in hosts[:2] + ([extra] if extra else []) + ingests:
            if not h.alive() and not h.stopped:
                # a finding, not a reason to stop: record it and bring the host back
                rc = h.p.returncode if h.p else None
                died.append("%s exited by itself (status %s) before %.0f s: %s"
                            % (h.name, rc, elapsed(), h.tail(2).strip()[-300:]))
                log("%5.1fs %s" % (elapsed(), died[-1]))
                h.start()
        f = {"kind": kind, "at_s": elapsed()}
        try:
            if kind == "host_kill":
                h = rnd.choice([hosts[0], hosts[1]])
                f["target"] = h.name
                mon.fault(f)
                h.kill9()
                time.sleep(rnd.uniform(0.5, 3))
                h.start()
            elif kind == "host_stop":
                h = rnd.choice([hosts[0], hosts[1]])
                f["target"] = h.name
                hold = rnd.uniform(15, 20)  # > session.timeout.ms (6 s) + a rebalance
                f["held_s"] = round(hold, 1)
                mon.fault(f)
                h.sigstop()
                time.sleep(hold)
                h.sigcont()
            elif kind == "broker_kill":
                with mon.qlock:
                    meta, _ = mon.client.metadata()
                counts = {}
                for t in topics:
                    for p, (leader, _, _) in meta.get(t, {}).items():
                        counts[leader] = counts.get(leader, 0) + 1
                bid = max(sorted(counts), key=lambda b: counts[b])
                f["target"] = "broker %d (leader of %d/%d partitions)" % (bid, counts[bid],
                                                                          a.partitions * len(topics))
                mon.fault(f)
                cluster.kill_broker(bid)
                time.sleep(rnd.uniform(10, 20))
                cluster.restart_broker(bid)
            elif kind == "pg_restart":
                f["target"] = "postgresql"
                mon.fault(f)
                # (sourcing pgtmp.sh resets PGTMP_DIR: set it again after)
                subprocess.run(["bash", "-c", 'd=$PGTMP_DIR; . "$1/tests/lib/pgtmp.sh"; PGTMP_DIR=$d; pgtmp_restart',
                                "-", src],
                               check=True, timeout=120)
            elif kind == "ingest_kill":
                ingest = rnd.choice(ingests)
                f["target"] = ingest.name
                mon.fault(f)
                ingest.kill9()
                time.sleep(rnd.uniform(0.5, 3))
                ingest.start()
            elif kind == "rebalance":
                # a host (with its tasks) joins the group, works for a while, and leaves
                f["target"] = "host2 joins, then leaves"
                mon.fault(f)
                extra = hosts[2]
                extra.start()
                time.sleep(rnd.uniform(12, 20))
                rc = extra.term()
                f["leave_exit"] = rc
                extra = None
        except Exception as e:  # noqa: BLE001 — a fault that could not be played is reported, not fatal
            f["error"] = str(e)[-300:]
            log("%5.1fs fault %s could not be played: %s" % (elapsed(), kind, f["error"]))
            if kind == "host_stop" and h.stopped:
                h.sigcont()
        log("%5.1fs fault %-12s %s" % (f["at_s"], kind, f.get("target", "")))
        faults.append(f)

    # ---- drain: stop the generators, let everything flow through -------------------------------
    for t in topics:
        inj.batch(t)
    time.sleep(2)
    for g in gens:
        g.running(False)
    mon.generating = False
    log("%5.1fs generators stopped after %s events" % (elapsed(), "+".join(str(g.stats()["generated"]) for g in gens)))
    state = {}

    def drained():
        """Committed == end on every partition, and the end offsets unchanged over three looks
        (4.5 s, nine ingest polls): nothing more is coming. Not the generator's `buffered`: in
        cursor mode it counts the replay window. If ingest lost or stalled on events, the check
        of the record against the topic says so."""
        try:
            end, com = mon.snapshot()
        except kq.KafkaError:
            state.clear()
            return False
        if not all(com.get(k, 0) >= end[k] for k in end) or state.get("end") != end:
            state["end"], state["same"] = end, 0
            return False
        state["same"] += 1
        return state["same"] >= 3

    try:
        wait_for("every event consumed (committed == end offsets)", drained, 300, every=1.5)
        log("%5.1fs everything consumed: committed offsets == end offsets" % elapsed())
        drained_ok = True
    except RuntimeError as e:
        log("%5.1fs %s" % (elapsed(), e))
        drained_ok = False
    mon.running = False
    mon.join(10)
    exits = {}
    for h in hosts[:2] + ingests:  # all at once: each drains within its own bound
        h.send_term()
    for h in hosts[:2] + ingests:
        exits[h.name] = h.term()
    for g in gens:
        g.stop()
    end, com = mon.snapshot()
    mon.client.close()

    # ---- checks and certificate ------------------------------------------------------------------
    cert["duration_s"] = elapsed()
    cert["faults"] = {}
    for f in faults:
        cert["faults"][f["kind"]] = cert["faults"].get(f["kind"], 0) + 1
    cert["fault_log"] = [{k: v for k, v in f.items() if not k.startswith("_")} for f in faults]
    cert["rebalances"] = check.rebalances([h.logpath for h in hosts])
    cert["max_lag"] = mon.max_lag
    cert["monitor_errors"] = mon.errors
    cert["host_restarts"] = {h.name: h.starts - 1 for h in hosts + ingests if h.starts}
    cert["exit_on_sigterm"] = exits
    results, counts = check.run_all([g.record for g in gens], inj.path, boot, topics, end, com,
                                    drained_ok)
    unplayed = ["%s at %.1f s: %s" % (f["kind"], f["at_s"], f["error"]) for f in faults if "error" in f]
    results.append({"check": "every scheduled fault was played", "result": "FAIL" if unplayed else "PASS",
                    "detail": "%d of %d faults played" % (len(faults) - len(unplayed), len(faults)),
                    "evidence": unplayed[:check.SHOW]})
    bad_exit = ["%s: %s" % (k, "killed after 90 s" if v is None else "exit %d" % v)
                for k, v in exits.items() if v != 0]
    results.append({"check": "no host exited on its own; every host stopped cleanly on SIGTERM",
                    "result": "FAIL" if died or bad_exit else "PASS",
                    "detail": "%d unexpected exits, %d unclean stops" % (len(died), len(bad_exit)),
                    "evidence": (died + bad_exit)[:check.SHOW]})
    cert["events"] = counts
    cert["checks"] = results
    cert["result"] = "PASS" if all(r["result"] == "PASS" for r in results) else "FAIL"
    check.print_certificate(cert)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(cert, f, indent=2)
    return 0 if cert["result"] == "PASS" else 1


if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID: every thread's stack, for a hang
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    sys.exit(main())
