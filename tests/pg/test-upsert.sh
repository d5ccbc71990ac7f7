#!/bin/bash
# pg-sink, on_conflict: update — into kpi_1m with columns omitted (read from the catalog), so
# "window" and "partition" exercise quoting and updated_at its DEFAULT. Several revisions of a
# window in one flush: the last one wins (DISTINCT ON by arrival); later flushes update again.
. "$(dirname "$0")/pglib.sh"

kpi() { # window_start_minute partition revision events gmv final
    printf '{"window":"1m","window_start":"2024-05-01T12:%02d:00Z","window_end":"2024-05-01T12:%02d:00Z","partition":%d,"events":%d,"page_views":10,"add_to_cart":2,"orders":4,"payment_failed":1,"refunds":0,"gmv":%s,"refund_amount":0,"avg_order_value":1.5,"success_rate":0.8,"conversion_rate":0.4,"distinct_users":7,"final":%s,"revision":%d}\n' \
        "$1" "$(($1 + 1))" "$2" "$4" "$5" "$6" "$3"
}
{
    for r in 1 2 3 4 5; do kpi 0 0 "$r" "$((r * 10))" "$r.25" false; done  # 5 revisions, one flush
    kpi 0 1 1 3 9.99 false
    kpi 1 0 1 1 1 false
} >in1.ndjson
{
    kpi 1 0 2 2 2.50 true  # a later flush updates window 12:01 again
    kpi 2 0 1 5 5 true
} >in2.ndjson
sql "INSERT INTO kpi_1m (\"window\", window_start, window_end, \"partition\", events, updated_at)
     VALUES ('1m', '2024-05-01T12:02:00Z', '2024-05-01T12:03:00Z', 0, 999, '2000-01-01')" >/dev/null

for i in 1 2; do
    cat >p$i.yaml <<YAML
pipeline: upsert-test
stages:
  - {name: in, use: file-source, with: {path: in$i.ndjson, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      store_offsets: false
      tables:
        "*": {table: kpi_1m, conflict: [window_start, source_topic, partition], on_conflict: update}
YAML
    run_sluice p$i.yaml
    assert_eq "$?" 0 "run $i exits 0"
done

row() { sql "SELECT revision, events, gmv, final FROM kpi_1m WHERE window_start = '2024-05-01T12:$1:00Z' AND partition = $2"; }
assert_eq "$(row 00 0)" "5|50|5.25|f" "the last of 5 revisions in one flush wins"
assert_eq "$(row 00 1)" "1|3|9.99|f" "another partition of the same window is its own row"
assert_eq "$(row 01 0)" "2|2|2.50|t" "a later flush updates the row"
assert_eq "$(row 02 0)" "1|5|5.00|t" "an existing row is updated"
assert_eq "$(sql "SELECT updated_at > now() - interval '1 hour' FROM kpi_1m WHERE window_start = '2024-05-01T12:02:00Z'")" \
    t "a column missing from the record takes its DEFAULT (updated_at = now())"
assert_eq "$(sql "SELECT count(*) FROM kpi_1m")" 4 "4 rows"
assert_eq "$(sql "SELECT partitions, events, orders, gmv, success_rate FROM kpi_1m_total WHERE window_start = '2024-05-01T12:00:00Z'")" \
    "2|53|8|15.24|0.8" "kpi_1m_total sums the partitions and recomputes the ratios"
echo "$CHECKS checks passed"
