#!/bin/bash
# pg-sink and statement errors that are the rows' own, not the server's: a trigger raising on
# some rows (P0001) and a row-level security policy refusing others (42501, a permission error)
# used to stop the pipeline; now the batch is bisected and exactly those rows go to the dead
# letter with the SQLSTATE and the server's message, while every other row commits.
. "$SLUICE_SOURCE_DIR/tests/pg/pglib.sh"

sql "CREATE FUNCTION refuse_evil() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN IF NEW.user_id = 'u-evil' THEN RAISE EXCEPTION 'refused by trigger: %', NEW.event_id; END IF;
     RETURN NEW; END \$\$;
     CREATE TRIGGER refuse_evil BEFORE INSERT ON events_clean FOR EACH ROW EXECUTE FUNCTION refuse_evil();
     ALTER TABLE events_clean ENABLE ROW LEVEL SECURITY;
     ALTER TABLE events_clean FORCE ROW LEVEL SECURITY;
     CREATE POLICY no_locked ON events_clean USING (true) WITH CHECK (user_id <> 'u-locked');"
user() { gen_events "$1" 1 | sed "s/\"user_id\":\"[^\"]*\"/\"user_id\":\"$2\"/"; }
{
    gen_events 0 17; user 17 u-evil
    gen_events 18 232; user 250 u-locked
    gen_events 251 249; user 500 u-evil
    gen_events 501 499
} >in.ndjson
events_pipeline sql-errors-test in.ndjson "      batch_size: 5000" >p.yaml

run_sluice p.yaml
assert_eq "$?" 0 "sluice exits 0 (the errors are the rows', not a reason to stop)"
assert_eq "$(sql "SELECT count(*) FROM events_clean")" 997 "every other row committed"
assert_eq "$(sql "SELECT count(*) FROM events_clean WHERE event_id IN ('e17','e250','e500')")" 0 "no refused row committed"
assert_eq "$(wc -l <dlq.ndjson)" 3 "exactly the 3 refused rows are dead letters"
assert_contains "$(grep -a '"e17\\' dlq.ndjson)" 'P0001: refused by trigger: e17' "trigger: SQLSTATE and message"
assert_contains "$(grep -a '"e500\\' dlq.ndjson)" 'P0001: refused by trigger: e500' "trigger: the second row"
assert_contains "$(grep -a '"e250\\' dlq.ndjson)" '42501: new row violates row-level security policy' "permission (RLS): SQLSTATE and message"
assert_eq "$(sql "SELECT \"offset\" FROM sluice_offsets")" "$(stat -c %s in.ndjson)" \
    "stored offset: the end of the last row"
echo "$CHECKS checks passed"
