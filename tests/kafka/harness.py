"""Helpers for the kafka and http integration tests: a mock broker driven over stdin or a real
Apache Kafka cluster (scripts/kafka.sh), sluice processes in their own process groups, and output
files read as they grow.

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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import waiting  # noqa: E402

KAFKA_SH = os.path.join(os.environ.get("SLUICE_SOURCE_DIR",
                                       os.path.join(os.path.dirname(__file__), "..", "..")),
                        "scripts", "kafka.sh")


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
    return waiting.wait_for(what, pred, timeout, every, Fail)


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


class RealKafka:
    """A throwaway Apache Kafka cluster (scripts/kafka.sh) of `brokers` KRaft nodes, plus
    `mock-kafka -B` for offset queries (same answers as MockKafka's). Stopped by close()."""

    def __init__(self, query_exe, workdir, brokers=1):
        self.dir = os.path.join(workdir, "kafka")
        self.brokers = brokers
        t0 = time.monotonic()
        self.q = None
        try:
            r = subprocess.run(["bash", KAFKA_SH, "start", "--brokers", str(brokers), "--dir",
                                self.dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=400)
        except BaseException:  # a timeout or SIGTERM while starting: stop what did start
            self.close()
            raise
        if r.returncode != 0:
            self.close()
            raise Fail("scripts/kafka.sh start failed:\n" + r.stderr[-3000:])
        self.bootstrap = r.stdout.strip().rsplit("KAFKA_BROKERS=", 1)[1].split()[0]
        print("real Kafka: %d node(s) at %s, started in %.1f s"
              % (brokers, self.bootstrap, time.monotonic() - t0), flush=True)
        self.q = subprocess.Popen([query_exe, "-B", self.bootstrap], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)

    def kafka(self, *args, timeout=240):
        r = subprocess.run(["bash", KAFKA_SH] + [str(a) for a in args] + ["--dir", self.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        check(r.returncode == 0, "kafka.sh %s failed:\n%s" % (" ".join(map(str, args)),
                                                             r.stderr[-3000:]))
        return r.stdout

    def topic(self, name, partitions, replication=None, configs=()):
        args = ["topic", name, "--partitions", partitions]
        if replication:
            args += ["--replication", replication]
        for c in configs:
            args += ["--config", c]
        self.kafka(*args)

    def down(self, *ids):
        """kill -9 the named nodes (all of them when none is named)."""
        self.kafka("kill-broker", *(ids or range(1, self.brokers + 1)))

    def up(self, *ids):
        """Restart the named nodes (all when none is named) and wait until they serve."""
        self.kafka("start-broker", *(ids or range(1, self.brokers + 1)))

    def cmd(self, line):
        self.q.stdin.write(line + "\n")
        self.q.stdin.flush()
        ans = self.q.stdout.readline().strip()
        check(ans.startswith("ok"), "mock-kafka -B %r: %r" % (line, ans))
        return ans[2:].strip()

    def _offsets(self, line):
        return {int(k): int(v) for k, v in (kv.split("=") for kv in self.cmd(line).split())}

    def end_offsets(self, topic):
        return self._offsets("end " + topic)

    def committed(self, group, topic):
        return self._offsets("committed %s %s" % (group, topic))

    def close(self):
        if self.q:
            try:
                self.q.stdin.write("quit\n")
                self.q.stdin.flush()
                self.q.wait(10)
            except Exception:
                self.q.kill()
                self.q.wait()
        if os.path.exists(os.path.join(self.dir, "cluster.env")):
            subprocess.run(["bash", KAFKA_SH, "stop", "--dir", self.dir], timeout=120,
                           stdout=subprocess.DEVNULL)


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
        waiting.signal_group(self.p.pid, signal.SIGKILL)
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


def _terminated(signum, frame):
    # meson's timeout sends SIGTERM: unwind so every `finally` stops what it started (JVMs too).
    raise Fail("terminated by signal %d" % signum)


def run_one(name, fn, *args):
    """Run fn(d, cleanup, *args) in a temp dir; stop everything in cleanup; True if it passed."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sluice-%s-" % name) as d:
        cleanup = []
        try:
            fn(d, cleanup, *args)
        except Fail as e:
            print("FAIL %s: %s" % (name, e), flush=True)
            for c in cleanup:
                if isinstance(c, Sluice):
                    print("--- %s\n%s" % (c.log_path, c.tail()))
            ok = False
        else:
            print("ok %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
            ok = True
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
    return ok


def run(tests, argv):
    """Run the named test (argv[1]) in a temp dir; exit 0/1 with a readable message."""
    signal.signal(signal.SIGTERM, _terminated)
    sys.exit(0 if run_one(argv[1], tests[argv[1]], *argv[2:]) else 1)
