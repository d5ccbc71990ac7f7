#!/usr/bin/env python3
"""kafka-sink / kafka-source integration tests, against the embedded (mock) broker or a real
Apache Kafka cluster (scripts/kafka.sh).

usage: kafka_test.py TEST MOCK_KAFKA_EXE            one test on a mock cluster of its own
       kafka_test.py --real MOCK_KAFKA_EXE TEST...  the tests one after the other on one real
                                                    3-node cluster (a topic per test)
TEST: roundtrip, commits, outage, produce-errors, rebalance (and the real-only ones below).
Runs the real `sluice` ($SLUICE_BIN) with plugins from $SLUICE_PLUGIN_PATH.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Fail, MockKafka, RealKafka, Sluice, check,  # noqa: E402
                     check_committed_not_ahead, count_lines, make_records, read_envelopes, run,
                     run_one, wait_for, write_file)

TOPIC = "events_raw"  # on a real cluster: one topic per test (set by main)
# Small session timeout: a SIGKILLed member leaves the mock group in seconds, not 45 s.
CONSUMER_RDKAFKA = '{"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}'


def ingest_yaml(name, path, extra_source="", key="id"):
    return """pipeline: %s
dead_letter: {use: file-sink, with: {path: %s-dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: %s%s}}
  - {name: out, use: kafka-sink, with: {brokers: "${KAFKA_BROKERS}", topic: %s, key: %s}}
""" % (name, name, path, extra_source, TOPIC, key)


def consume_yaml(name, group, out, tasks=1, rdkafka=CONSUMER_RDKAFKA):
    return """pipeline: %s
tasks: %d
stages:
  - name: in
    use: kafka-source
    with: {brokers: "${KAFKA_BROKERS}", topics: [%s], group: %s, rdkafka: %s}
  - {name: out, use: file-sink, with: {path: %s, headers: true}}
""" % (name, tasks, TOPIC, group, rdkafka, out)


class Mock:
    """A mock cluster of its own for each test; faults by mock-kafka commands."""
    real = False

    def __init__(self, exe):
        self.exe = exe

    def start(self, cleanup, partitions=8, configs=()):
        k = MockKafka(self.exe, [TOPIC], partitions=partitions)
        cleanup.append(k)
        return k, {"KAFKA_BROKERS": k.bootstrap}

    @staticmethod
    def outage(k, begin):
        k.cmd("down 1" if begin else "up 1")


class Real:
    """One real cluster for all the tests of this process; each test gets its own topic
    (replication factor 3, min.insync.replicas 2 unless configs say otherwise)."""
    real = True

    def __init__(self, cluster):
        self.k = cluster

    def start(self, cleanup, partitions=8, configs=("min.insync.replicas=2",)):
        self.k.topic(TOPIC, partitions, 3, configs)
        return self.k, {"KAFKA_BROKERS": self.k.bootstrap}

    @staticmethod
    def outage(k, begin):
        """Every broker kill -9'ed, later restarted: clients see all brokers down."""
        if begin:
            k.down()
        else:
            k.up()


def ingest(d, cleanup, env, records, name="ingest"):
    """file-source → kafka-sink, to the end of the file; must exit 0."""
    write_file(os.path.join(d, name + ".ndjson"), "\n".join(records) + "\n")
    write_file(os.path.join(d, name + ".yaml"), ingest_yaml(name, name + ".ndjson"))
    s = Sluice(d, name, [name + ".yaml"], env)
    cleanup.append(s)
    check(s.wait(120) == 0, "ingest pipeline failed:\n" + s.tail())
    check(count_lines(os.path.join(d, name + "-dlq.ndjson")) == 0, "records went to the dead letter")


