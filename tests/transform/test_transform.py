#!/usr/bin/env python3
"""The transform stage through the real host: for each case a pipeline file-source -> transform ->
file-sink (dead letters to a file-sink with headers) runs over a few input lines; every line's
output (value, key, topic, timestamp) or dead letter (exact reason, value = the input unchanged)
or drop is checked by its source offset. Then configurations that must be refused at load time
(exit 2) with a message naming the operation and, for expressions, line:column in the text."""
import json, os, subprocess, sys, tempfile

BIN = os.environ["SLUICE_BIN"]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)


def run(d, ops, lines):
    with open(os.path.join(d, "in.ndjson"), "w") as f:
        offsets, pos = [], 0
        for l in lines:
            f.write(l + "\n")
            pos += len(l.encode()) + 1
            offsets.append(pos)
    with open(os.path.join(d, "p.yaml"), "w") as f:
        f.write("""pipeline: transform-test
batch_size: 5
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: "", topic: events}}
  - name: tf
    use: transform
    with:
      ops:
""" + "".join("        " + l + "\n" for l in ops.strip("\n").split("\n")) + """
  - {name: out, use: file-sink, with: {path: out.ndjson, headers: true, mode: truncate, fsync: false}}
""")
    for o in ("out.ndjson", "dlq.ndjson"):
        if os.path.exists(os.path.join(d, o)):
            os.remove(os.path.join(d, o))
    r = subprocess.run([BIN, "run", "p.yaml"], cwd=d, capture_output=True, timeout=60)

    def read(name):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            return {}
        return {e["offset"]: e for e in (json.loads(l) for l in open(p) if l.strip())}
    return r.returncode, r.stderr.decode(), offsets, read("out.ndjson"), read("dlq.ndjson")


