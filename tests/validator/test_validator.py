#!/usr/bin/env python3
"""Table-driven validator test through the real host: one input line per row, run
file-source -> validator -> file-sink (dead letters to a file-sink with headers), then each row's
output or dead letter is found by its source offset and checked: the exact reason (and that the
dead letter is the input unchanged), or the exact normalised value and record timestamp.
Also: max_record_bytes, on_invalid: drop, and bad schema files (a configuration error naming file:line:column)."""
import json, os, subprocess, sys, tempfile

BIN, SRC = os.environ["SLUICE_BIN"], os.environ["SLUICE_SOURCE_DIR"]
failures = []

def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)

BASE_OK = '"event_id":"e1","user_id":"u1","ts":"2024-05-01T08:00:00.000Z"'
PV = '{"event_type":"page_view",' + BASE_OK
HDR = '{"event_type":"page_view","event_id":"e1","user_id":"u1","ts":'

# (input, reason or None, expected value when valid (None: unchanged), expected timestamp or None)
ECOMMERCE = [
    ('{"event_id":"e1","event_type":" Purchase ","user_id":"u1","product_id":"p1","quantity":2,"amount":19.999,'
     '"currency":" usd ","ts":"2024-05-01T10:00:00+02:00","extra":{"a":[1,2]}}', None,
     '{"event_id":"e1","event_type":"purchase","user_id":"u1","product_id":"p1","quantity":2,"amount":20,'
     '"currency":"USD","ts":"2024-05-01T08:00:00.000Z","extra":{"a":[1,2]}}', 1714550400000),
    (PV + '}', None, PV + ',"quantity":1,"currency":"USD"}', 1714550400000),
    (PV + ',"ts":"2024-05-01T08:00:00.1234567z"}', 'record: malformed JSON (byte %d: duplicate key "ts")' % (len(PV) + 1), None, None),
    (HDR + '"2024-05-01t08:00:00.1234567z"}', None,
     HDR + '"2024-05-01T08:00:00.123Z","quantity":1,"currency":"USD"}', 1714550400123),
    (HDR + '"1970-01-01T00:00:00Z","quantity":null}', None,
     HDR + '"1970-01-01T00:00:00.000Z","quantity":1,"currency":"USD"}', 0),
    # bad input kinds (an empty line is no record for file-source, so it is not here)
    ('{"event_id":', "record: malformed JSON*", None, None),
    ('{"amount":NaN}', "record: malformed JSON*", None, None),
    ('{"amount":Infinity}', "record: malformed JSON*", None, None),
    ('{} trailing', "record: malformed JSON*", None, None),
    ('[1,2]', "record: not a JSON object", None, None),
    ('42', "record: not a JSON object", None, None),
    ('"text"', "record: not a JSON object", None, None),
    ('null', "record: not a JSON object", None, None),
    (b'{"event_id":"\xff"}', "record: invalid UTF-8 at byte 13", None, None),
    (b'{"event_id":"a\xc0\xaf"}', "record: invalid UTF-8 at byte 14", None, None),      # overlong
    (b'{"event_id":"\xed\xa0\x80"}', "record: invalid UTF-8 at byte 13", None, None),   # surrogate
    (b'{"event_id":"\xf4\x90\x80\x80"}', "record: invalid UTF-8 at byte 13", None, None),  # > U+10FFFF
    (b'{"event_id":"\xe2\x82"}', "record: invalid UTF-8 at byte 13", None, None),       # truncated
    ('{"x":1e999,' + BASE_OK + ',"event_type":"page_view"}', "record: malformed JSON (byte 5: number 1e999 is not finite as a double)", None, None),
    ('{"x":[1,{"y":-1e400}]}', "record: malformed JSON (byte 13: number -1e400 is not finite as a double)", None, None),
    # required and required_when
    ('{"event_type":"page_view","user_id":"u1","ts":"2024-05-01T08:00:00Z"}', "event_id: required", None, None),
    ('{"event_type":"page_view","event_id":"e1","ts":"2024-05-01T08:00:00Z"}', "user_id: required", None, None),
    ('{"event_type":"page_view","event_id":"e1","user_id":"u1"}', "ts: required", None, None),
    (HDR + 'null}', "ts: required", None, None),
    ('{' + BASE_OK + '}', "event_type: required", None, None),
    ('{"event_type":"add_to_cart",' + BASE_OK + '}', "product_id: required when event_type=add_to_cart", None, None),
    ('{"event_type":"purchase","product_id":"p",' + BASE_OK + '}', "amount: required when event_type=purchase", None, None),
    ('{"event_type":" REFUND","product_id":"p",' + BASE_OK + '}', "amount: required when event_type=refund", None, None),
    # types
    ('{"event_type":"page_view","event_id":5,"user_id":"u1","ts":"2024-05-01T08:00:00Z"}', "event_id: expected string", None, None),
    (PV + ',"quantity":"2"}', "quantity: expected integer", None, None),
    (PV + ',"quantity":1.5}', "quantity: expected integer", None, None),
    (PV + ',"amount":"12.00"}', "amount: expected number", None, None),
    (PV + ',"amount":true}', "amount: expected number", None, None),
    (PV + ',"amount":1e999}', "record: malformed JSON (byte %d: number 1e999 is not finite as a double)" % (len(PV) + 10), None, None),
    (PV + ',"amount":-1e999}', "record: malformed JSON (byte %d: number -1e999 is not finite as a double)" % (len(PV) + 10), None, None),
    (PV + ',"session_id":{}}', "session_id: expected string", None, None),
    # bounds, lengths, enum, pattern
    (PV + ',"quantity":0}', "quantity: below min 1", None, None),
    (PV + ',"amount":-0.01}', "amount: below min 0", None, None),
    ('{"event_type":"page_view","event_id":"","user_id":"u1","ts":"2024-05-01T08:00:00Z"}',
     "event_id: shorter than min_length 1", None, None),
    ('{"event_type":"page_view","event_id":"' + "0123456789" * 6 + '0123x","user_id":"u1","ts":"2024-05-01T08:00:00Z"}',
     "event_id: longer than max_length 64", None, None),
    ('{"event_type":"checkout",' + BASE_OK + '}',
     "event_type: not one of page_view, add_to_cart, purchase, payment_failed, refund", None, None),
    (PV + ',"currency":"EURO"}', "currency: does not match pattern ^[A-Z]{3}$", None, None),
    (PV + ',"currency":"U5D"}', "currency: does not match pattern ^[A-Z]{3}$", None, None),
    # timestamps
    (HDR + '"2024-05-01T08:00:00"}', "ts: timestamp without time zone", None, None),
    (HDR + '"1969-12-31T23:59:59.999Z"}', "ts: timestamp before 1970", None, None),
    (HDR + '"1970-01-01T00:30:00+01:00"}', "ts: timestamp before 1970", None, None),
    (HDR + '"10000-01-01T00:00:00Z"}', "ts: timestamp after 9999", None, None),
    (HDR + '"9999-12-31T23:00:00-05:00"}', "ts: timestamp after 9999", None, None),
    (HDR + '"2023-02-29T00:00:00Z"}', "ts: not an RFC 3339 timestamp", None, None),
    (HDR + '"yesterday"}', "ts: not an RFC 3339 timestamp", None, None),
    (HDR + '1714550400000}', "ts: expected timestamp string", None, None),
]

