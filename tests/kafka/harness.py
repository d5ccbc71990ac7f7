"""Helpers for the kafka and http integration tests: a mock broker driven over stdin, sluice
processes in their own process groups, and output files read as they grow.

Everything runs on loopback, every wait has a deadline, and every process started here is
stopped (SIGKILL at worst) when the test ends, pass or fail.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SLUICE = os.environ.get("SLUICE_BIN", "sluice")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, pred, timeout, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(every)


class MockKafka:
    """tests/kafka/mock-kafka: prints its bootstrap address, then takes commands."""

    def __init__(self, exe, topics, partitions=8, brokers=1):
        self.p = subprocess.Popen([exe, "-b", str(brokers), "-p", str(partitions)] + list(topics),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.partitions = partitions
        self.bootstrap = self.p.stdout.readline().strip()
        check(self.bootstrap, "mock-kafka did not start")

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        ans = self.p.stdout.readline().strip()
        check(ans.startswith("ok"), "mock-kafka %r: %r" % (line, ans))
        return ans[2:].strip()

    def _offsets(self, line):
        return {int(k): int(v) for k, v in (kv.split("=") for kv in self.cmd(line).split())}

    def end_offsets(self, topic):
        return self._offsets("end " + topic)

    def committed(self, group, topic):
        return self._offsets("committed %s %s" % (group, topic))

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(10)
        except Exception:
            self.p.kill()
            self.p.wait()


class Sluice:
    """One `sluice run` in its own process group, stderr to a log file."""

    def __init__(self, workdir, name, files, env=None, extra_args=()):
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen([SLUICE, "run"] + list(extra_args) + list(files), cwd=workdir, env=e,
                                  stdout=self.log, stderr=self.log, start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def term(self, timeout=60):
        """SIGTERM the supervisor (it relays to its pipelines) and wait; returns the exit code."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout)

    def kill(self):
        """A crash: SIGKILL the whole process group (supervisor and pipeline children)."""
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()

    def wait(self, timeout):
        return self.p.wait(timeout)

    def tail(self, n=30):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")


def read_envelopes(path):
    """file-sink `headers: true` output: complete lines only, parsed."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return [json.loads(l) for l in data[:end].split(b"\n") if l]


def count_lines(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def make_records(n, start=0):
    """n small distinct JSON events, one per line."""
    return ["{\"id\":%d,\"user\":\"u%d\",\"amount\":%d.%02d,\"type\":\"purchase\"}"
            % (i, i % 977, i % 500, i % 100) for i in range(start, start + n)]


def check_committed_not_ahead(committed, envelopes, topic):
    """Kafka's committed offset of each partition (the next to read) must not pass the first
    record missing from the output: nothing is committed before it is durable."""
    seen = {}
    for e in envelopes:
        if e.get("topic") == topic:
            seen.setdefault(e["partition"], set()).add(e["offset"])
    for p, c in committed.items():
        if c < 0:
            continue
        have = seen.get(p, set())
        contiguous = 0
        while contiguous in have:
            contiguous += 1
        check(c <= contiguous, "partition %d committed at %d but the output only has offsets "
              "0..%d without a gap: committed before durable" % (p, c, contiguous - 1))


def run(tests, argv):
    """Run the named test (argv[1]) in a temp dir; exit 0/1 with a readable message."""
    name = argv[1]
    fn = tests[name]
    with tempfile.TemporaryDirectory(prefix="sluice-%s-" % name) as d:
        cleanup = []
        try:
            fn(d, cleanup, *argv[2:])
        except Fail as e:
            print("FAIL %s: %s" % (name, e))
            for c in cleanup:
                if isinstance(c, Sluice):
                    print("--- %s\n%s" % (c.log_path, c.tail()))
            rc = 1
        else:
            print("ok %s" % name)
            rc = 0
        finally:
            for c in reversed(cleanup):
                try:
                    if isinstance(c, Sluice):
                        if c.alive():
                            c.kill()
                    else:
                        c.close()
                except Exception as e:  # keep cleaning up
                    print("cleanup: %s" % e)
    sys.exit(rc)