# Each case: (name, ops YAML, [(input line, expectation)]). An expectation is
#   {"value": {...}, "key": ..., "topic": ..., "ts": ...}  forwarded (absent keys are not checked)
#   {"dlq": "exact reason"}                                dead-lettered, value unchanged
#   {"dropped": True}                                       neither forwarded nor dead-lettered
CASES = [
    ("set", """
- set: {field: total, expr: "price * qty"}
- set: {field: src, value: web}
- set: {field: n, value: 7}
- set: {field: flag, value: true}
- set: {field: gone, value: null}
- set: {field: copy, expr: "meta"}
- set: {field: ratio, expr: "coalesce(price / qty, 0)"}
- set: {field: maybe, expr: "nosuch"}
""", [
        ('{"price":2.5,"qty":4,"meta":{"a":[1]}}',
         {"value": {"price": 2.5, "qty": 4, "meta": {"a": [1]}, "total": 10, "src": "web", "n": 7, "flag": True,
                    "gone": None, "copy": {"a": [1]}, "ratio": 0.625}}),
        ('{"price":1,"qty":0,"src":"app"}',
         {"value": {"price": 1, "qty": 0, "src": "web", "total": 0, "n": 7, "flag": True, "gone": None, "ratio": 0}}),
    ]),
    ("set required", """
- set: {field: x, expr: "a.b", required: true}
""", [
        ('{"a":{"b":"v"}}', {"value": {"a": {"b": "v"}, "x": "v"}}),
        ('{"a":1}', {"dlq": "ops[0] set: \"a.b\" gave no value (a field it reads is missing)"}),
    ]),
    ("rename drop keep", """
- rename: {from: uid, to: user_id}
- rename: {from: opt, to: option, required: false}
- drop: [debug, nosuch]
- keep: [user_id, amount, option]
""", [
        ('{"uid":"u1","amount":3,"debug":true,"x":1}', {"value": {"amount": 3, "user_id": "u1"}}),
        ('{"uid":{"deep":1},"opt":5,"y":2}', {"value": {"user_id": {"deep": 1}, "option": 5}}),
        ('{"amount":1}', {"dlq": "ops[0] rename: field 'uid' is missing"}),
    ]),
    ("cast", """
- cast: {field: n, to: int}
- cast: {field: f, to: float, required: false}
- cast: {field: s, to: string, required: false}
- cast: {field: b, to: bool, required: false}
""", [
        ('{"n":"42","f":"2.5","s":12.5,"b":"yes"}', {"value": {"n": 42, "f": 2.5, "s": "12.5", "b": True}}),
        ('{"n":-7.9,"f":3,"s":true,"b":0}', {"value": {"n": -7, "f": 3, "s": "true", "b": False}}),
        ('{"n":null,"s":"x","b":false}', {"value": {"n": None, "s": "x", "b": False}}),
        ('{"n":"4x"}', {"dlq": "ops[0] cast: field 'n': \"4x\" is not a number"}),
        ('{"n":""}', {"dlq": "ops[0] cast: field 'n': \"\" is not a number"}),
        ('{"f":1}', {"dlq": "ops[0] cast: field 'n' is missing"}),
        ('{"n":[1]}', {"dlq": "ops[0] cast: field 'n' is an array, not a scalar"}),
        ('{"n":1,"f":"1e999"}', {"dlq": "ops[1] cast: field 'f': \"1e999\" is not a number"}),
        ('{"n":1,"b":"maybe"}', {"dlq": "ops[3] cast: field 'b': \"maybe\" is not a boolean (true/false, 1/0, yes/no)"}),
        ('{"n":1e300}', {"dlq": "ops[0] cast: field 'n': 1e+300 is beyond the integers a JSON number holds exactly"}),
    ]),
    ("cast timestamp", """
- cast: {field: t, to: timestamp}
- cast: {field: d, to: timestamp, format: "%Y-%m-%d %H:%M:%S", required: false}
- cast: {field: s, to: timestamp, format: unix_s, required: false}
""", [
        ('{"t":"2024-05-01T10:00:00+02:00","d":"2024-05-01 08:00:01","s":1714550402}',
         {"value": {"t": 1714550400000, "d": 1714550401000, "s": 1714550402000}}),
        ('{"t":1714550400123}', {"value": {"t": 1714550400123}}),
        ('{"t":"2024-05-01T08:00:00"}',
         {"dlq": "ops[0] cast: field 't': \"2024-05-01T08:00:00\" is not an RFC 3339 timestamp: no time zone (Z or +hh:mm)"}),
        ('{"t":"yesterday"}', {"dlq": "ops[0] cast: field 't': \"yesterday\" is not an RFC 3339 timestamp"}),
        ('{"t":0,"d":"2024-05-01"}', {"dlq": "ops[1] cast: field 'd': \"2024-05-01\" does not match the format"}),
        ('{"t":0,"d":5}', {"dlq": "ops[1] cast: field 'd' is a number, but the format reads strings"}),
        ('{"t":-5}', {"dlq": "ops[0] cast: field 't' is outside 1970..9999"}),
    ]),
    ("timestamp", """
- timestamp: {field: meta.at}
""", [
        ('{"meta":{"at":"2024-05-01T08:00:00.250Z"}}', {"value": {"meta": {"at": "2024-05-01T08:00:00.250Z"}},
                                                         "ts": 1714550400250}),
        ('{"meta":{"at":1714550400999}}', {"ts": 1714550400999}),
        ('{"meta":{}}', {"dlq": "ops[0] timestamp: field 'meta.at' is missing"}),
        ('{"meta":{"at":true}}', {"dlq": "ops[0] timestamp: field 'meta.at' is not a string or a number"}),
        ('{"meta":{"at":"2024-13-01T00:00:00Z"}}',
         {"dlq": "ops[0] timestamp: field 'meta.at': \"2024-13-01T00:00:00Z\" is not an RFC 3339 timestamp"}),
    ]),
    ("timestamp unix_s optional", """
- timestamp: {field: t, format: unix_s, required: false}
""", [
        ('{"t":"1714550400.5"}', {"ts": 1714550400500}),
        ('{"x":1}', {"value": {"x": 1}}),
    ]),
    ("key", """
- key: {fields: [user.id, n, ok], separator: ":"}
""", [
        ('{"user":{"id":"u9"},"n":3,"ok":true}', {"key": "u9:3:true"}),
        ('{"user":{"id":"u9"},"n":2.5,"ok":null}', {"key": "u9:2.5:null"}),
        ('{"user":{},"n":1,"ok":true}', {"dlq": "ops[0] key: field 'user.id' is missing"}),
        ('{"user":{"id":[1]},"n":1,"ok":true}', {"dlq": "ops[0] key: field 'user.id' is an array or object"}),
    ]),
    ("key with a number as separator", """
- key: {fields: [a, b], separator: 0}
""", [
        ('{"a":"x","b":"y"}', {"key": "x0y"}),
    ]),
    ("key shorthand", """
- key: order_id
""", [
        ('{"order_id":"o-1"}', {"key": "o-1"}),
    ]),
    ("topic", """
- topic: {expr: "event_type", prefix: "ev-"}
""", [
        ('{"event_type":"order"}', {"topic": "ev-order"}),
        ('{"event_type":7}', {"topic": "ev-7"}),
        ('{"x":1}', {"dlq": "ops[0] topic: \"event_type\" gave missing, not a topic name"}),
        ('{"event_type":"a b"}',
         {"dlq": "ops[0] topic: \"ev-a b\" is not a valid topic name (1..249 of letters, digits, '.', '_', '-')"}),
    ]),
    ("topic optional", """
- topic: {expr: "if(amount > 100, 'big', region)", required: false}
""", [
        ('{"amount":500}', {"topic": "big"}),
        ('{"amount":5,"region":"eu"}', {"topic": "eu"}),
        ('{"amount":5}', {"topic": "events"}),
    ]),
    ("filter drop", """
- filter: "event_type in ['order', 'refund'] and amount > 0"
""", [
        ('{"event_type":"order","amount":5}', {"value": {"event_type": "order", "amount": 5}}),
        ('{"event_type":"view","amount":5}', {"dropped": True}),
        ('{"event_type":"order"}', {"dropped": True}),
    ]),
    ("filter dead letter", """
- set: {field: seen, value: true}
- filter: {where: "starts_with(url, 'https://')", else: dead_letter}
""", [
        ('{"url":"https://x"}', {"value": {"url": "https://x", "seen": True}}),
        ('{"url":"http://x"}', {"dlq": "ops[1] filter: condition is not true: starts_with(url, 'https://')"}),
    ]),
    ("mask", """
- mask: {fields: [email, card], with: redact}
- mask: {fields: [user, n], with: hash, salt: s1}
""", [
        ('{"email":"a@b","card":1234,"user":"bob","n":5,"keep":"x"}',
         {"value": {"email": "***", "card": "***", "keep": "x",
                    "user": None, "n": None}, "hash": {"user": "s1bob", "n": "s15"}}),
        ('{"email":null,"user":{"a":1}}', {"dlq": "ops[1] mask: field 'user' is an array or object: only scalars can be hashed"}),
    ]),
    ("flatten", """
- flatten
""", [
        ('{"a":{"b":1,"c":{"d":"x","e":[1,2]}},"f":2,"g":{}}',
         {"value": {"f": 2, "g": {}, "a.b": 1, "a.c.d": "x", "a.c.e": [1, 2]}}),
        ('{"a":{"b":1},"a.b":0}', {"dlq": "ops[0] flatten: 'a.b' already exists: flattening would overwrite it"}),
    ]),
    ("flatten some", """
- flatten: {separator: _, fields: [geo]}
""", [
        ('{"geo":{"lat":1,"lon":2},"other":{"k":1}}', {"value": {"other": {"k": 1}, "geo_lat": 1, "geo_lon": 2}}),
    ]),
    ("not an object", """
- drop: x
""", [
        ('[1,2]', {"dlq": "value is not a JSON object"}),
        ('{"x":1', {"dlq": "value is not JSON: byte 6: unexpected end of input, expected ',' or '}'"}),
    ]),
]