RULES = [
    ('{}', None, '{"opt":true}', None),
    ('{"flag":true,"name":"h\u00e9","code":"abc-12","n":-3,"score":10}', None,
     '{"flag":true,"name":"H\u00e9","code":"abc-12","n":-3,"score":10,"opt":true}', None),
    ('{"opt":false}', None, None, None),
    ('{"flag":"yes"}', "flag: expected boolean", None, None),
    ('{"score":10.5}', "score: above max 10", None, None),
    ('{"n":6}', "n: above max 5", None, None),
    ('{"n":1e300}', "n: expected integer", None, None),
    ('{"name":"h\u00e9ll"}', "name: longer than max_length 3", None, None),
    ('{"code":"abc"}', "code: does not match pattern ^[a-z]+-[0-9]+$", None, None),
    ('{"code":"abc-1","opt":true}', None, None, None),
    ('{"code":"abc-1 ","opt":true}', "code: does not match pattern ^[a-z]+-[0-9]+$", None, None),
    ('{"at":"2024-01-01T00:00:00.5+00:00","opt":true}', None, None, 1704067200500),
]

def raw(s):
    return s if isinstance(s, bytes) else s.encode()

def text(b):
    return b.decode("utf-8", "surrogateescape")

def run(d, schema, lines, extra=""):
    """Runs the pipeline over `lines`; returns (exit code, stderr, offsets, outputs, dead letters),
    outputs and dead letters as {source offset: envelope}."""
    with open(os.path.join(d, "in.ndjson"), "wb") as f:
        offsets, pos = [], 0
        for l in lines:
            f.write(raw(l) + b"\n")
            pos += len(raw(l)) + 1
            offsets.append(pos)
    with open(os.path.join(d, "p.yaml"), "w") as f:
        f.write(f"""pipeline: validator-test
batch_size: 7
dead_letter: {{use: file-sink, with: {{path: dlq.ndjson, headers: true, mode: truncate, fsync: false}}}}
stages:
  - {{name: in, use: file-source, with: {{path: in.ndjson, offset_file: ""}}}}
  - {{name: v, use: validator, with: {{schema: "{schema}"{extra}}}}}
  - {{name: out, use: file-sink, with: {{path: out.ndjson, headers: true, mode: truncate, fsync: false}}}}
""")
    for _out in ("out.ndjson", "dlq.ndjson"):  # mode truncate empties only at a first start
        if os.path.exists(os.path.join(d, _out)):
            os.remove(os.path.join(d, _out))
    r = subprocess.run([BIN, "run", "p.yaml"], cwd=d, capture_output=True, timeout=60)
    def read(name):
        p = os.path.join(d, name)
        if not os.path.exists(p):
            return {}
        return {e["offset"]: e for e in (json.loads(text(l)) for l in open(p, "rb") if l.strip())}
    return r.returncode, text(r.stderr), offsets, read("out.ndjson"), read("dlq.ndjson")

