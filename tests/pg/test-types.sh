#!/bin/bash
# pg-sink type mapping (text, integer, numeric, timestamptz, boolean, jsonb) and the record
# attributes, into a table made by create_tables.
. "$(dirname "$0")/pglib.sh"

cat >in.ndjson <<'JSON'
{"id":1,"t":"héllo \"q\" \\ back","i":-42,"n":12.345,"ts":"2024-05-01T12:00:00.123+02:00","b":true,"j":{"a":[1,2.5,"x",null,true],"b":{"c":"d\n"}},"js":"just text"}
{"id":2,"t":"","i":9007199254740991,"n":0.1,"ts":"2024-05-01 00:00:00Z","b":false,"j":[],"js":12.25}
{"id":3}
JSON
cat >p.yaml <<'YAML'
pipeline: types-test
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, topic: typed, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "${PG_DSN}"
      create_tables: true
      tables:
        typed:
          table: typed_rows
          conflict: id
          columns:
            id: {type: integer}
            t: {type: text}
            i: {type: bigint}
            n: {type: "numeric(10,3)"}
            ts: {type: timestamptz}
            b: {type: boolean}
            j: {type: jsonb}
            js: {type: jsonb}
            whole: {from: $value, type: jsonb}
            src_topic: {from: $topic, type: text}
            part: {from: $partition, type: integer}
            pos: {from: $offset, type: bigint}
            at: {from: $timestamp, type: timestamptz}
            at_ms: {from: $timestamp, type: bigint}
            k: {from: $key, type: text}
YAML
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
r() { sql "SELECT $1 FROM typed_rows WHERE id = $2"; }
assert_eq "$(r t 1)" 'héllo "q" \ back' "text with quotes, backslash and UTF-8"
assert_eq "$(r "t = ''" 2)" t "empty text stays empty (not NULL)"
assert_eq "$(r "i, pg_typeof(i)" 1)" "-42|bigint" "integer"
assert_eq "$(r i 2)" 9007199254740991 "integer up to 2^53 - 1 exactly"
assert_eq "$(r "n, n + 0.001" 1)" "12.345|12.346" "numeric, exact decimal"
assert_eq "$(r n 2)" 0.100 "numeric 0.1 (no binary noise)"
assert_eq "$(r "ts = '2024-05-01 10:00:00.123+00'" 1)" t "timestamptz with offset and ms"
assert_eq "$(r "b, pg_typeof(b)" 1)" "t|boolean" "boolean true"
assert_eq "$(r b 2)" f "boolean false"
assert_eq "$(r "j -> 'a' ->> 1, j #>> '{b,c}' = E'd\\n'" 1)" "2.5|t" "jsonb object, nested, escapes kept"
assert_eq "$(r "j = '[]'::jsonb" 2)" t "jsonb empty array"
assert_eq "$(r "js = '\"just text\"'::jsonb" 1)" t "a JSON string into jsonb stays a JSON string"
assert_eq "$(r "js = '12.25'::jsonb" 2)" t "a JSON number into jsonb"
assert_eq "$(r "whole ->> 't'" 1)" 'héllo "q" \ back' "\$value: the whole record as jsonb"
assert_eq "$(r "src_topic, part, pos" 1)" "typed|0|$(head -1 in.ndjson | wc -c)" "\$topic, \$partition, \$offset"
assert_eq "$(r "abs(extract(epoch FROM at) * 1000 - at_ms) < 1, at > now() - interval '1 hour'" 1)" \
    "t|t" "\$timestamp as timestamptz and as epoch ms agree"
assert_eq "$(r "k IS NULL" 1)" t "\$key absent -> NULL"
assert_eq "$(r "t IS NULL AND i IS NULL AND n IS NULL AND b IS NULL AND j IS NULL" 3)" t "missing fields -> NULL"
echo "$CHECKS checks passed"