class Feeder(threading.Thread):
    """Appends records to a file in chunks, slowly, while a follow-mode ingest pipeline
    (file-source follow → kafka-sink) produces them: consumers then stop mid-stream."""

    def __init__(self, d, cleanup, env, records, chunk=1000, pause=0.25, hook=None):
        super().__init__(daemon=True)
        self.path = os.path.join(d, "follow.ndjson")
        write_file(self.path, "")
        write_file(os.path.join(d, "ingest.yaml"),
                   ingest_yaml("ingest", "follow.ndjson", ", follow: true, offset_file: in.offset"))
        self.producer = Sluice(d, "ingest", ["ingest.yaml"], env)
        cleanup.append(self.producer)
        self.records, self.chunk, self.pause, self.hook = records, chunk, pause, hook
        self.error = None
        self.start()

    def run(self):
        try:
            with open(self.path, "a") as f:
                for i in range(0, len(self.records), self.chunk):
                    f.write("\n".join(self.records[i:i + self.chunk]) + "\n")
                    f.flush()
                    if self.hook:
                        self.hook(i // self.chunk)
                    time.sleep(self.pause)
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self, k):
        """Wait until the broker has every record, then stop the producer (exit 0)."""
        self.join(120)
        if self.error:
            raise self.error
        n = len(self.records)
        wait_for("%d records in the broker" % n, lambda: sum(k.end_offsets(TOPIC).values()) >= n, 90, 0.5)
        check(self.producer.term() == 0, "producer did not exit 0")


def values_of(envs):
    return [e["value"] for e in envs]


def t_roundtrip(d, cleanup, backend):
    """200,000 records file → kafka-sink → broker → kafka-source → file, plus 1,000 records
    produced by kcat with keys and headers: all arrive byte-identical (value, key, headers)."""
    k, env = backend.start(cleanup, partitions=16)
    n = 200000
    records = make_records(n)
    write_file(os.path.join(d, "consume.yaml"), consume_yaml("consume", "rt", "out.ndjson"))
    consumer = Sluice(d, "consume", ["consume.yaml"], env)
    cleanup.append(consumer)
    ingest(d, cleanup, env, records)
    # Records with keys and headers, produced by another client.
    kc = ["k%d\t{\"extra\":%d,\"s\":\"tab-free \\u00e9\"}" % (i, i) for i in range(1000)]
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", TOPIC, "-K", "\t", "-H", "trace=abc",
                    "-H", "origin=kcat"], input="\n".join(kc) + "\n", text=True, check=True,
                   timeout=60)
    out = os.path.join(d, "out.ndjson")
    wait_for("%d records in the output" % (n + 1000), lambda: count_lines(out) >= n + 1000, 120, 0.5)
    check(consumer.term() == 0, "consumer did not stop cleanly")
    envs = read_envelopes(out)
    check(len(envs) == n + 1000, "expected %d records once each, got %d" % (n + 1000, len(envs)))
    by_value = {e["value"]: e for e in envs}
    check(len(by_value) == len(envs), "duplicate records in the output")
    for i, r in enumerate(records):
        e = by_value.get(r)
        check(e is not None, "record %d lost: %s" % (i, r))
        check(e.get("key") == str(i), "record %d: key %r, expected %r" % (i, e.get("key"), str(i)))
        check(e["topic"] == TOPIC and e["timestamp"] > 0, "record %d: bad envelope %r" % (i, e))
    for line in kc:
        key, value = line.split("\t", 1)
        e = by_value.get(value)
        check(e is not None, "kcat record lost: %s" % value)
        check(e.get("key") == key, "kcat record: key %r, expected %r" % (e.get("key"), key))
        check(e["headers"] == {"trace": "abc", "origin": "kcat"}, "headers lost: %r" % e["headers"])
    ends = k.end_offsets(TOPIC)
    check(sum(ends.values()) == n + 1000, "broker holds %d records, expected %d"
          % (sum(ends.values()), n + 1000))


def t_commits(d, cleanup, backend):
    """SIGTERM then SIGKILL of a consumer mid-stream: every record arrives, nothing is
    committed before it is in the output, and a SIGTERM leaves no record twice."""
    k, env = backend.start(cleanup)
    n = 60000
    records = make_records(n)
    feeder = Feeder(d, cleanup, env, records)
    out = os.path.join(d, "out.ndjson")
    write_file(os.path.join(d, "consume.yaml"), consume_yaml("consume", "cg", "out.ndjson"))

    def run_until(lines, how):
        s = Sluice(d, "consume", ["consume.yaml"], env)
        cleanup.append(s)
        wait_for("%d output lines" % lines, lambda: count_lines(out) >= lines, 60, 0.02)
        if how == "term":
            check(s.term() == 0, "consumer did not exit 0 on SIGTERM")
        else:
            s.kill()

    run_until(10000, "term")
    first = values_of(read_envelopes(out))
    check(len(first) < n, "the consumer was not stopped mid-stream")
    check(len(set(first)) == len(first), "duplicates before any crash")
    check_committed_not_ahead(k.committed("cg", TOPIC), read_envelopes(out), TOPIC)

    run_until(len(first) + 15000, "kill")
    envs = read_envelopes(out)
    vals = values_of(envs)
    check(len(set(vals)) == len(vals), "a record was read twice after a SIGTERM restart")
    check_committed_not_ahead(k.committed("cg", TOPIC), envs, TOPIC)

    check(len(vals) < n, "the consumer was not killed mid-stream")

    s = Sluice(d, "consume", ["consume.yaml"], env)
    cleanup.append(s)
    feeder.finish(k)
    want = set(records)
    wait_for("every record", lambda: want <= set(values_of(read_envelopes(out))), 90, 0.5)
    check(s.term() == 0, "consumer did not exit 0 on SIGTERM")
    check(want == set(values_of(read_envelopes(out))), "unexpected records in the output")


