#!/bin/bash
# The exactly-once crash test (SPEC §9, issue 5).
#
#   Apache Kafka (scripts/kafka.sh, events_raw: 16 partitions) <- sluice A: ecommerce-ingest.yaml
#       <- sluice-gen
#   Apache Kafka -> sluice B: ecommerce-analytics.yaml -> PostgreSQL (throwaway, pgtmp.sh)
#
# sluice-gen makes >= 200,000 events (5 % duplicates, 3 % invalid, 5 % late by up to 60 s, well
# within window-kpi's 48 h retention, so late events are corrections, never dead letters).
# A is never killed (the generator's "events since the last poll" cannot be replayed); B is
# killed with SIGKILL on its whole process group at random moments, at least 3 times, and
# restarted each time. Once the generator has stopped and B has consumed everything (committed
# offsets == end offsets), B is stopped with SIGTERM and the database is checked against the
# generator's own record of every event (--record):
#   - events_clean holds exactly the distinct valid events, each once;
#   - events_rejected holds exactly the invalid events (count and payloads);
#   - every row of every kpi table equals the KPI recomputed in SQL from events_clean, and no
#     window is missing (distinct_users is an estimate: see its bounds below).
#
# Knobs: CRASH_BROKERS (Kafka nodes, 1; with 3 the topic has replication factor 3 and
# min.insync.replicas 2), KEEP_LOGS (a directory to keep the logs in), CRASH_EVENTS (200000), CRASH_RATE (events/s, 4000), CRASH_KILLS (minimum, 3),
# CRASH_SEED (RNG seed of the kill moments and the generator; default random, printed),
# CRASH_PIPELINE_DIR (where the two pipeline files are; default pipelines/).
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"
. "$SLUICE_SOURCE_DIR/tests/lib/pgtmp.sh"

