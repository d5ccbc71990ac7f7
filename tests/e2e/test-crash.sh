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
. "$SLUICE_SOURCE_DIR/tests/e2e/check-results.sh"

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

# ---- checks (tests/e2e/check-results.sh) ---------------------------------------------------
check_results "$in_kafka"

echo "figures: $(grep -c . gen.ndjson) events generated, $KILLS kill -9 of sluice B (at ${KILL_TIMES[*]}), $(elapsed) s in all"
echo "$CHECKS checks passed"
