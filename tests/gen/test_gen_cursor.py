#!/usr/bin/env python3
"""sluice-gen: the replay cursor, CORS for the configured origin only, strict JSON bodies, and a
huge emit that does not stall the service. Real sluice-gen over loopback HTTP.

usage: test_gen_cursor.py SLUICE_GEN TEST     (TEST: cursor, cors, strict, emit)
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL " + msg, flush=True)
    return cond


class Gen:
    def __init__(self, exe, *args, record=None):
        cmd = [exe, "--listen", "127.0.0.1:0", "--seed", "5"] + list(args)
        if record:
            cmd += ["--record", record]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if "listening on http://" not in line:
            self.p.kill()
            raise SystemExit("sluice-gen did not start: %r %s" % (line, self.p.stderr.read()))
        self.port = int(line.rsplit(":", 1)[1])

    def req(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body.encode("latin-1") if isinstance(body, str) else body
        c.request(method, path, body=data, headers=headers or {})
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, text

    def json(self, method, path, body=None, headers=None):
        st, h, text = self.req(method, path, body, headers)
        return st, h, (json.loads(text) if text else None)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def t_cursor(exe, d):
    """after=SEQ reads by cursor without consuming; the same cursor replays the same bytes; a
    cursor that fell out of the window gets 410 with the oldest seq; the record file carries
    each buffered event's cursor; plain /gen/events keeps working alongside."""
    rec = os.path.join(d, "rec.ndjson")
    g = Gen(exe, "--stopped", "--buffer", "100", record=rec)
    try:
        st, _, j = g.json("POST", "/gen/emit", '{"count":50}')
        check(st == 200 and j["queued"] == 50, "emit 50: %s %s" % (st, j))
        st, h, first = g.req("GET", "/gen/events?after=0&max=20")
        check(st == 200 and h.get("x-seq-first") == "1" and h.get("x-seq-last") == "20",
              "after=0&max=20: %s %s" % (st, h))
        check(len(json.loads(first)) == 20, "after=0&max=20 returned %d" % len(json.loads(first)))
        st, h, again = g.req("GET", "/gen/events?after=0&max=20")
        check(again == first, "the same cursor did not replay the same bytes")
        st, h, rest = g.req("GET", "/gen/events?after=20")
        check(st == 200 and h.get("x-seq-first") == "21" and len(json.loads(rest)) == 30,
              "after=20: %s %s" % (h, len(json.loads(rest))))
        st, h, empty = g.req("GET", "/gen/events?after=50")
        check(st == 200 and json.loads(empty) == [], "after=50 (newest): %s %r" % (st, empty))
        # The window is 100 events: 100 more push the first 50 out.
        g.json("POST", "/gen/emit", '{"count":100}')
        st, h, j = g.json("GET", "/gen/events?after=10")
        check(st == 410 and h.get("x-seq-oldest") == "51" and j.get("oldest") == 51,
              "fallen-out cursor: %s %s %s" % (st, h.get("x-seq-oldest"), j))
        st, h, j = g.json("GET", "/gen/events?after=100000")
        check(st == 409 and j.get("field") == "after", "cursor ahead of the newest: %s %s" % (st, j))
        st, h, win = g.req("GET", "/gen/events?after=50&format=ndjson")
        lines = [l for l in win.split("\n") if l]
        check(st == 200 and len(lines) == 100 and h.get("x-seq-first") == "51",
              "after=50: %d lines, %s" % (len(lines), h))
        st, _, stats = g.json("GET", "/gen/stats")
        check(stats["evicted"] == 50 and stats["oldest_seq"] == 51 and stats["newest_seq"] == 150 and
              stats["window"] == 100 and stats["buffered"] == 0, "stats: %s" % stats)
        # Plain polling still hands out every event once, from where it stands.
        st, _, plain = g.req("GET", "/gen/events?max=1000")
        check(st == 200 and len(json.loads(plain)) == 100, "plain poll: %d" % len(json.loads(plain)))
        st, _, plain2 = g.req("GET", "/gen/events")
        check(json.loads(plain2) == [], "plain poll repeated events")
    finally:
        g.stop()
    by_cursor = {}
    for line in open(rec):
        r = json.loads(line)
        if r["dest"] == "buffer":
            by_cursor[r["cursor"]] = json.dumps(r["event"], separators=(",", ":"))
    check(sorted(by_cursor) == list(range(1, 151)), "record cursors: %s" % sorted(by_cursor)[:5])
    for i, line in enumerate(lines):
        ev = json.dumps(json.loads(line), separators=(",", ":"))
        check(by_cursor.get(51 + i) == ev, "cursor %d: event differs from the record" % (51 + i))