def t_outage(d, cleanup, backend):
    """The broker goes down for a few seconds while records are produced and consumed."""
    k, env = backend.start(cleanup)
    n = 60000
    records = make_records(n)
    out = os.path.join(d, "out.ndjson")
    write_file(os.path.join(d, "consume.yaml"), consume_yaml("consume", "og", "out.ndjson"))
    consumer = Sluice(d, "consume", ["consume.yaml"], env)
    cleanup.append(consumer)

    def outage(chunk):
        if chunk == 10:
            wait_for("output before the outage", lambda: count_lines(out) > 0, 60)
            backend.outage(k, True)
        elif chunk == 22:  # 12 chunks * 0.25 s: about 3 s down
            backend.outage(k, False)
    feeder = Feeder(d, cleanup, env, records, hook=outage)
    feeder.finish(k)
    want = set(records)
    wait_for("every record in the output", lambda: want <= set(values_of(read_envelopes(out))), 90, 0.5)
    check(consumer.term() == 0, "consumer did not exit 0")
    check(sum(k.end_offsets(TOPIC).values()) == n, "the idempotent producer wrote duplicates")
    check(count_lines(os.path.join(d, "ingest-dlq.ndjson")) == 0, "records went to the dead letter")
    log = open(feeder.producer.log_path, errors="replace").read()
    check("brokers are down" in log, "the producer never saw the outage")


def t_produce_errors(d, cleanup, backend):
    """Retriable Produce errors are retried: all records land, once each. A record librdkafka
    refuses (larger than message.max.bytes) goes to the dead letter with the reason.
    Mock: NOT_LEADER_OR_FOLLOWER and NOT_ENOUGH_REPLICAS injected. Real: the topic needs 3 in-sync
    replicas and one broker is shut down (it leaves the ISR at once) while the pipeline produces,
    so the leaders answer NOT_ENOUGH_REPLICAS until it is back."""
    if backend.real:
        k, env = backend.start(cleanup, configs=("min.insync.replicas=3",))
        k.kafka("stop-broker", 3)
    else:
        k, env = backend.start(cleanup)
        # ApiKey 0 = Produce; 6 = NOT_LEADER_OR_FOLLOWER, 19 = NOT_ENOUGH_REPLICAS.
        k.cmd("err 8 0 6")
        k.cmd("err 8 0 19")
    n = 30000
    records = make_records(n)
    big = "{\"id\":-1,\"pad\":\"%s\"}" % ("x" * 20000)
    write_file(os.path.join(d, "in.ndjson"), "\n".join(records[:100] + [big] + records[100:]) + "\n")
    write_file(os.path.join(d, "p.yaml"), ingest_yaml("p", "in.ndjson").replace(
        "key: id}", "key: id, rdkafka: {message.max.bytes: \"10000\"}}"))
    s = Sluice(d, "p", ["p.yaml"], env)
    cleanup.append(s)
    if backend.real:
        # Nothing can be acknowledged while the broker is away; then it comes back.
        time.sleep(5)
        check(s.alive(), "the pipeline stopped while the topic lacked in-sync replicas:\n" + s.tail())
        check(sum(k.end_offsets(TOPIC).values()) == 0,
              "records were acknowledged with fewer than min.insync.replicas in sync")
        k.up(3)
    check(s.wait(120) == 0, "pipeline failed")
    ends = k.end_offsets(TOPIC)
    check(sum(ends.values()) == n, "broker holds %d records, expected %d" % (sum(ends.values()), n))
    dlq = read_envelopes(os.path.join(d, "p-dlq.ndjson"))
    check(len(dlq) == 1 and dlq[0]["value"] == big, "expected the big record in the dead letter")
    reason = dlq[0]["headers"].get("sluice.error.reason", "")
    check("too large" in reason.lower(), "dead-letter reason: %r" % reason)


