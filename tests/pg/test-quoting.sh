#!/bin/bash
# Identifiers are quoted by libpq (a table with a space, columns named select, a"b and Mixed
# Case); values are COPY data, never SQL text.
. "$(dirname "$0")/pglib.sh"

sql 'CREATE TABLE "odd tbl" ("select" text PRIMARY KEY, "a""b" integer, "Mixed Case" text)' >/dev/null
cat >in.ndjson <<'JSON'
{"sel":"x","ab":1,"mixed":"tab\there, newline\nthere, backslash \\N and \\."}
{"sel":"y'); DROP TABLE \"odd tbl\"; --","ab":2,"mixed":null}
JSON
cat >p.yaml <<'YAML'
pipeline: quoting-test
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "${PG_DSN}"
      store_offsets: false
      tables:
        "*":
          table: odd tbl
          conflict: select
          on_conflict: update
          columns: {select: sel, 'a"b': ab, Mixed Case: mixed}
YAML
run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0"
assert_eq "$(sql "SELECT \"a\"\"b\", \"Mixed Case\" = E'tab\\there, newline\\nthere, backslash \\\\N and \\\\.' FROM \"odd tbl\" WHERE \"select\" = 'x'")" \
    "1|t" "odd identifiers; tab, newline, \\N and \\. survive COPY"
assert_eq "$(sql "SELECT \"a\"\"b\", \"Mixed Case\" IS NULL FROM \"odd tbl\" WHERE \"select\" LIKE 'y%DROP TABLE%'")" \
    "2|t" "an SQL-looking value is stored as data"
echo "$CHECKS checks passed"