def t_cors(exe, d):
    """Only the configured dashboard origin gets CORS headers; no '*'; another origin can
    neither preflight nor change anything (a form POST needs no preflight)."""
    good = "http://127.0.0.1:5999"
    g = Gen(exe, "--stopped", "--cors-origin", good)
    try:
        st, h, _ = g.req("GET", "/gen/stats", headers={"Origin": good})
        check(st == 200 and h.get("access-control-allow-origin") == good, "allowed origin: %s" % h)
        for path in ("/gen/stats", "/gen/config", "/gen/events"):
            st, h, _ = g.req("GET", path, headers={"Origin": "http://evil.example"})
            check("access-control-allow-origin" not in h, "%s: ACAO for another origin: %s" % (path, h))
        st, h, _ = g.req("GET", "/gen/stats")
        check(h.get("access-control-allow-origin") != "*", "ACAO * without an Origin")
        st, h, _ = g.req("OPTIONS", "/gen/config", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"})
        check(st == 403 and "access-control-allow-origin" not in h, "evil preflight: %s %s" % (st, h))
        st, h, _ = g.req("OPTIONS", "/gen/config", headers={
            "Origin": good, "Access-Control-Request-Method": "PUT"})
        check(st == 204 and h.get("access-control-allow-origin") == good, "good preflight: %s %s" % (st, h))
        # A cross-site form post: text/plain, no preflight. It must change nothing.
        st, _, _ = g.req("POST", "/gen/emit", '{"count":5}',
                         {"Origin": "http://evil.example", "Content-Type": "text/plain"})
        check(st == 403, "cross-origin emit: %s" % st)
        st, _, _ = g.req("PUT", "/gen/config", '{"running":true}',
                         {"Origin": "http://evil.example", "Content-Type": "text/plain"})
        check(st == 403, "cross-origin config change: %s" % st)
        st, _, stats = g.json("GET", "/gen/stats")
        check(stats["generated"] == 0 and not stats["running"], "a cross-origin call changed state: %s" % stats)
        st, _, j = g.json("POST", "/gen/emit", '{"count":2}', {"Origin": good})
        check(st == 200 and j["emitted"] == 2, "allowed origin emit: %s %s" % (st, j))
    finally:
        g.stop()


def t_strict(exe, d):
    """Request bodies go through the strict JSON check: each of these is a 400 with a reason,
    and none of them changes anything."""
    g = Gen(exe, "--stopped")
    try:
        bad = {
            '{"count":1,"count":900000}': "duplicate key",
            '{"count":5} {"count":6}': "trailing bytes",
            '{"count":1e999}': "not finite",
            '{"count\\u0000x":5}': "NUL",
            '{"echo":false,"count":3,"x":"\xc0\xaf"}': "invalid UTF-8",
            '{"count":2}\x00': "NUL byte",
        }
        for body, why in bad.items():
            st, _, j = g.json("POST", "/gen/emit", body)
            check(st == 400 and why in j.get("error", ""), "emit %r: %s %s" % (body, st, j))
        for body, why in {'{"rate":5,"rate":100000}': "duplicate key",
                          '{"running":true,"seed":1e400}': "not finite",
                          '{"mix":{"purchase":50,"purchase":50}}': "duplicate key"}.items():
            st, _, j = g.json("PUT", "/gen/config", body)
            check(st == 400 and why in j.get("error", ""), "config %r: %s %s" % (body, st, j))
        st, _, stats = g.json("GET", "/gen/stats")
        check(stats["generated"] == 0 and stats["rate"] == 100 and not stats["running"],
              "a refused body changed state: %s" % stats)
    finally:
        g.stop()
    r = subprocess.run([exe, "--config", '{"rate":1,"rate":2}'], capture_output=True, text=True, timeout=30)
    check(r.returncode == 2 and "duplicate key" in r.stderr, "--config duplicate: %s %s" % (r.returncode, r.stderr))


def t_emit(exe, d):
    """A 1,000,000-event emit is made in chunks: while it runs, other requests are answered,
    and /gen/stats sees it part-way (0 < generated < 1,000,000). Bounded by the emit itself."""
    g = Gen(exe, "--stopped", "--buffer", "1000000")
    try:
        done = {}

        def emit():
            done["r"] = g.json("POST", "/gen/emit", '{"count":1000000}')
        t = threading.Thread(target=emit)
        t.start()
        seen, answered, slowest, t0 = [], 0, 0.0, time.time()
        while t.is_alive():
            r0 = time.time()
            st, _, j = g.json("GET", "/gen/stats")
            slowest = max(slowest, time.time() - r0)
            answered += st == 200
            if t.is_alive():
                seen.append(j["generated"])
        t.join()
        print("the emit took %.2f s; the slowest /gen/stats during it took %.3f s" % (time.time() - t0, slowest))
        st, _, j = done["r"]
        check(st == 200 and j["emitted"] == 1000000, "emit: %s %s" % (st, j))
        mid = [x for x in seen if 0 < x < 1000000]
        print("stats answered %d times during the emit; part-way values: %d" % (answered, len(mid)))
        check(len(mid) >= 1, "no request was answered while the emit ran (saw %s)" % seen[:10])
    finally:
        g.stop()


TESTS = {"cursor": t_cursor, "cors": t_cors, "strict": t_strict, "emit": t_emit}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in TESTS:
        print(__doc__)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as d:
        TESTS[sys.argv[2]](sys.argv[1], d)
    print("%s: %d failure(s)" % (sys.argv[2], len(failures)))
    sys.exit(1 if failures else 0)