def t_rebalance(d, cleanup, backend):
    """A second consumer joins mid-stream; then both crash. No record is committed before it is
    in an output, and after a restart every record is there."""
    k, env = backend.start(cleanup)
    n = 80000
    records = make_records(n)
    feeder = Feeder(d, cleanup, env, records)
    outs = [os.path.join(d, "out-a.ndjson"), os.path.join(d, "out-b.ndjson")]
    write_file(os.path.join(d, "a.yaml"), consume_yaml("consume-a", "rg", "out-a.ndjson"))
    write_file(os.path.join(d, "b.yaml"), consume_yaml("consume-b", "rg", "out-b.ndjson"))
    a = Sluice(d, "a", ["a.yaml"], env)
    cleanup.append(a)
    wait_for("first consumer output", lambda: count_lines(outs[0]) >= 5000, 60, 0.02)
    b = Sluice(d, "b", ["b.yaml"], env)
    cleanup.append(b)
    wait_for("second consumer output (rebalance done)", lambda: count_lines(outs[1]) >= 2000, 60, 0.05)
    a.kill()
    b.kill()
    # Committed offsets first, outputs second: the members keep consuming and committing
    # meanwhile, and outputs only grow, so this order never reports a commit as premature.
    committed = k.committed("rg", TOPIC)
    envs = read_envelopes(outs[0]) + read_envelopes(outs[1])
    check_committed_not_ahead(committed, envs, TOPIC)
    check(count_lines(outs[0]) + count_lines(outs[1]) < n, "the consumers were not killed mid-stream")
    c = Sluice(d, "a", ["a.yaml"], env)
    cleanup.append(c)
    feeder.finish(k)
    want = set(records)

    def complete():
        return want <= set(values_of(read_envelopes(outs[0]) + read_envelopes(outs[1])))
    wait_for("every record after the restart", complete, 90, 0.5)
    check(c.term() == 0, "consumer did not exit 0")


