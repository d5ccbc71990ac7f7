#!/bin/bash
# The ingest half is at least once (issue 11 item 9): sluice-gen's replay cursor + http-source
# poll mode committing the cursor, kill -9 between a poll and Kafka's delivery report.
#
#   sluice-gen (--record) <- http-source poll, cursor: after -> kafka-sink -> mock-kafka
#
# KILLS times: the broker is taken down (so polled events cannot be delivered), the ingest
# pipeline polls for a moment, and is killed with SIGKILL; the broker comes back and the
# pipeline is started again (it resumes from the offset file under SLUICE_STATE_DIR). Then the
# generator is stopped and the pipeline drains to the newest sequence number. Every event the
# generator's own record lists as buffered must be in the topic at least once (duplicates are
# allowed: at least once), and the record is the expected answer. Prints kills, events,
# duplicates. Bounded: every wait has a deadline; loopback only; stops what it starts.
. "$SLUICE_SOURCE_DIR/tests/lib/testlib.sh"

B=${SLUICE_BUILD_DIR:?}
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
KILLS=${KILLS:-6}
SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}
for f in "$MOCK" "$GEN"; do [ -x "$f" ] || fail "$f not built"; done
command -v curl >/dev/null || fail "curl needed"
cd "$T" || exit 1
export SLUICE_REST_LISTEN=127.0.0.1:0 SLUICE_STATE_DIR=$T/state
echo "seed $SEED (replay with SEED=$SEED)"

ING= CON= GEN_PID= MOCK_PID=
crash_cleanup() {
    [ -n "$ING" ] && kill -KILL -- "-$ING" 2>/dev/null
    [ -n "$CON" ] && kill -KILL -- "-$CON" 2>/dev/null
    [ -n "$GEN_PID" ] && kill -KILL "$GEN_PID" 2>/dev/null
    if [ -n "$MOCK_PID" ]; then
        exec 7>&- 8<&-
        kill -TERM "$MOCK_PID" 2>/dev/null
        wait "$MOCK_PID" 2>/dev/null
    fi
    _cleanup
}
trap crash_cleanup EXIT

# The broker's control channel: two FIFOs on fds 7 (commands) and 8 (answers).
mkfifo mk.in mk.out
"$MOCK" -p 4 ingest_events <mk.in >mk.out 2>"$T/mock-kafka.log" &
MOCK_PID=$!
exec 7>mk.in 8<mk.out
read -r -t 30 -u 8 KAFKA_BROKERS || fail "mock-kafka did not start: $(cat mock-kafka.log)"
export KAFKA_BROKERS
mk() { # a mock-kafka command; prints its answer
    local line
    echo "$1" >&7
    read -r -t 30 -u 8 line || { echo "no answer to $1"; return 1; }
    echo "$line"
}

"$GEN" --listen 127.0.0.1:0 --seed "$SEED" --rate 3000 --buffer 1000000 --record gen.ndjson \
    --config '{"invalid_pct":3,"duplicate_pct":3}' >gen.out 2>gen.log &
GEN_PID=$!
listening() { grep -q 'listening on http://' gen.out 2>/dev/null; }
wait_for listening || fail "sluice-gen did not start: $(tail -3 gen.log)"
GEN_URL=$(sed -n 's/.*listening on \(http:[^ "]*\).*/\1/p' gen.out | head -1)
stat() { curl -sf --max-time 5 "$GEN_URL/gen/stats" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)[sys.argv[1]]))' "$1"; }

cat >ingest.yaml <<EOF
pipeline: ingest-crash
commit_interval: 100ms
stages:
  - name: gen
    use: http-source
    with: {mode: poll, url: "$GEN_URL/gen/events?max=2000", cursor: after, interval: 100ms, timeout: 2s}
  - {name: produce, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: ingest_events, key: event_id}}
EOF
OFFSET_FILE=$T/state/offsets/ingest-crash/gen.offset
start_ingest() {
    setsid "$SLUICE" run ingest.yaml >>ingest.out 2>>ingest.log &
    ING=$!
}
committed() { awk '{print $1; exit}' "$OFFSET_FILE" 2>/dev/null | grep . || echo 0; }

# ---- kill -9 between polls and delivery reports ----------------------------------------------
start_ingest
some_commit() { [ "$(committed)" -gt 0 ]; }
wait_for some_commit || fail "no commit within 30 s: $(tail -5 ingest.log)"
for k in $(seq "$KILLS"); do
    before=$(committed)
    # Broker down: what is polled from now on cannot be delivered, so it cannot be committed.
    case "$(mk 'down 1')" in ok*) ;; *) fail "mock-kafka down" ;; esac
    sleep "0.$((3 + RANDOM % 6))"
    polled=$(grep -c 'stage=gen' ingest.log)
    kill -KILL -- "-$ING"
    wait "$ING" 2>/dev/null
    ING=
    case "$(mk 'up 1')" in ok*) ;; *) fail "mock-kafka up" ;; esac
    echo "kill $k: committed before $before, at the kill $(committed), generated $(stat generated)"
    start_ingest
    moved() { [ "$(committed)" -gt "$before" ]; }
    wait_for moved || fail "after kill $k the cursor did not move past $before: $(tail -5 ingest.log)"
    sleep "0.$((RANDOM % 8))"
