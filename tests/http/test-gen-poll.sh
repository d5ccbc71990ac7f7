#!/bin/bash
# http-source (poll) against the real sluice-gen, into Kafka (issue 4).
#
#   sluice-gen (run 1, then run 2 on the same port) <- http-source poll -> kafka-sink -> mock-kafka
#
# 1. After at least 5 polls the generator's clock is stopped; once its buffer is drained the
#    topic holds exactly as many messages as sluice-gen reports it generated (/gen/stats), none
#    dropped by the generator.
# 2. sluice-gen is stopped (SIGTERM): the source logs failed GETs with a growing backoff and keeps
#    running. A new sluice-gen (another seed, so its events are distinguishable) is started on
#    the same port: the source recovers by itself and consumes again (run 2 is polled, and its
#    events reach the topic).
# 3. The topic, read back with kafka-source -> file-sink, holds exactly the events both runs
#    recorded (--record), byte for byte, each once.
# Bounded (every wait has a deadline; about 20 s in all), loopback only, cleans up after itself.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"

B=${SLUICE_BUILD_DIR:?}
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
for f in "$MOCK" "$GEN"; do [ -x "$f" ] || fail "$f not built"; done
command -v curl >/dev/null || fail "curl needed"
command -v python3 >/dev/null || fail "python3 needed"
cd "$T" || exit 1
export SLUICE_REST_LISTEN=127.0.0.1:0

ING= CON= GEN_PID= MOCK_PID=
gen_poll_cleanup() {
    # Only what this test started, by process group (sluice under setsid) or pid.
    [ -n "$ING" ] && kill -KILL -- "-$ING" 2>/dev/null
    [ -n "$CON" ] && kill -KILL -- "-$CON" 2>/dev/null
    [ -n "$GEN_PID" ] && kill -KILL "$GEN_PID" 2>/dev/null
    if [ -n "$MOCK_PID" ]; then
        kill -TERM "$MOCK_PID" 2>/dev/null
        wait "$MOCK_PID" 2>/dev/null
    fi
    _cleanup
}
trap gen_poll_cleanup EXIT

# ---- broker ----------------------------------------------------------------------------------
coproc MK { exec "$MOCK" -p 4 gen_events 2>"$T/mock-kafka.log"; }
MOCK_PID=$MK_PID
read -r -t 30 -u "${MK[0]}" KAFKA_BROKERS || fail "mock-kafka did not start: $(cat mock-kafka.log)"
export KAFKA_BROKERS
in_topic() { # the sum of the topic's end offsets (mk must not run inside a pipeline)
    local line
    echo "end gen_events" >&"${MK[1]}"
    read -r -t 30 -u "${MK[0]}" line || fail "mock-kafka did not answer"
    case "$line" in ok*) ;; *) fail "mock-kafka: $line" ;; esac
    echo "${line#ok}" | tr ' ' '\n' | awk -F= 'NF == 2 {s += $2} END {print s + 0}'
}

# ---- generator -------------------------------------------------------------------------------
start_gen() { # LISTEN SEED RECORD
    "$GEN" --listen "$1" --seed "$2" --rate 2000 --record "$3" \
        --config '{"invalid_pct":3,"duplicate_pct":3,"late_pct":3}' >>gen.out 2>>gen.log &
    GEN_PID=$!
    GEN_RUNS=$((GEN_RUNS + 1))
    wait_for listening "$GEN_RUNS" || fail "sluice-gen did not start: $(tail -3 gen.log)"
}
GEN_RUNS=0
listening() { [ "$(grep -c 'listening on http://' gen.out 2>/dev/null)" -ge "$1" ]; }
stat() { # FIELD of /gen/stats
    curl -sf --max-time 5 "$GEN_URL/gen/stats" |
        python3 -c 'import json, sys; print(int(json.load(sys.stdin)[sys.argv[1]]))' "$1"
}
buffer_empty() { [ "$(stat buffered)" = 0 ]; }
drained() { # stop the clock, wait until the source has fetched everything generated
    curl -sf --max-time 5 -X PUT "$GEN_URL/gen/config" -d '{"running":false}' >/dev/null ||
        fail "PUT /gen/config failed"
    wait_for buffer_empty || fail "the generator's buffer was not drained within 30 s"
}

start_gen 127.0.0.1:0 1001 gen1.ndjson
GEN_URL=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' gen.out | head -1)
[ -n "$GEN_URL" ] || fail "no URL in: $(cat gen.out)"
ADDR=${GEN_URL#http://}

cat >ingest.yaml <<EOF
pipeline: gen-poll
stages:
  - name: gen
    use: http-source
    with: {mode: poll, url: "$GEN_URL/gen/events?max=500", interval: 200ms, timeout: 1s}
  - {name: produce, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: gen_events, key: event_id}}
EOF
setsid "$SLUICE" run ingest.yaml >ingest.out 2>ingest.log &
ING=$!