def rest_call(sl, method, path, token):
    """A REST call to a Sluice started with SLUICE_REST_LISTEN=127.0.0.1:0; returns the status."""
    import urllib.request
    m = None
    for _ in range(100):
        m = re.search(r"REST API listening on (http://[0-9.]+:[0-9]+)", open(sl.log_path, errors="replace").read())
        if m:
            break
        time.sleep(0.1)
    check(m, "no REST address in %s" % sl.log_path)
    req = urllib.request.Request(m.group(1) + path, method=method, data=b"",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def t_pause_rebalance(d, cleanup, backend):
    """librdkafka keeps a partition's pause flag across revoke and re-assignment. A member is
    paused, a second member takes some of its partitions, the first resumes (its own partitions
    only), the second dies and its partitions come back to the first: they must be fetched again
    (they stayed paused before the fix, and their records never arrived)."""
    k, env = backend.start(cleanup)
    n = 40000
    records = make_records(n)
    feeder = Feeder(d, cleanup, env, records)
    outs = [os.path.join(d, "out-a.ndjson"), os.path.join(d, "out-b.ndjson")]
    token = "pause-rebalance-token"
    env = dict(env, SLUICE_REST_TOKEN=token, SLUICE_STATE_DIR=os.path.join(d, "state-a"))
    write_file(os.path.join(d, "a.yaml"), consume_yaml("consume-a", "pg", "out-a.ndjson"))
    write_file(os.path.join(d, "b.yaml"), consume_yaml("consume-b", "pg", "out-b.ndjson"))
    a = Sluice(d, "a", ["a.yaml"], env)
    cleanup.append(a)
    wait_for("first consumer output", lambda: count_lines(outs[0]) >= 2000, 60, 0.02)
    check(rest_call(a, "PUT", "/connectors/consume-a/pause", token) == 202, "pause refused")
    time.sleep(2)
    b = Sluice(d, "b", ["b.yaml"], dict(env, SLUICE_STATE_DIR=os.path.join(d, "state-b")))
    cleanup.append(b)
    wait_for("second consumer output (rebalance done)", lambda: count_lines(outs[1]) >= 1000, 60, 0.05)
    b_got = set(log_partitions(b.log_path, "assigned"))
    check(b_got and len(b_got) < 8, "the second member got %s" % sorted(b_got))
    check(rest_call(a, "PUT", "/connectors/consume-a/resume", token) == 202, "resume refused")
    b.kill()
    feeder.finish(k)
    want = set(records)

    def complete():
        return want <= set(values_of(read_envelopes(outs[0]) + read_envelopes(outs[1])))
    wait_for("every record, the dead member's partitions read by the first again", complete, 90, 0.5)
    check(a.term() == 0, "consumer did not exit 0")


def log_partitions(path, what):
    """Partitions of TOPIC a consumer's log says were `what` ("assigned" / "revoked"), in order."""
    pat = re.compile(r"%s %s\[(\d+)\]" % (what, re.escape(TOPIC)))
    with open(path, errors="replace") as f:
        return [int(m.group(1)) for m in pat.finditer(f.read())]


def t_cooperative(d, cleanup, backend):
    """cooperative-sticky: a second member joins, then is killed. The first member only gives up
    the partitions the second one takes (never all of them: no stop-the-world), takes them back
    incrementally when the second dies, nothing is committed before it is in an output, and
    every record arrives."""
    k, env = backend.start(cleanup)
    n = 80000
    records = make_records(n)
    feeder = Feeder(d, cleanup, env, records)
    outs = [os.path.join(d, "out-a.ndjson"), os.path.join(d, "out-b.ndjson")]
    coop = CONSUMER_RDKAFKA.replace("}", ', "partition.assignment.strategy": "cooperative-sticky"}')
    write_file(os.path.join(d, "a.yaml"), consume_yaml("consume-a", "coop", "out-a.ndjson", rdkafka=coop))
    write_file(os.path.join(d, "b.yaml"), consume_yaml("consume-b", "coop", "out-b.ndjson", rdkafka=coop))
    a = Sluice(d, "a", ["a.yaml"], env)
    cleanup.append(a)
    wait_for("first consumer output", lambda: count_lines(outs[0]) >= 5000, 60, 0.02)
    check(sorted(log_partitions(a.log_path, "assigned")) == list(range(8)),
          "the first member should own all 8 partitions: %s" % log_partitions(a.log_path, "assigned"))
    b = Sluice(d, "b", ["b.yaml"], env)
    cleanup.append(b)
    t0 = time.monotonic()
    wait_for("second consumer output (rebalance done)", lambda: count_lines(outs[1]) >= 2000, 60, 0.05)
    print("cooperative join: the new member's output after %.1f s" % (time.monotonic() - t0))
    b_got = log_partitions(b.log_path, "assigned")
    a_gave = log_partitions(a.log_path, "revoked")
    check(b_got and len(b_got) < 8, "the second member got %s" % b_got)
    check(sorted(a_gave) == sorted(b_got), "the first member gave up %s, the second got %s: only the "
          "partitions that move may be revoked" % (a_gave, b_got))
    check("(incremental)" in open(a.log_path, errors="replace").read(), "no incremental assignment logged")
    b.kill()
    t0 = time.monotonic()
    wait_for("the dead member's partitions back at the first",
             lambda: sorted(log_partitions(a.log_path, "assigned")) == sorted(list(range(8)) + b_got), 60, 0.1)
    print("cooperative: partitions of the killed member reassigned after %.1f s" % (time.monotonic() - t0))
    check(len(log_partitions(a.log_path, "revoked")) == len(a_gave),
          "the first member's partitions were revoked again when the second died")
    # Committed offsets first, outputs second: the members keep consuming and committing
    # meanwhile, and outputs only grow, so this order never reports a commit as premature.
    committed = k.committed("coop", TOPIC)
    envs = read_envelopes(outs[0]) + read_envelopes(outs[1])
    check_committed_not_ahead(committed, envs, TOPIC)
    feeder.finish(k)
    want = set(records)

    def complete():
        return want <= set(values_of(read_envelopes(outs[0]) + read_envelopes(outs[1])))
    wait_for("every record", complete, 90, 0.5)
    check(a.term() == 0, "consumer did not exit 0")
    check_committed_not_ahead(k.committed("coop", TOPIC), read_envelopes(outs[0]) + read_envelopes(outs[1]), TOPIC)


def metric(log_path, name):
    """The value of stage counter `name` on the REST /metrics of the sluice that wrote log_path."""
    urls = re.findall(r"REST API listening on (http://[0-9.:]+)/", open(log_path, errors="replace").read())
    if not urls:
        return None
    body = urllib.request.urlopen(urls[-1] + "/metrics", timeout=10).read().decode()
    vals = [float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
            if l.startswith("sluice_stage_events_total") and 'name="%s"' % name in l]
    return sum(vals) if vals else None


def t_offset_reset(d, cleanup, backend):
    """The committed offset is gone from the broker (records deleted, as retention does): the
    consumer says so in an error (not a warning), counts it (offset_resets), and continues at
    `start`. rdkafka.auto.offset.reset is refused by name."""
    k, env = backend.start(cleanup, partitions=1, configs=())
    first, second = make_records(1000), make_records(1000, 1000)
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", TOPIC], input="\n".join(first) + "\n",
                   text=True, check=True, timeout=60)
    out = os.path.join(d, "out.ndjson")
    write_file(os.path.join(d, "c.yaml"), consume_yaml("c", "reset", "out.ndjson"))
    s = Sluice(d, "c", ["c.yaml"], env)
    cleanup.append(s)
    wait_for("the first 1000 records", lambda: count_lines(out) >= 1000, 60, 0.1)
    wait_for("offset 1000 committed", lambda: k.committed("reset", TOPIC).get(0) == 1000, 30, 0.2)
    check(s.term() == 0, "consumer did not exit 0")
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", TOPIC], input="\n".join(second) + "\n",
                   text=True, check=True, timeout=60)
    k.kafka("delete-records", TOPIC, 0, 1500)
    s = Sluice(d, "c", ["c.yaml"], env)
    cleanup.append(s)
    wait_for("records after the reset", lambda: count_lines(out) >= 1500, 60, 0.1)
    wait_for("offset_resets = 1 on /metrics", lambda: metric(s.log_path, "offset_resets") == 1, 30, 0.5)
    check(s.term() == 0, "consumer did not exit 0")
    log = open(s.log_path, errors="replace").read()
    check(re.search(r'level=error .*offset reset on %s\[0\]: offset 1000 ' % re.escape(TOPIC), log),
          "no error log for the offset reset:\n" + s.tail())
    vals = values_of(read_envelopes(out))
    check(vals == first + second[500:], "expected the first 1000 records, then 1500..1999 once each; "
          "got %d records" % len(vals))
    # The reset policy cannot be set around it.
    write_file(os.path.join(d, "bad.yaml"), consume_yaml("bad", "reset", "bad.ndjson",
                                                         rdkafka='{"auto.offset.reset": "earliest"}'))
    bad = Sluice(d, "bad", ["bad.yaml"], env)
    cleanup.append(bad)
    check(bad.wait(60) != 0, "rdkafka.auto.offset.reset was accepted")
    check("rdkafka.auto.offset.reset" in bad.tail(), "no error naming the key:\n" + bad.tail())