done
grep -q 'resuming after [1-9]' ingest.log || fail "the source never resumed from a committed cursor"

# ---- stop the generator; the pipeline drains to its newest event -----------------------------
curl -sf --max-time 5 -X PUT "$GEN_URL/gen/config" -d '{"running":false}' >/dev/null || fail "PUT /gen/config"
newest=$(stat newest_seq)
replayed=$(($(stat polled) - newest))
caught_up() { [ "$(committed)" -ge "$newest" ]; }
wait_for caught_up || fail "the cursor stays at $(committed), the newest event is $newest"
kill -TERM "$ING"
wait "$ING"
ING=
kill -TERM "$GEN_PID"
wait "$GEN_PID"
GEN_PID=
lost=$(grep -c 'fell out of' ingest.log)
assert_eq "$lost" 0 "no cursor fell out of the generator's replay window"

# ---- the generator restarts: a new stream, numbered from 1 again -----------------------------
# The offset file still holds the old stream's cursor; the source must see the new stream
# (X-Seq-Epoch) and start from its first event instead of skipping up to the old cursor.
"$GEN" --listen "${GEN_URL#http://}" --seed "$((SEED + 1))" --rate 3000 --buffer 1000000 \
    --record gen2.ndjson >gen2.out 2>gen2.log &
GEN_PID=$!
listening2() { grep -q 'listening on http://' gen2.out 2>/dev/null; }
wait_for listening2 || fail "sluice-gen did not restart on ${GEN_URL#http://}: $(tail -3 gen2.log)"
sleep 1
start_ingest
changed() { grep -q "stream changed" ingest.log; }
wait_for changed || fail "the source did not notice the generator's new stream: $(tail -3 ingest.log)"
curl -sf --max-time 5 -X PUT "$GEN_URL/gen/config" -d '{"running":false}' >/dev/null || fail "PUT /gen/config"
newest=$(stat newest_seq)
wait_for caught_up || fail "new stream: the cursor stays at $(committed), the newest event is $newest"
ok "after the generator restarted, the source started over on its new stream (now at $(committed))"
kill -TERM "$ING"
wait "$ING"
ING=
kill -TERM "$GEN_PID"
wait "$GEN_PID"
GEN_PID=

# ---- the topic holds every event of the generator's record at least once ---------------------
kill -0 "$MOCK_PID" 2>/dev/null || fail "mock-kafka exited: $(tail -3 mock-kafka.log)"
total=$(mk 'end ingest_events' | sed 's/^ok//' | tr ' ' '\n' | awk -F= 'NF == 2 {s += $2} END {print s + 0}')
cat >consume.yaml <<EOF
pipeline: crash-read
commit_interval: 100ms
stages:
  - {name: in, use: kafka-source, with: {brokers: "\${KAFKA_BROKERS}", topics: [ingest_events], group: crash-read}}
  - {name: out, use: file-sink, with: {path: topic.ndjson, fsync: false}}
EOF
setsid "$SLUICE" run consume.yaml >consume.out 2>consume.log &
CON=$!
read_all() { [ -f topic.ndjson ] && [ "$(grep -c '' topic.ndjson)" -ge "$total" ]; }
wait_for read_all || fail "read back $(grep -c '' topic.ndjson 2>/dev/null) of $total: $(tail -3 consume.log)"
kill -TERM "$CON"
wait "$CON"
CON=
python3 - topic.ndjson "$KILLS" gen.ndjson gen2.ndjson >compare.txt <<'PY' || fail "$(cat compare.txt)"
import collections, sys
want = collections.Counter()
for path in sys.argv[3:]:
    for line in open(path, "rb"):
        line = line.rstrip(b"\n")
        if b'"dest":"buffer"' not in line:
            continue
        want[line[line.index(b'"event":') + len(b'"event":'):-1]] += 1  # the bytes as served
got = collections.Counter(l.rstrip(b"\n") for l in open(sys.argv[1], "rb"))
missing = want - got
dups = sum((got - want).values())
print("kills %s: the generator's two runs recorded %d events, the topic holds %d (%d redelivered), missing %d"
      % (sys.argv[2], sum(want.values()), sum(got.values()), dups, sum(missing.values())))
if missing or set(got) - set(want):
    print("e.g. missing %r, never generated %r" % (list(missing)[:2], list(set(got) - set(want))[:2]))
    sys.exit(1)
PY
ok "every recorded event reached Kafka at least once ($(cat compare.txt); the generator handed out $replayed events again to a resumed cursor)"
echo "$CHECKS checks passed"
