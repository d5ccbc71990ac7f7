#!/bin/bash
# sluice-gen --push -> http-source (listen, ack: accepted) -> kafka-sink -> mock broker (SPEC §11,
# issue 4). Figures only, never fails on time; loopback; cleans up after itself.
#
#   SLUICE_BUILD_DIR=$PWD/build-bench bench/push.sh [EVENTS] [RUNS]     # default 1,000,000, 3
#
# Per run: a fresh stand-alone broker (tests/kafka/mock-kafka, 16 partitions of events_raw) and a
# fresh `sluice run` of the ingest pipeline in listen mode (kafka-sink keyed by user_id, lz4,
# acks=all, idempotent: pipelines/ecommerce-ingest.yaml with http-source in listen mode), then
# `sluice-gen --push URL --rate 0 --count EVENTS --batch B` (real sluice-gen events, ~235 bytes,
# its default 2 % invalid / 2 % duplicates / 5 % late). The clock runs from the start of
# sluice-gen until the broker's high watermarks add up to EVENTS (every event durably produced;
# polled every 0.1 s). Batch sizes: PUSH_BATCHES ("1000 5000"; 1000 is sluice-gen's default).
set -u
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=$B/host/sluice
MOCK=$B/tests/kafka/mock-kafka
GEN=$B/tools/sluice-gen/sluice-gen
for f in "$SLUICE" "$MOCK" "$GEN"; do [ -x "$f" ] || { echo "push: $f not built" >&2; exit 1; }; done
export SLUICE_PLUGIN_PATH=$B/plugins
EVENTS=${1:-1000000}
RUNS=${2:-3}
T=$(mktemp -d /tmp/sluice-pushbench.XXXXXX)
ING= MOCK_PID=
cleanup() {
    [ -n "$ING" ] && kill -KILL -- "-$ING" 2>/dev/null
    [ -n "$MOCK_PID" ] && { kill -TERM "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; }
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "push: $*" >&2; exit 1; }
cd "$T" || exit 1
end_sum() { # (not in a pipeline: a pipeline's subshell does not get the coprocess's fds)
    local line
    echo "end events_raw" >&"${MK[1]}"
    read -r -t 30 -u "${MK[0]}" line || die "mock-kafka did not answer"
    echo "${line#ok}" | tr ' ' '\n' | awk -F= 'NF == 2 && $2 > 0 {s += $2} END {print s + 0}'
}
echo "sluice-gen --push -> http-source (listen) -> kafka-sink -> mock-kafka (16 partitions): $EVENTS events, $(nproc) cores"
for batch in ${PUSH_BATCHES:-1000 5000}; do
    for run in $(seq 1 "$RUNS"); do
        coproc MK { exec "$MOCK" -p 16 events_raw 2>>"$T/mock-kafka.log"; }
        MOCK_PID=$MK_PID
        read -r -t 30 -u "${MK[0]}" KAFKA_BROKERS || die "mock-kafka did not start"
        export KAFKA_BROKERS
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        cat >ingest.yaml <<EOF
pipeline: bench-push
batch_size: 10000
stages:
  - {name: in, use: http-source, with: {mode: listen, address: "127.0.0.1:$port", path: /events, queue_size: 200000, topic: events_raw}}
  - {name: produce, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: events_raw, key: user_id}}
EOF
        setsid "$SLUICE" run --no-rest ingest.yaml >ingest.log 2>&1 &
        ING=$!
        for i in $(seq 1 300); do grep -q 'stage=in msg="listening' ingest.log && break; sleep 0.1; done
        t0=$(date +%s.%N)
        "$GEN" --push "http://127.0.0.1:$port/events" --rate 0 --count "$EVENTS" --batch "$batch" \
            --seed "$run" >push.log 2>&1 || die "push failed: $(tail -3 push.log)"
        t1=$(date +%s.%N)
        n=0
        for i in $(seq 1 1200); do
            n=$(end_sum)
            [ "$n" -ge "$EVENTS" ] && break
            sleep 0.1
        done
        t2=$(date +%s.%N)
        kill -TERM "$ING"; wait "$ING" 2>/dev/null; ING=
        echo quit >&"${MK[1]}"; wait "$MOCK_PID" 2>/dev/null; MOCK_PID=
        python3 -c 'import sys
n, t0, t1, t2, b = int(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
print(f"  batch {b}: {n} events in Kafka {t2 - t0:.2f} s after the first POST = {n / (t2 - t0):,.0f} events/s "
      f"(sluice-gen done after {t1 - t0:.2f} s)")' "$n" "$t0" "$t1" "$t2" "$batch"
    done
done
