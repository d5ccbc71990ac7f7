#!/bin/bash
# pg-sink create_tables: a column `type` is spliced into CREATE TABLE, so it must follow a strict
# grammar (a known type name, optional (n[,n]), time zone and []). A crafted type used to run
# its own statement (an extra table appeared); now the pipeline refuses to start, naming it.
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

echo '{"id":1}' >in.ndjson
pipeline() {
    cat <<YAML
pipeline: inject-test
stages:
  - {name: in, use: file-source, with: {path: in.ndjson, topic: t, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      create_tables: true
      store_offsets: false
      tables:
        t:
          table: injected
          columns:
            id: {type: integer}
            x: {type: '$1'}
YAML
}
for evil in 'text); CREATE TABLE pwned (a int); --' \
            'text DEFAULT (pg_sleep(0))' \
            'int[]); DROP TABLE events_clean; --' \
            'numeric(12,2) CHECK (true)' \
            'text COLLATE "C"' \
            'text /* comment */'; do
    pipeline "$evil" >p.yaml
    run_sluice p.yaml
    rc=$?
    [ "$rc" -ne 0 ] || fail "type '$evil': sluice should refuse to start (exit $rc)"
    ok "type '$evil': refused (exit $rc)"
    assert_contains "$(cat "$T/log")" "tables.t: columns: \`type\` must be a known SQL type" "the error names the entry"
done
assert_eq "$(sql "SELECT count(*) FROM pg_tables WHERE tablename IN ('pwned', 'injected')")" 0 "no table was created"
assert_eq "$(sql "SELECT to_regclass('events_clean') IS NOT NULL")" t "events_clean still there"
for good in 'numeric(12,2)' 'timestamp(3) with time zone' 'character varying(64)' 'text[]' \
            'DOUBLE  PRECISION' 'int4[][]' 'bigint'; do
    pipeline "$good" >p.yaml
    run_sluice p.yaml
    assert_eq "$?" 0 "type '$good' accepted"
    sql "DROP TABLE injected"
done
echo "$CHECKS checks passed"
