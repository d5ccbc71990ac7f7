#!/bin/bash
# pg-sink and numbers a column cannot hold exactly: out of an integer column's range, more
# decimals than numeric(p,s) keeps (PostgreSQL would round), beyond numeric(p,s)'s range,
# integers beyond 2^53 (the double the host hands is not the integer sent), non-finite numbers
# (1e999 parses as infinity: it used to be stored as NaN; the host's strict JSON check may
# refuse it first — either way it is not stored), "NaN" as text into numeric, and a
# char(n) value with trailing spaces (PostgreSQL would drop them). Each goes to the dead letter
# with the reason; nothing is rounded, truncated or turned into NaN.
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

sql "CREATE TABLE nums (id text PRIMARY KEY, i2 smallint, i4 integer, i8 bigint,
     n numeric(6,2), nu numeric, r real, d double precision, c char(3), j jsonb)"
cat >in.ndjson <<'JSON'
{"id":"ok1","i2":-32768,"i4":2147483647,"i8":9007199254740991,"n":9999.99,"nu":0.1,"r":1.5,"d":1e300,"c":"USD","j":{"a":[1,2.5]}}
{"id":"ok2","i2":32767,"i4":-2147483648,"i8":-9007199254740991,"n":"-12.30","nu":"12345678901234567890.5","r":0,"d":-0.25,"c":"EU","j":null}
{"id":"i2_range","i2":32768}
{"id":"i4_range","i4":3e9}
{"id":"i4_frac","i4":1.5}
{"id":"i8_2p53","i8":9007199254740993}
{"id":"n_scale","n":12.345}
{"id":"n_scale_text","n":"1.239"}
{"id":"n_range","n":10000}
{"id":"nu_big","nu":12345678901234567890}
{"id":"nu_inf","nu":1e999}
{"id":"nu_nan_text","nu":"NaN"}
{"id":"d_inf","d":-1e999}
{"id":"r_range","r":1e39}
{"id":"j_inf","j":{"x":[1e999]}}
{"id":"c_space","c":"USD "}
JSON
cat >p.yaml <<'YAML'
pipeline: numbers-test
dead_letter: {use: file-sink, with: {path: dlq.ndjson, headers: true}}
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, topic: nums, offset_file: ""}}
  - {name: out, use: pg-sink, with: {dsn: "${PG_DSN}", store_offsets: false, tables: {nums: {conflict: id}}}}
YAML
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT string_agg(id, ',' ORDER BY id) FROM nums")" "ok1,ok2" "only the exact rows are stored"
assert_eq "$(sql "SELECT i2, i4, i8, n, nu, c FROM nums WHERE id = 'ok1'")" \
    "-32768|2147483647|9007199254740991|9999.99|0.1|USD" "limits of each type stored exactly"
assert_eq "$(sql "SELECT n, nu FROM nums WHERE id = 'ok2'")" "-12.30|12345678901234567890.5" \
    "decimal strings stored exactly"
assert_eq "$(wc -l <dlq.ndjson)" 14 "14 dead letters"
reason() { grep -a "\"$1\\\\\"" dlq.ndjson | grep -o '"sluice.error.reason":.*' ; }
assert_contains "$(reason i2_range)" "out of range for smallint" "smallint range"
assert_contains "$(reason i4_range)" "out of range for integer" "integer range (3e9)"
assert_contains "$(reason i4_frac)" "not an integer" "a fraction into integer"
assert_contains "$(reason i8_2p53)" "2^53" "bigint beyond 2^53"
assert_contains "$(reason n_scale)" "numeric(6,2) would round it" "numeric scale (number)"
assert_contains "$(reason n_scale_text)" "numeric(6,2) would round it" "numeric scale (text)"
assert_contains "$(reason n_range)" "out of range for numeric(6,2)" "numeric precision"
assert_contains "$(reason nu_big)" "2^53" "numeric integer beyond 2^53"
assert_contains "$(reason nu_inf)" "finite" "1e999 into numeric"
assert_contains "$(reason nu_nan_text)" "not a finite number" "\"NaN\" into numeric"
assert_contains "$(reason d_inf)" "finite" "-1e999 into double precision"
assert_contains "$(reason r_range)" "out of range for real" "real range"
assert_contains "$(reason j_inf)" "finite" "a non-finite number inside jsonb"
assert_contains "$(reason c_space)" "value too long for type character(3)" "char(3) with a trailing space"
assert_contains "$(reason i4_range)" "column i4 of nums" "the reason names the column"
echo "$CHECKS checks passed"