# ---- 1. after N polls the topic holds what the generator generated ---------------------------
polls_at_least() { [ "$(stat polls)" -ge "$1" ]; }
wait_for polls_at_least 5 || fail "fewer than 5 polls in 30 s: $(tail -3 ingest.log)"
drained
gen1=$(stat generated)
dropped1=$(stat dropped)
assert_eq "$dropped1" 0 "run 1: the generator dropped nothing ($(stat polls) polls)"
topic_is() { [ "$(in_topic)" = "$1" ]; }
wait_for topic_is "$gen1" || fail "run 1: $gen1 generated, $(in_topic) in the topic"
sleep 0.5 # a few more (empty) polls: nothing more may arrive
assert_eq "$(in_topic)" "$gen1" "run 1: the topic holds exactly the $gen1 events sluice-gen generated"
assert_eq "$(grep -c . gen1.ndjson)" "$gen1" "run 1: the record file lists $gen1 events"

# ---- 2. generator down: backoff; generator back: the source recovers by itself ---------------
kill -TERM "$GEN_PID"
wait "$GEN_PID"
assert_eq "$?" 0 "sluice-gen run 1 stops cleanly on SIGTERM"
GEN_PID=
retries() { grep -c 'stage=gen.*failed: .*retrying in' ingest.log; }
two_retries() { [ "$(retries)" -ge 2 ]; }
wait_for two_retries || fail "no backoff lines while the generator was down: $(tail -3 ingest.log)"
backoff=$(grep -o 'retrying in [0-9]* ms' ingest.log | awk '{print $3}' | tr '\n' ' ')
backoff=${backoff% }
case "$backoff" in "200 400 "* | "400 800 "* | "200 400" | "400 800") ok "backoff grows while the generator is down: $backoff ms" ;;
    *) fail "backoff does not grow from the interval: $backoff" ;; esac
kill -0 "$ING" 2>/dev/null || fail "the ingest pipeline stopped while the generator was down"
sleep 1
start_gen "$ADDR" 2002 gen2.ndjson
wait_for polls_at_least 3 || fail "the source did not poll sluice-gen run 2 within 30 s: $(tail -3 ingest.log)"
ok "the source recovered by itself: sluice-gen run 2 polled $(stat polls) times after $(retries) failed GETs"
more_in_topic() { [ "$(in_topic)" -gt "$gen1" ]; }
wait_for more_in_topic || fail "no events of run 2 in the topic"
drained
gen2=$(stat generated)
assert_eq "$(stat dropped)" 0 "run 2: the generator dropped nothing"
total=$((gen1 + gen2))
wait_for topic_is "$total" || fail "run 1 + run 2: $total generated, $(in_topic) in the topic"
kill -TERM "$GEN_PID"
wait "$GEN_PID"
GEN_PID=
kill -TERM "$ING"
wait "$ING"
assert_eq "$?" 0 "the ingest pipeline stops cleanly on SIGTERM"
ING=
assert_eq "$(in_topic)" "$total" "the topic holds exactly $total events: $gen1 of run 1 + $gen2 of run 2"

# ---- 3. the topic's contents are exactly both record files -----------------------------------
cat >consume.yaml <<EOF
pipeline: gen-read
commit_interval: 100ms
stages:
  - {name: in, use: kafka-source, with: {brokers: "\${KAFKA_BROKERS}", topics: [gen_events], group: gen-read}}
  - {name: out, use: file-sink, with: {path: topic.ndjson, fsync: false}}
EOF
setsid "$SLUICE" run consume.yaml >consume.out 2>consume.log &
CON=$!
read_all() { [ -f topic.ndjson ] && [ "$(grep -c '' topic.ndjson)" -ge "$total" ]; }
wait_for read_all || fail "read back $(grep -c '' topic.ndjson 2>/dev/null) of $total: $(tail -3 consume.log)"
kill -TERM "$CON"
wait "$CON"
CON=
python3 - gen1.ndjson gen2.ndjson topic.ndjson >compare.txt <<'PY' || fail "topic contents: $(cat compare.txt)"
import collections, sys
want = collections.Counter()
for path in sys.argv[1:3]:
    for line in open(path, "rb"):
        line = line.rstrip(b"\n")
        assert b'"dest":"buffer"' in line, "an event not queued for /gen/events: %r" % line[:120]
        want[line[line.index(b'"event":') + len(b'"event":'):-1]] += 1  # the bytes as served
got = collections.Counter(l.rstrip(b"\n") for l in open(sys.argv[3], "rb"))
missing, extra = want - got, got - want
print("recorded %d, in the topic %d, missing %d, unexpected %d"
      % (sum(want.values()), sum(got.values()), sum(missing.values()), sum(extra.values())))
if missing or extra:
    print("e.g. missing %r, unexpected %r" % (list(missing)[:2], list(extra)[:2]))
    sys.exit(1)
PY
ok "the topic holds exactly the events both runs recorded, byte for byte ($(cat compare.txt))"
echo "$CHECKS checks passed"