def run_table(d, name, schema, rows):
    rc, err, offsets, out, dlq = run(d, schema, [r[0] for r in rows])
    check(rc == 0, f"{name}: sluice exited {rc}: {err[-2000:]}")
    check(len(out) + len(dlq) == len(rows), f"{name}: {len(out)} out + {len(dlq)} dead letters for {len(rows)} rows")
    for i, (inp, reason, want, ts) in enumerate(rows):
        off, src = offsets[i], text(raw(inp))
        if reason:
            d_ = dlq.get(off)
            check(d_ is not None and off not in out, f"{name} row {i} ({src}): expected a dead letter")
            if d_:
                got = d_["headers"].get("sluice.error.reason", "")
                ok = got.startswith(reason[:-1]) if reason.endswith("*") else got == reason
                check(ok, f"{name} row {i}: reason {got!r}, want {reason!r}")
                check(d_["headers"].get("sluice.error.stage") == "v", f"{name} row {i}: stage header")
                check(d_["value"] == src, f"{name} row {i}: dead letter changed: {d_['value']!r}")
        else:
            o = out.get(off)
            check(o is not None and off not in dlq,
                  f"{name} row {i} ({src}): expected valid, got {dlq.get(off, {}).get('headers')}")
            if o:
                check(o["value"] == (want or src), f"{name} row {i}: value\n  got  {o['value']}\n  want {want or src}")
                if ts is not None:
                    check(o["timestamp"] == ts, f"{name} row {i}: timestamp {o['timestamp']}, want {ts}")
    return rc

def main():
    pipelines = os.path.join(SRC, "pipelines")
    rules = os.path.join(SRC, "tests", "validator", "rules.schema.yaml")
    with tempfile.TemporaryDirectory() as d:
        run_table(d, "ecommerce", os.path.join(pipelines, "ecommerce-event.schema.yaml"), ECOMMERCE)
        run_table(d, "rules", rules, RULES)

        # max_record_bytes: the exact reason; on_invalid: drop sends nothing anywhere.
        big = "{" + " " * 1023 + "}"
        rc, err, offs, out, dlq = run(d, rules, [big, '{"n":7}'], ", max_record_bytes: 1KiB")
        check(rc == 0 and not out and len(dlq) == 2, f"size: out={len(out)} dlq={len(dlq)}")
        check(dlq.get(offs[0], {}).get("headers", {}).get("sluice.error.reason") ==
              "record: 1025 bytes exceeds max_record_bytes 1024", f"size reason: {dlq.get(offs[0])}")
        rc, err, offs, out, dlq = run(d, rules, [big, '{"n":7}', '{"n":1}'],
                                      ", max_record_bytes: 1KiB, on_invalid: drop")
        check(rc == 0 and list(out) == [offs[2]] and not dlq, f"drop mode: out={list(out)} dlq={len(dlq)}")

        # Bad schema files: a configuration error (exit 2) that says where.
        bad = [("fields:\n  a: {type: strin}\n", ":2:"),
               ("fields:\n  a: {type: string, frobnicate: 1}\n", ":2:"),
               ("fields:\n  a: {type: integer, pattern: \"x\"}\n", ":2:"),
               ("fields:\n  a: {type: string, pattern: \"([\"}\n", ":2:"),
               ("fields:\n  a: {type: string, required_when: {b: [x]}}\n", ":2:"),
               ("fields:\n  a: {type: integer, default: abc}\n", ":2:"),
               ("fields:\n  a: {type: boolean, default: maybe}\n", ":2:"),
               ("fields:\n  a: {required: true}\n", ":2:"),
               ("fieldz: {}\n", ":1:"),
               ("fields: [\n", ":"),
               (None, "cannot open")]
        for i, (text_, where) in enumerate(bad):
            path = os.path.join(d, "bad.schema.yaml") if text_ is not None else "/nonexistent/schema.yaml"
            if text_ is not None:
                open(path, "w").write(text_)
            rc, err, *_ = run(d, path, ['{}'])
            # Refused before start by the validator's check (`stage 'v' (validator): schema: ...`
            # after the pipeline file's position), or, failing that, by its init ("configuration
            # error"); either way the pipeline never runs.
            check(rc != 0 and ("configuration error" in err or "(validator): schema: " in err),
                  f"bad schema {i}: exit {rc}: {err[-300:]}")
            check("schema: " in err and where in err, f"bad schema {i}: error does not say where: {err[-500:]}")
    print(f"validator: {len(ECOMMERCE) + len(RULES)} rows, {len(failures)} failures")
    sys.exit(1 if failures else 0)

main()
