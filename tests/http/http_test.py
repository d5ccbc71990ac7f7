#!/usr/bin/env python3
"""http-source integration tests (listen and poll modes) with the real `sluice`.

usage: http_test.py TEST MOCK_KAFKA_EXE      (TEST: listen, durable, poll, drain)
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
from harness import (MockKafka, Sluice, check, count_lines, free_port, run,  # noqa: E402
                     wait_for, write_file)

TOPIC = "events_raw"


def post(url, body, token=None, timeout=30):
    """POST; returns (status, headers, body text) for any status."""
    req = urllib.request.Request(url, data=body.encode() if isinstance(body, str) else body,
                                 method="POST")
    req.add_header("Content-Type", "application/x-ndjson")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
    except (urllib.error.URLError, ConnectionError) as e:  # not listening (yet)
        return 0, {}, str(e)


def ndjson(start, n):
    return "".join("{\"id\":%d,\"v\":\"x\"}\n" % i for i in range(start, start + n))


def kafka_values(bootstrap):
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", TOPIC, "-e", "-q", "-f", "%s\n"],
                       capture_output=True, text=True, timeout=60)
    return set(l for l in r.stdout.split("\n") if l)


def listen_pipeline(d, name, port, sink_extra="", source_extra=""):
    write_file(os.path.join(d, name + ".yaml"), """pipeline: %s
stages:
  - name: in
    use: http-source
    with: {mode: listen, address: "127.0.0.1:%d", path: /ingest%s}
  - name: out
    use: kafka-sink
    with: {brokers: "${KAFKA_BROKERS}", topic: %s%s}
""" % (name, port, source_extra, TOPIC, sink_extra))
    return name + ".yaml"


def t_listen(d, cleanup, exe):
    """401, 404, 405, 413, 400, 202; then 503 + Retry-After while the broker is down and the
    bounded queue fills; after the broker returns every accepted record is in Kafka, once."""
    k = MockKafka(exe, [TOPIC], partitions=4)
    cleanup.append(k)
    port = free_port()
    f = listen_pipeline(d, "listen", port,
                        sink_extra=', rdkafka: {queue.buffering.max.messages: "100"}',
                        source_extra=", token: s3cret, max_body: 64KiB, queue_size: 1000")
    s = Sluice(d, "listen", [f], {"KAFKA_BROKERS": k.bootstrap})
    cleanup.append(s)
    url = "http://127.0.0.1:%d/ingest" % port
    wait_for("the listener", lambda: post(url, "", "s3cret")[0] == 200, 30, 0.2)

    check(post(url, ndjson(0, 1))[0] == 401, "no token: expected 401")
    check(post(url, ndjson(0, 1), "wrong")[0] == 401, "wrong token: expected 401")
    check(post(url.replace("/ingest", "/other"), ndjson(0, 1), "s3cret")[0] == 404, "expected 404")
    req = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
    try:
        urllib.request.urlopen(req, timeout=10)
        check(False, "GET: expected 405")
    except urllib.error.HTTPError as e:
        check(e.code == 405, "GET: expected 405, got %d" % e.code)
    st, _, body = post(url, "x" * (65 * 1024), "s3cret")
    check(st == 413, "oversized body: expected 413, got %d" % st)
    st, _, body = post(url, ndjson(0, 2) + "{\"id\": 2,\n", "s3cret")
    check(st == 400 and "line 3" in body, "bad NDJSON: expected 400 naming line 3, got %d %s" % (st, body))
    st, _, body = post(url, "[{\"id\":1},", "s3cret")
    check(st == 400, "bad array: expected 400, got %d" % st)

    accepted = set()
    st, _, _ = post(url, "[{\"id\":-1,\"s\":\"a,]b\"},\n {\"id\":-2}]", "s3cret")
    check(st == 202, "JSON array: expected 202 (accepted, not durable), got %d" % st)
    accepted |= {"{\"id\":-1,\"s\":\"a,]b\"}", "{\"id\":-2}"}
    wait_for("the first records in Kafka", lambda: accepted <= kafka_values(k.bootstrap), 30, 0.2)

    # Broker down: the sink's local queue (100) fills, the task blocks, the source's queue
    # (1000 records) fills, and requests get 503 + Retry-After instead of blocking.
    k.cmd("down 1")
    busy = None
    for i in range(40):
        st, hdrs, _ = post(url, ndjson(i * 500, 500), "s3cret")
        if st == 503:
            busy = hdrs
            break
        check(st == 202, "expected 202 or 503, got %d" % st)
        accepted |= set(ndjson(i * 500, 500).split("\n")) - {""}
    check(busy is not None, "no 503 while the pipeline was blocked")
    check(busy.get("Retry-After"), "503 without Retry-After")

    k.cmd("up 1")
    wait_for("every accepted record in Kafka", lambda: accepted <= kafka_values(k.bootstrap), 60, 0.5)
    st, _, _ = post(url, ndjson(100000, 10), "s3cret")
    check(st == 202, "after recovery: expected 202, got %d" % st)
    check(s.term() == 0, "sluice did not exit 0")
    total = sum(k.end_offsets(TOPIC).values())
    check(total == len(accepted) + 10, "Kafka holds %d records, %d were accepted" % (total, len(accepted) + 10))


def t_durable(d, cleanup, exe):
    """ack: durable answers 200 only once the sink's delivery reports are in, 504 when they
    do not come within ack_timeout."""
    k = MockKafka(exe, [TOPIC], partitions=4)
    cleanup.append(k)
    k.cmd("down 1")
    port = free_port()
    f = listen_pipeline(d, "durable", port, source_extra=", ack: durable, ack_timeout: 3s")
    s = Sluice(d, "durable", [f], {"KAFKA_BROKERS": k.bootstrap})
    cleanup.append(s)
    url = "http://127.0.0.1:%d/ingest" % port
    wait_for("the listener", lambda: post(url, "")[0] == 200, 30, 0.2)

    st, _, body = post(url, ndjson(0, 10))
    check(st == 504, "broker down: expected 504 after ack_timeout, got %d %s" % (st, body))

    answer = {}

    def send():
        answer["r"] = post(url, ndjson(100, 10))
    t = threading.Thread(target=send)
    t.start()
    t.join(1.5)
    check(t.is_alive(), "answered while no delivery report could have arrived")
    k.cmd("up 1")
    t.join(30)
    check(not t.is_alive() and answer["r"][0] == 200, "expected 200 once delivered, got %r" % answer)
    want = set(ndjson(100, 10).split("\n")) - {""}
    check(want <= kafka_values(k.bootstrap), "200 answered before the records were in Kafka")
    check(s.term() == 0, "sluice did not exit 0")


def t_poll(d, cleanup, exe):
    """mode: poll against a loopback web server: a JSON array and NDJSON are split into
    records (raw bytes kept); an unreachable endpoint is retried with backoff and the source
    keeps running."""
    www = os.path.join(d, "www")
    os.mkdir(www)
    items = ["{\"id\":1,\"s\":\"a,]}b\"}", "{\"id\":2,\"n\":[1,{\"x\":2}]}", "3", "\"four\""]
    write_file(os.path.join(www, "events.json"), "[\n  " + ",\n  ".join(items) + "\n]\n")
    lines = ["{\"id\":10}", "{\"id\":11}", "{\"id\":12}"]
    write_file(os.path.join(www, "events.ndjson"), "\n".join(lines) + "\n\n")
    port, dead = free_port(), free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                            "-d", www], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class Stop:
        def close(self):
            web.kill()
            web.wait()
    cleanup.append(Stop())
    files = []
    for name, path in (("array", "events.json"), ("ndjson", "events.ndjson"),
                       ("dead", None)):
        url = ("http://127.0.0.1:%d/%s" % (port, path)) if path else ("http://127.0.0.1:%d/x" % dead)
        write_file(os.path.join(d, name + ".yaml"), """pipeline: %s