def sha(s):
    import hashlib
    return hashlib.sha256(s.encode()).hexdigest()


def run_cases(d):
    for name, ops, rows in CASES:
        rc, err, offs, out, dlq = run(d, ops, [r[0] for r in rows])
        check(rc == 0, f"{name}: sluice exited {rc}: {err[-1500:]}")
        for i, (inp, want) in enumerate(rows):
            off = offs[i]
            where = f"{name} row {i} ({inp})"
            if "dlq" in want:
                e = dlq.get(off)
                check(e is not None, f"{where}: expected a dead letter, got {out.get(off)}")
                if e:
                    check(e["headers"].get("sluice.error.reason") == want["dlq"],
                          f"{where}: reason {e['headers'].get('sluice.error.reason')!r}, want {want['dlq']!r}")
                    check(e["headers"].get("sluice.error.stage") == "tf", f"{where}: stage header")
                    check(e["value"] == inp, f"{where}: dead letter value {e['value']!r} is not the input")
                    check(e.get("topic") == "events" and "key" not in e, f"{where}: dead letter key/topic changed")
                continue
            if want.get("dropped"):
                check(off not in out and off not in dlq, f"{where}: expected dropped")
                continue
            e = out.get(off)
            check(e is not None, f"{where}: expected output, got dead letter {dlq.get(off, {}).get('headers')}")
            if not e:
                continue
            v = json.loads(e["value"])
            if "hash" in want:
                for k, pre in want["hash"].items():
                    check(v.get(k) == sha(pre), f"{where}: {k} = {v.get(k)}, want sha256({pre!r})")
                    v[k] = None
            if "value" in want:
                check(v == want["value"], f"{where}: value {v}, want {want['value']}")
            if "key" in want:
                check(e.get("key") == want["key"], f"{where}: key {e.get('key')!r}, want {want['key']!r}")
            if "topic" in want:
                check(e.get("topic") == want["topic"], f"{where}: topic {e.get('topic')!r}, want {want['topic']!r}")
            if "ts" in want:
                check(e.get("timestamp") == want["ts"], f"{where}: timestamp {e.get('timestamp')}, want {want['ts']}")