TESTS = {"roundtrip": t_roundtrip, "commits": t_commits, "outage": t_outage,
         "produce-errors": t_produce_errors, "rebalance": t_rebalance,
         "pause-rebalance": t_pause_rebalance,
         "cooperative": t_cooperative, "offset-reset": t_offset_reset}


def main_real(exe, names):
    """One 3-node cluster for all the named tests, stopped at the end whatever happens."""
    global TOPIC
    import signal
    import tempfile
    from harness import _terminated
    signal.signal(signal.SIGTERM, _terminated)
    failed = []
    with tempfile.TemporaryDirectory(prefix="sluice-kafka-real-") as d:
        cluster = None
        try:
            cluster = RealKafka(exe, d, brokers=3)
            backend = Real(cluster)
            for name in names:
                TOPIC = "t-" + name
                if not run_one(name, TESTS[name], backend):
                    failed.append(name)
        except Fail as e:
            print("FAIL: %s" % e)
            failed.append("cluster")
        finally:
            if cluster:
                cluster.close()
    print("failed: %s" % " ".join(failed) if failed else "all passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--real" and all(t in TESTS for t in sys.argv[3:]):
        main_real(sys.argv[2], sys.argv[3:])
    if len(sys.argv) != 3 or sys.argv[1] not in TESTS:
        print(__doc__)
        sys.exit(2)
    run(TESTS, [sys.argv[0], sys.argv[1], Mock(sys.argv[2])])
