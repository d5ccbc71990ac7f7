#!/bin/bash
# Dashboard queries run off the supervisor's thread: while a slow query (pg_sleep) is running,
# the REST API answers at once; the query's own answer arrives afterwards. PostgreSQL 15 is a
# throwaway cluster.
. "$SLUICE_SOURCE_DIR/tests/security/seclib.sh"
. "$SLUICE_SOURCE_DIR/tests/lib/pgtmp.sh"
cd "$T"
PGTMP_SCHEMA=none pgtmp_start >/dev/null
cat > "$T/host.yaml" <<Y
rest: {listen: "127.0.0.1:0", token: $TOKEN, pipeline_dir: pdir}
web:
  database: "$PG_DSN"
  queries:
    slow: {sql: "select pg_sleep(3)::text as slept"}
Y
start_sluice "$T/log.txt" -c "$T/host.yaml"
( curl -s --max-time 30 -o "$T/slow-body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/api/query/slow" > "$T/slow-code"
  touch "$T/slow-done" ) &
slow=$!
# Only once the query runs in PostgreSQL is the point made.
sleeping() { [ "$(pgtmp_psql -c "select count(*) from pg_stat_activity where state = 'active' and query like 'select pg_sleep%'")" = 1 ]; }
wait_for sleeping || fail "the dashboard query never reached PostgreSQL"
start=$(date +%s%N)
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "GET / answered in $ms ms while a 3 s dashboard query ran"
assert_eq "$code" 200 "GET / answers"
[ ! -e "$T/slow-done" ] || fail "GET / was answered only after the slow query: the supervisor waited on the database"
ok "the REST API answered while the dashboard query was still running"
wait $slow
assert_eq "$(cat "$T/slow-code")" 200 "the slow query answers afterwards"
assert_contains "$(cat "$T/slow-body")" '"slept"' "with its rows"
stop_sluice