# Refused at load: (ops YAML, substring of the error). The message names ops[i] and the op.
BAD = [
    ("- nosuch: {}", "ops[0]: unknown operation 'nosuch'"),
    ("- {set: {field: a, value: 1}, drop: b}", "ops[0]: an operation is a map with one key"),
    ("- 5", "ops[0]: an operation is a map with one key"),
    ("- drop", "ops[0] drop: needs parameters"),
    ("- set: {field: a}", "ops[0] set: give exactly one of 'value'"),
    ("- set: {field: a, value: 1, expr: b}", "ops[0] set: give exactly one of 'value'"),
    ("- set: {value: 1}", "ops[0] set: 'field' is required"),
    ("- set: {field: a, value: [1]}", "ops[0] set: 'value' must be a string, number, boolean or null, not a list"),
    ("- set: {field: a, expr: \"1 +\"}", "ops[0] set: expr: 1:4: expected a value, found the end of the expression"),
    ("- drop: x\n- set: {field: a, expr: \"b == 'x' and c +\"}", "ops[1] set: expr: 1:17: expected a value"),
    ("- rename: {from: a}", "ops[0] rename: 'to' is required"),
    ("- rename: {from: a, to: b, too: c}", "ops[0] rename: unknown key 'too' (rename takes: from|to|required)"),
    ("- keep: []", "ops[0] keep: fields: the list is empty"),
    ("- drop: [a, 1]", "ops[0] drop: fields: every item must be a field name, not a number"),
    ("- cast: {field: a, to: decimal}", "ops[0] cast: 'to' must be one of string, int, float, bool, timestamp"),
    ("- cast: {field: a, to: int, format: unix_s}", "ops[0] cast: 'format' applies only to 'to: timestamp'"),
    ("- cast: {field: a, to: int, required: maybe}", "ops[0] cast: 'required' must be true or false, not a string"),
    ("- timestamp: {field: a, format: weird}", "ops[0] timestamp: format 'weird' is not auto, rfc3339"),
    ("- timestamp: \"a + 1\"", "ops[0] timestamp: field: 'a + 1' is not a field reference"),
    ("- key: {fields: [a, \"b +\"]}", "ops[0] key: fields: 1:4:"),
    ("- topic: {expr: \"a > 1\"}", "ops[0] topic: expr: gives a bool, not a topic name"),
    ("- topic: {expr: a, prefix: \"a b\"}", "ops[0] topic: 'prefix' may hold only letters, digits, '.', '_', '-'"),
    ("- topic: {expr: a, suffix: \"/x\"}", "ops[0] topic: 'suffix' may hold only letters, digits, '.', '_', '-'"),
    ("- filter: \"amount * 2\"", "ops[0] filter: where: 1:1: a bool is expected here, but the expression gives a number"),
    ("- filter: \"a == 1 and\\n  b ==\"", "ops[0] filter: where: 2:7: expected a value, found the end"),
    ("- filter: {where: \"a\", else: keep}", "ops[0] filter: 'else' must be drop or dead_letter, not 'keep'"),
    ("- filter: \"'x' > 1\"", "ops[0] filter: where: 1:5: '>' compares a string with a number"),
    ("- mask: {fields: a, with: blur}", "ops[0] mask: 'with' must be redact or hash, not 'blur'"),
    ("- mask: {fields: a, with: hash, replacement: x}", "ops[0] mask: 'replacement' applies only to 'with: redact'"),
    ("- flatten: [a]", "ops[0] flatten: takes nothing or a map"),
]


def run_bad(d):
    for ops, msg in BAD:
        rc, err, *_ = run(d, ops, ['{"a":1}'])
        check(rc == 2, f"config {ops!r}: exit {rc}, want 2")
        check(msg in err, f"config {ops!r}: {msg!r} not in: {err[-600:]}")
    # ops missing and empty
    for ops_yaml, msg in (("[]", "'ops' must be a non-empty list"), ("{a: 1}", "'ops' must be a non-empty list")):
        with open(os.path.join(d, "p2.yaml"), "w") as f:
            f.write("pipeline: t2\nstages:\n  - {use: file-source, with: {path: in.ndjson, offset_file: \"\"}}\n"
                    f"  - {{use: transform, with: {{ops: {ops_yaml}}}}}\n  - {{use: file-sink, with: {{path: o}}}}\n")
        r = subprocess.run([BIN, "run", "p2.yaml"], cwd=d, capture_output=True, timeout=60)
        check(r.returncode == 2 and msg in r.stderr.decode(), f"ops {ops_yaml}: {r.returncode} {r.stderr.decode()[-400:]}")


def main():
    with tempfile.TemporaryDirectory() as d:
        run_cases(d)
        run_bad(d)
    print(f"{len(CASES)} cases, {len(BAD)} bad configurations, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
