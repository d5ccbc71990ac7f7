# check-results.sh — sourced by the end-to-end tests (after testlib.sh and pgtmp.sh), in the test
# dir holding gen.ndjson (sluice-gen --record): checks the analytics pipeline's database.
#
#   check_results IN_KAFKA
#     IN_KAFKA  events in events_raw (sum of the end offsets)
#   - events_clean holds exactly the distinct valid events, each once;
#   - events_rejected holds exactly the invalid events (count and payloads);
#   - every row of every kpi table equals the KPI recomputed in SQL from events_clean, and no
#     window is missing (distinct_users within its documented bounds).
# Heredocs below are not indented: bash needs their bodies as they are.
KPI_COLS="events page_views add_to_cart orders payment_failed refunds gmv refund_amount"
check_results() {
sql() { pgtmp_psql -c "$1"; }
sql "COPY (SELECT event_id FROM events_clean) TO STDOUT" >clean.txt
sql "COPY (SELECT convert_from(payload, 'UTF8') FROM events_rejected WHERE stage = 'validate') TO STDOUT" >rejected.txt
sql "COPY (SELECT stage || ': ' || reason FROM events_rejected WHERE stage <> 'validate') TO STDOUT" >rejected-other.txt

python3 - "$1" >check.txt <<'PY' || fail "events check failed: $(cat check.txt)"
import collections, json, sys

def copy_text(s):  # COPY text format: undo the backslash escapes
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(n, n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)

valid, invalid, dropped, generated = set(), collections.Counter(), 0, 0
for line in open("gen.ndjson"):
    generated += 1
    rec = json.loads(line)
    if rec["dest"] == "dropped":
        dropped += 1
        continue
    raw = line.rstrip("\n")
    raw = raw[raw.index('"event":') + len('"event":'):-1]  # the event's bytes as generated
    if rec["class"] == "invalid":
        invalid[raw] += 1
    else:  # valid, or a duplicate: an exact copy of an earlier valid event
        valid.add(rec["event"]["event_id"])
clean = [l.rstrip("\n") for l in open("clean.txt")]
rejected = collections.Counter(copy_text(l.rstrip("\n")) for l in open("rejected.txt"))
other = [l.rstrip("\n") for l in open("rejected-other.txt")]
in_kafka = int(sys.argv[1])
print(f"generated {generated}, dropped by the generator {dropped}, in Kafka {in_kafka}")
print(f"distinct valid {len(valid)}, events_clean {len(clean)} ({len(set(clean))} distinct)")
print(f"invalid {sum(invalid.values())}, rejected by the validator {sum(rejected.values())}, "
      f"other dead letters {len(other)}")
errors = []
if generated - dropped != in_kafka:
    errors.append(f"{generated - dropped} events handed out, {in_kafka} in Kafka")
if len(clean) != len(set(clean)):
    errors.append("events_clean has duplicate event_ids")
missing, extra = valid - set(clean), set(clean) - valid
if missing or extra:
    errors.append(f"events_clean: {len(missing)} valid events missing (e.g. {sorted(missing)[:3]}),"
                  f" {len(extra)} unexpected (e.g. {sorted(extra)[:3]})")
if rejected != invalid:
    errors.append(f"events_rejected: {sum((invalid - rejected).values())} invalid events missing, "
                  f"{sum((rejected - invalid).values())} unexpected")
if other:
    errors.append(f"{len(other)} dead letters from other stages, e.g. {other[:3]}")
if errors:
    print("\n".join(errors))
    sys.exit(1)
PY
cat check.txt
ok "events_clean holds exactly the distinct valid events, once each"
ok "events_rejected holds exactly the invalid events (payloads as generated)"

# Every KPI row against a recomputation from events_clean, per (window, partition), both ways.
cols() { local out= c; for c in $KPI_COLS; do out+="${out:+, }$1.$c"; done; echo "$out"; }
K=$(cols k) R=$(cols r)
for w in 1m:60 15m:900 1h:3600 24h:86400; do
    name=${w%%:*} secs=${w#*:}
    res=$(sql "
        WITH r AS (
            SELECT to_timestamp(floor(extract(epoch FROM ts) / $secs) * $secs) AS window_start,
                   kafka_partition AS \"partition\",
                   count(*) AS events,
                   count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
                   count(*) FILTER (WHERE event_type = 'add_to_cart') AS add_to_cart,
                   count(*) FILTER (WHERE event_type = 'purchase') AS orders,
                   count(*) FILTER (WHERE event_type = 'payment_failed') AS payment_failed,
                   count(*) FILTER (WHERE event_type = 'refund') AS refunds,
                   coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS gmv,
                   coalesce(sum(amount) FILTER (WHERE event_type = 'refund'), 0) AS refund_amount,
                   count(DISTINCT user_id) AS users
            FROM events_clean GROUP BY 1, 2)
        SELECT count(*) FILTER (WHERE k.window_start IS NOT NULL),
               count(*) FILTER (WHERE k.final),
               count(*) FILTER (WHERE k.window_start IS NULL),
               count(*) FILTER (WHERE r.window_start IS NULL),
               count(*) FILTER (WHERE r.window_start IS NOT NULL AND k.window_start IS NOT NULL
                   AND ROW($K) IS DISTINCT FROM ROW($R)),
               count(*) FILTER (WHERE k.final AND r.window_start IS NOT NULL
                   AND ROW($K) IS DISTINCT FROM ROW($R)),
               count(*) FILTER (WHERE k.distinct_users > 1.1 * r.users + 2
                   OR k.distinct_users < 0.9 * r.users - 2),
               count(*) FILTER (WHERE abs(k.distinct_users - r.users) <= 0.1 * r.users + 2),
               coalesce(sum(r.events), 0)
        FROM kpi_$name k FULL JOIN r ON k.window_start = r.window_start AND k.\"partition\" = r.\"partition\"")
    IFS='|' read -r rows finals missing extra wrong wrong_final users users_close total <<<"$res"
    echo "kpi_$name: $rows rows ($finals final) over $total events; missing $missing, unexpected $extra, differing $wrong ($wrong_final final); distinct_users within 10 % in $users_close rows, out of bounds in $users"
    if [ "$wrong" != 0 ] || [ "$users" != 0 ]; then
        sql "WITH r AS (SELECT to_timestamp(floor(extract(epoch FROM ts) / $secs) * $secs) AS window_start,
                 kafka_partition AS \"partition\", count(*) AS events,
                 coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0) AS gmv,
                 count(DISTINCT user_id) AS users
                 FROM events_clean GROUP BY 1, 2)
             SELECT k.window_start, k.\"partition\", k.final, k.revision, k.events, r.events,
                    k.gmv, r.gmv, k.distinct_users, r.users
             FROM kpi_$name k JOIN r USING (window_start, \"partition\")
             WHERE k.events <> r.events OR k.gmv <> r.gmv OR k.distinct_users <> r.users
             ORDER BY 1, 2 LIMIT 20" >&2
    fi
    [ "$rows" -gt 0 ] || fail "kpi_$name has no rows"
    assert_eq "$missing $extra" "0 0" "kpi_$name: one row per (window, partition) with events, no other"
    assert_eq "$wrong_final" 0 "kpi_$name: every closed window's row equals the recomputation"
    assert_eq "$wrong" 0 "kpi_$name: every row (open windows too, after the final flush) equals the recomputation"
    # distinct_users (window-kpi README): a HyperLogLog estimate (±3.25 %); a window open across a
    # restart continues its own sketch (users_hll, restored and merged), so the estimate is held
    # to the sketch's error bound (10 %, about 3 standard errors) whatever the kills.
    assert_eq "$users" 0 "kpi_$name: distinct_users within its documented bounds"
done

}
