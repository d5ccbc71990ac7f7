#!/usr/bin/env python3
"""Benchmarks (figures only, never pass/fail on time) for the Kafka and HTTP stages, against
the embedded mock broker (librdkafka's, in memory, on loopback; it shares the machine).

  python3 bench/kafka-bench.py [BUILD_DIR] [EVENTS]

1. http-source (listen, ack: accepted) -> kafka-sink: EVENTS events POSTed as NDJSON bodies of
   20,000 events by 2 keep-alive client threads; the clock runs from the first POST until the
   broker's high watermarks add up to EVENTS.
2. kafka-source -> file-sink(/dev/null, fsync off): the clock runs from the partition
   assignment (logged by kafka-source) until the group's committed offsets add up to EVENTS
   (commit_interval 50ms, polled every 20 ms).
"""
import datetime
import http.client
import os
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "kafka"))
import harness  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build"))
EVENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
BODY_EVENTS = 20000
TOPIC = "events_raw"
os.environ.setdefault("SLUICE_BIN", os.path.join(BUILD, "host", "sluice"))
os.environ.setdefault("SLUICE_PLUGIN_PATH", os.path.join(BUILD, "plugins"))
harness.SLUICE = os.environ["SLUICE_BIN"]


def body(start):
    return "".join(
        "{\"event_id\":\"e%09d\",\"event_type\":\"purchase\",\"user_id\":\"u%05d\",\"amount\":%d.%02d,"
        "\"ts\":\"2026-11-24T10:00:00.000Z\"}\n" % (i, i % 50000, i % 500, i % 100)
        for i in range(start, start + BODY_EVENTS)).encode()


def log_time(line):
    m = re.match(r"ts=(\S+)Z", line)
    return datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    d = tempfile.mkdtemp(prefix="sluice-kbench-")
    k = harness.MockKafka(os.path.join(BUILD, "tests", "kafka", "mock-kafka"), [TOPIC], partitions=16)
    procs = []
    try:
        env = {"KAFKA_BROKERS": k.bootstrap}
        port = harness.free_port()
        harness.write_file(os.path.join(d, "ingest.yaml"), """pipeline: bench-ingest
stages:
  - {name: in, use: http-source, with: {mode: listen, address: "127.0.0.1:%d", path: /ingest, queue_size: 2000000}}
  - {name: out, use: kafka-sink, with: {brokers: "${KAFKA_BROKERS}", topic: %s}}
""" % (port, TOPIC))
        ingest = harness.Sluice(d, "ingest", ["ingest.yaml"], env, extra_args=["--no-rest"])
        procs.append(ingest)
        bodies = [body(i) for i in range(0, 2 * BODY_EVENTS, BODY_EVENTS)]
        n_bodies = EVENTS // BODY_EVENTS
        total = n_bodies * BODY_EVENTS

        def ready():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("POST", "/ingest", body=b"")
                return c.getresponse().status == 200
            except OSError:
                return False
        harness.wait_for("the listener", ready, 30)

        sent = [0]
        lock = threading.Lock()

        def pusher(idx):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while True:
                with lock:
                    if sent[0] >= n_bodies:
                        return
                    sent[0] += 1
                while True:
                    c.request("POST", "/ingest", body=bodies[idx % 2],
                              headers={"Content-Type": "application/x-ndjson"})
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        break
                    time.sleep(0.05)  # 503: the pipeline is busy
        t0 = time.monotonic()
        threads = [threading.Thread(target=pusher, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_posted = time.monotonic()
        harness.wait_for("all events in Kafka", lambda: sum(k.end_offsets(TOPIC).values()) >= total, 300, 0.05)
        t1 = time.monotonic()
        print("http-source (listen) -> kafka-sink: %d events in %.2f s = %d events/s "
              "(POSTs done after %.2f s; %d B/event, lz4, acks=all, idempotent)"
              % (total, t1 - t0, total / (t1 - t0), t_posted - t0, len(bodies[0]) // BODY_EVENTS))
        ingest.term()

        harness.write_file(os.path.join(d, "consume.yaml"), """pipeline: bench-consume
commit_interval: 50ms
stages:
  - {name: in, use: kafka-source, with: {brokers: "${KAFKA_BROKERS}", topics: [%s], group: bench}}
  - {name: out, use: file-sink, with: {path: /dev/null, fsync: false}}
""" % TOPIC)
        consume = harness.Sluice(d, "consume", ["consume.yaml"], env, extra_args=["--no-rest"])
        procs.append(consume)
        harness.wait_for("all events committed",
                         lambda: sum(max(v, 0) for v in k.committed("bench", TOPIC).values()) >= total,
                         300, 0.02)
        t1 = time.time()
        assigned = [l for l in open(consume.log_path) if "msg=\"assigned " in l]
        t0 = log_time(assigned[0])
        print("kafka-source -> file-sink(/dev/null): %d events in %.2f s = %d events/s"
              % (total, t1 - t0, total / (t1 - t0)))
        consume.term()
    finally:
        for p in procs:
            if p.alive():
                p.kill()
        k.close()


if __name__ == "__main__":
    main()