EVENTS=${CRASH_EVENTS:-200000}
RATE=${CRASH_RATE:-4000}
MIN_KILLS=${CRASH_KILLS:-3}
SEED=${CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
B=${SLUICE_BUILD_DIR:?}
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
NODES=${CRASH_BROKERS:-1}
for f in "$MOCK" "$GEN"; do [ -x "$f" ] || fail "$f not built"; done
command -v python3 >/dev/null || fail "python3 needed"
START=$(date +%s)
echo "seed $SEED: $EVENTS events at $RATE/s, at least $MIN_KILLS kills"

A_PID= B_PID= GEN_PID= MOCK_PID= KDIR=
crash_cleanup() {
    # Only what this test started, by process group (A and B run under setsid) or pid.
    [ -n "$B_PID" ] && kill -KILL -- "-$B_PID" 2>/dev/null
    [ -n "$A_PID" ] && kill -KILL -- "-$A_PID" 2>/dev/null
    [ -n "$GEN_PID" ] && kill -TERM "$GEN_PID" 2>/dev/null
    if [ -n "$MOCK_PID" ]; then
        kill -TERM "$MOCK_PID" 2>/dev/null
        wait "$MOCK_PID" 2>/dev/null
    fi
    [ -n "$KDIR" ] && bash "$SLUICE_SOURCE_DIR/scripts/kafka.sh" stop --dir "$KDIR" >/dev/null
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS" && cp "$T"/*.log "$T"/*.txt "$T"/gen.ndjson "$KEEP_LOGS"/ 2>/dev/null
    fi
    _cleanup
}
PGTMP_ON_EXIT=crash_cleanup
pgtmp_start >"$T/pgtmp.log" 2>&1 || { cat "$T/pgtmp.log" >&2; fail "cannot start PostgreSQL"; }
export PGTZ=UTC SLUICE_PLUGIN_PATH
cd "$T" || exit 1

elapsed() { echo $(($(date +%s) - START)); }

# ---- the broker ------------------------------------------------------------------------------
KDIR=$T/kafka
t0=$(date +%s.%N)
KAFKA_BROKERS=$(bash "$SLUICE_SOURCE_DIR/scripts/kafka.sh" start --brokers "$NODES" --dir "$KDIR" \
    2>"$T/kafka.log" | sed -n 's/^KAFKA_BROKERS=//p') && [ -n "$KAFKA_BROKERS" ] ||
    fail "scripts/kafka.sh start failed: $(tail -20 "$T/kafka.log")"
export KAFKA_BROKERS
bash "$SLUICE_SOURCE_DIR/scripts/kafka.sh" topic events_raw --partitions 16 \
    --config "min.insync.replicas=$((NODES > 1 ? 2 : 1))" --dir "$KDIR" 2>>"$T/kafka.log" ||
    fail "cannot create events_raw: $(tail -20 "$T/kafka.log")"
echo "Apache Kafka: $NODES node(s) at $KAFKA_BROKERS, ready with the topic in $(python3 -c "import sys; print(round($(date +%s.%N) - $t0, 1))") s"
# mock-kafka -B: offset queries (end / committed) against the real cluster.
coproc MK { exec "$MOCK" -B "$KAFKA_BROKERS" 2>"$T/mock-kafka.log"; }
MOCK_PID=$MK_PID
mk() { # COMMAND — one request to mock-kafka, its answer on stdout
    echo "$1" >&"${MK[1]}"
    local line
    read -r -t 30 -u "${MK[0]}" line || fail "mock-kafka did not answer '$1'"
    echo "$line"
}

# ---- the generator ---------------------------------------------------------------------------
"$GEN" --listen 127.0.0.1:0 --seed "$SEED" --rate "$RATE" --stopped --record gen.ndjson \
    --config '{"invalid_pct":3,"duplicate_pct":5,"late_pct":5,"late_by":"60s"}' 2>gen.log &
GEN_PID=$!
wait_for grep -q 'listening on http://' gen.log || fail "sluice-gen did not start: $(cat gen.log)"
GEN_URL=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' gen.log | head -1)
export GEN_URL
gen_stat() { # FIELD of /gen/stats
    python3 -c 'import json, sys, urllib.request
print(int(json.load(urllib.request.urlopen(sys.argv[1] + "/gen/stats", timeout=10))[sys.argv[2]]))' \
        "$GEN_URL" "$1"
}
gen_config() { # JSON body of PUT /gen/config
    python3 -c 'import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/gen/config", data=sys.argv[2].encode(), method="PUT")
urllib.request.urlopen(req, timeout=10).read()' "$GEN_URL" "$1"
}

# ---- the two sluice instances ------------------------------------------------------------------
P=${CRASH_PIPELINE_DIR:-$SLUICE_SOURCE_DIR/pipelines}
start_a() {
    setsid "$SLUICE" run "$P/ecommerce-ingest.yaml" >>a.out 2>>a.log &
    A_PID=$!
}
RESTARTS=0
start_b() {
    setsid "$SLUICE" run "$P/ecommerce-analytics.yaml" >>b.out 2>>b.log &
    B_PID=$!
}
kill_b() {
    kill -KILL -- "-$B_PID" 2>/dev/null
    wait "$B_PID" 2>/dev/null
}

start_a
start_b
gen_config '{"running":true}'

# ---- load with kills -------------------------------------------------------------------------
# Each kill comes at a random moment 1..8 s (0.3..1.8 s once the generator stopped) after B
# (re)started consuming — its partitions assigned, its state restored — so every kill
# interrupts real work. Kills go on while the
# generator runs and, until there were at least MIN_KILLS of them, while B catches up; the last
# one always falls in the catch-up.
assignments() { grep -c 'stage=source.*assigned events_raw\[0\] from offset' b.log; }
KILLS=0
KILL_TIMES=()
deadline=$(($(date +%s) + 240))
generated=0 stopped= need=1
while :; do
    for i in $(seq 1 600); do [ "$(assignments)" -ge "$need" ] && break; sleep 0.1; done
    [ "$(assignments)" -ge "$need" ] || fail "sluice B got no partitions within 60 s: $(tail -5 b.log)"
    sleep_ds=$((10 + RANDOM % 71))
    [ -n "$stopped" ] && sleep_ds=$((3 + RANDOM % 16)) # the backlog is gone within seconds
    sleep "$((sleep_ds / 10)).$((sleep_ds % 10))"
    kill -0 "$A_PID" 2>/dev/null || fail "sluice A (ingest) died: $(tail -5 a.log)"
    kill_b
    KILLS=$((KILLS + 1))
    KILL_TIMES+=("$(elapsed)s")
    generated=$(gen_stat generated)
    echo "kill -9 #$KILLS of B at $(elapsed) s ($generated events generated${stopped:+, catching up})"
    need=$(($(assignments) + 1))
    start_b
    if [ -z "$stopped" ] && [ "$generated" -ge "$EVENTS" ]; then
        gen_config '{"running":false}'
        stopped=$(elapsed)
        echo "generator stopped at $(gen_stat generated) events after $stopped s"
    elif [ -n "$stopped" ] && [ "$KILLS" -ge "$MIN_KILLS" ]; then
        break
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "generator too slow: $generated events after 240 s"
done

# ---- wait until everything generated is in Kafka and consumed --------------------------------
for i in $(seq 1 600); do [ "$(assignments)" -ge "$need" ] && break; sleep 0.1; done
[ "$(assignments)" -ge "$need" ] || fail "sluice B got no partitions within 60 s: $(tail -5 b.log)"
ok=
for i in $(seq 1 600); do
    polled=$(gen_stat polled)
    buffered=$(gen_stat buffered)
    end=$(mk "end events_raw")
    committed=$(mk "committed ecommerce-analytics events_raw")
    if [ "$buffered" -eq 0 ] && [ "${end#ok}" = "${committed#ok}" ] && [ "$end" = "${last_end:-}" ]; then
        ok=1
        break
    fi
    last_end=$end
    sleep 0.5
done
[ -n "$ok" ] || fail "consumption did not complete within 300 s: end $end, committed $committed"
ok "every event produced to Kafka was consumed (committed offsets == end offsets) at $(elapsed) s"
in_kafka=$(echo "${end#ok}" | tr ' ' '\n' | awk -F= '{s += $2} END {print s}')

kill -TERM "$B_PID"
for i in $(seq 1 600); do kill -0 "$B_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$B_PID" 2>/dev/null && fail "sluice B did not stop on SIGTERM within 60 s"
wait "$B_PID"
assert_eq "$?" 0 "sluice B stops cleanly on SIGTERM"
B_PID=
kill -TERM "$A_PID"
wait "$A_PID"
A_PID=
kill -TERM "$GEN_PID"
wait "$GEN_PID"
GEN_PID=

# ---- checks ----------------------------------------------------------------------------------
sql() { pgtmp_psql -c "$1"; }
sql "COPY (SELECT event_id FROM events_clean) TO STDOUT" >clean.txt
sql "COPY (SELECT payload FROM events_rejected WHERE stage = 'validate') TO STDOUT" >rejected.txt
sql "COPY (SELECT stage || ': ' || reason FROM events_rejected WHERE stage <> 'validate') TO STDOUT" >rejected-other.txt

python3 - "$in_kafka" >check.txt <<'PY' || fail "events check failed: $(cat check.txt)"
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
KPI_COLS="events page_views add_to_cart orders payment_failed refunds gmv refund_amount"
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
                   OR k.distinct_users < 0.9 * r.users / $((KILLS + 1)) - 2),
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
    # restart restarts its sketch and reports max(restored count, new estimate) — an
    # underestimate, but at least the largest of the (at most KILLS + 1) pieces' counts.
    assert_eq "$users" 0 "kpi_$name: distinct_users within its documented bounds"
done

echo "figures: $(grep -c . gen.ndjson) events generated, $KILLS kill -9 of sluice B (at ${KILL_TIMES[*]}), $(elapsed) s in all"
echo "$CHECKS checks passed"