stages:
  - {name: in, use: http-source, with: {mode: poll, url: "%s", interval: 200ms, timeout: 2s}}
  - {name: out, use: file-sink, with: {path: %s.out}}
""" % (name, url, name))
        files.append(name + ".yaml")
    wait_for("the web server", lambda: subprocess.run(
        ["curl", "-sf", "http://127.0.0.1:%d/events.json" % port], capture_output=True).returncode == 0,
        20, 0.1)
    s = Sluice(d, "poll", files)
    cleanup.append(s)
    wait_for("3 polls of each endpoint", lambda: count_lines(os.path.join(d, "array.out")) >= 12 and
             count_lines(os.path.join(d, "ndjson.out")) >= 9, 30, 0.2)
    time.sleep(1.0)
    check(s.alive(), "sluice stopped")
    check(s.term() == 0, "sluice did not exit 0")
    got = open(os.path.join(d, "array.out")).read().split("\n")[:-1]
    check(len(got) % len(items) == 0 and got == items * (len(got) // len(items)),
          "array items not split byte-identically: %r" % got[:8])
    got = open(os.path.join(d, "ndjson.out")).read().split("\n")[:-1]
    check(got == lines * (len(got) // len(lines)), "NDJSON lines differ: %r" % got[:6])
    log = open(s.log_path).read()
    retries = [l for l in log.split("\n") if "pipeline=dead" in l and "retrying in" in l]
    check(len(retries) >= 2, "no retry log lines for the unreachable endpoint")
    check("retrying in 400 ms" in log, "no backoff growth in: %r" % retries[:3])
    check(count_lines(os.path.join(d, "dead.out")) == 0, "records from nowhere")


def t_drain(d, cleanup, exe):
    """ack: accepted answers 202 (queued in memory, not durable). A graceful stop drains the
    queue: records answered 202 that were still waiting in http-source when SIGTERM came are
    delivered before exit, and the log says how many were drained."""
    import signal
    k = MockKafka(exe, [TOPIC], partitions=4)
    cleanup.append(k)
    port = free_port()
    f = listen_pipeline(d, "drain", port, sink_extra=', rdkafka: {queue.buffering.max.messages: "100"}')
    s = Sluice(d, "drain", [f], {"KAFKA_BROKERS": k.bootstrap})
    cleanup.append(s)
    url = "http://127.0.0.1:%d/ingest" % port
    wait_for("the listener", lambda: post(url, "")[0] == 200, 30, 0.2)
    # Broker down: the sink takes ~100, the rest wait in the source's queue.
    k.cmd("down 1")
    accepted = set()
    for i in range(10):
        st, _, body = post(url, ndjson(i * 200, 200))
        check(st == 202 and "accepted" in body, "expected 202 accepted, got %d %s" % (st, body))
        accepted |= set(ndjson(i * 200, 200).split("\n")) - {""}
    time.sleep(0.5)
    s.p.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    k.cmd("up 1")
    check(s.wait(60) == 0, "sluice did not exit 0: %s" % s.tail())
    log = open(s.log_path).read()
    check("delivering" in log and "queued record(s) before exit" in log,
          "no drain of the queue logged: %s" % s.tail(10))
    check("never delivered" not in log, "records reported undelivered: %s" % s.tail(10))
    got = kafka_values(k.bootstrap)
    check(accepted <= got, "%d of %d records answered 202 are not in Kafka" % (len(accepted - got), len(accepted)))


TESTS = {"listen": t_listen, "durable": t_durable, "poll": t_poll, "drain": t_drain}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TESTS:
        print(__doc__)
        sys.exit(2)
    run(TESTS, sys.argv)
