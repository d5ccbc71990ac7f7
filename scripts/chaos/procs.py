"""Processes of a chaos run: sluice hosts, the generator, the Kafka cluster (mock or real).

Every process is started in its own session (process group = its pid) so that a kill reaches
the supervisor and its pipeline children together, and every one is remembered so that
stop_all() can end it by pid whatever happened."""
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "lib"))
from waiting import wait_for  # noqa: E402,F401  (run.py imports it from here)
import waiting  # noqa: E402

STARTED = []  # every Popen of the run, for stop_all()


def log(msg):
    print(msg, flush=True)


def popen(argv, logpath, env=None, cwd=None, stdin=None, stdout=None):
    f = open(logpath, "ab")
    p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                         stdout=stdout if stdout is not None else f, stderr=f, env=env, cwd=cwd,
                         start_new_session=True)
    f.close()
    STARTED.append(p)
    return p


def signal_group(p, sig):
    waiting.signal_group(p.pid, sig)


def stop_all():
    for p in reversed(STARTED):
        if p.poll() is None:
            signal_group(p, signal.SIGCONT)
            signal_group(p, signal.SIGKILL)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Host:
    """One `sluice run FILE` process (a supervisor and its pipeline child), restartable."""

    def __init__(self, name, sluice, pipeline, workdir, env):
        self.name, self.sluice, self.pipeline, self.env = name, sluice, pipeline, env
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = os.path.join(workdir, name + ".log")
        self.p = None
        self.starts = 0
        self.stopped = False  # SIGSTOPped

    def start(self):
        env = dict(self.env)
        env["SLUICE_REST_LISTEN"] = "127.0.0.1:0"
        env["SLUICE_STATE_DIR"] = os.path.join(self.dir, "state")  # each host its own (REST token ...)
        self.p = popen([self.sluice, "run", self.pipeline], self.logpath, env=env, cwd=self.dir)
        self.starts += 1
        self.stopped = False

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def kill9(self):
        if self.p:
            signal_group(self.p, signal.SIGKILL)
            self.p.wait()
        self.p = None
        self.stopped = False

    def sigstop(self):
        signal_group(self.p, signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        signal_group(self.p, signal.SIGCONT)
        self.stopped = False

    def send_term(self):
        if self.p:
            signal_group(self.p, signal.SIGCONT)
            self.p.send_signal(signal.SIGTERM)

    def term(self, timeout=90):
        """SIGTERM (unless send_term() did), wait; the exit status (None: it had to be killed)."""
        if not self.p:
            return 0
        self.send_term()
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(self.p, signal.SIGKILL)
            self.p.wait()
            rc = None
        self.p = None
        return rc

    def tail(self, n=5):
        try:
            with open(self.logpath, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


class Generator:
    def __init__(self, exe, workdir, seed, rate, config, name="gen"):
        self.rate = rate
        self.logpath = os.path.join(workdir, name + ".log")
        self.record = os.path.join(workdir, name + ".ndjson")
        self.p = popen([exe, "--listen", "127.0.0.1:0", "--seed", str(seed), "--rate", str(rate),
                        "--stopped", "--record", self.record, "--config", json.dumps(config)],
                       self.logpath, stdout=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            raise RuntimeError("sluice-gen did not start: %r %s" % (line, open(self.logpath).read()))
        self.url = m.group(1).rstrip('"')

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def stats(self):
        return self.call("GET", "/gen/stats")

    def running(self, on):
        self.call("PUT", "/gen/config", {"running": on})

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            self.p.wait(30)


class MockCluster:
    """tests/kafka/mock-kafka: librdkafka's mock cluster, `down ID` / `up ID` over stdin."""
    kind = "mock"

    def __init__(self, exe, workdir, brokers, topics, partitions):
        self.p = popen([exe, "-b", str(brokers), "-p", str(partitions)] + topics,
                       os.path.join(workdir, "mock-kafka.log"), stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE)
        self.bootstrap = self.p.stdout.readline().decode().strip()
        if not self.bootstrap:
            raise RuntimeError("mock-kafka did not start")
        self.replication, self.min_isr = 1, 1  # the mock does not replicate

    def _cmd(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        ans = self.p.stdout.readline().decode().strip()
        if not ans.startswith("ok"):
            raise RuntimeError("mock-kafka %r: %r" % (line, ans))

    def kill_broker(self, bid):
        self._cmd("down %d" % bid)

    def restart_broker(self, bid):
        self._cmd("up %d" % bid)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                signal_group(self.p, signal.SIGKILL)


class RealCluster:
    """scripts/kafka.sh: Apache Kafka (KRaft) brokers on loopback, each a JVM of its own."""
    kind = "real"

    def __init__(self, script, workdir, brokers, topics, partitions, replication, min_isr):
        self.script, self.dir = script, os.path.join(workdir, "kafka")
        self.logpath = os.path.join(workdir, "kafka.log")
        out = self._run("start", "--brokers", str(brokers), "--dir", self.dir, timeout=600)
        m = re.search(r"KAFKA_BROKERS=(\S+)", out)
        if not m:
            raise RuntimeError("kafka.sh start printed no KAFKA_BROKERS: " + out[-2000:])
        self.bootstrap = m.group(1)
        self.replication, self.min_isr = replication, min_isr
        for t in topics:
            self._run("topic", t, "--partitions", str(partitions), "--replication", str(replication),
                      "--config", "min.insync.replicas=%d" % min_isr, "--dir", self.dir, timeout=180)

    def _run(self, *args, timeout=180):
        with open(self.logpath, "ab") as f:
            r = subprocess.run(["bash", self.script] + list(args), stdout=subprocess.PIPE, stderr=f,
                               timeout=timeout)
        out = r.stdout.decode(errors="replace")
        if r.returncode != 0:
            raise RuntimeError("kafka.sh %s failed (%d): %s" % (" ".join(args), r.returncode, out[-1000:]))
        return out

    def kill_broker(self, bid):
        self._run("kill-broker", str(bid), "--dir", self.dir)

    def restart_broker(self, bid):
        self._run("start-broker", str(bid), "--dir", self.dir, timeout=300)

    def stop(self):
        try:
            self._run("stop", "--dir", self.dir, timeout=120)
        except Exception as e:  # noqa: BLE001 — the wrapper's trap stops it again
            log("kafka.sh stop: %s" % e)
