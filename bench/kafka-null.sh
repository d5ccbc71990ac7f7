#!/bin/bash
# kafka-null.sh — CPU per message of sluice (kafka-source -> null-sink) against kcat, reading the
# same topic from the same broker (the stand-alone mock broker, tests/kafka/mock-kafka, in its
# own process; or a real cluster with KAFKA_BOOTSTRAP=host:port and the topic already filled).
# Runs alternate (kcat, sluice, kcat, sluice, ...); prints each run's CPU seconds (user+sys of the
# consumer process and its children, from /usr/bin/time) per million messages, the medians and
# their ratio. sluice's figure includes its start-up and shutdown; kcat's is a plain consumer
# (no group, no commits), sluice's a group member that commits. Prints figures; never fails on time.
# usage: SLUICE_BUILD_DIR=build bench/kafka-null.sh [MESSAGES (default 500000)] [RUNS (default 3)]
set -euo pipefail
N=${1:-500000}
RUNS=${2:-3}
B=${SLUICE_BUILD_DIR:?set SLUICE_BUILD_DIR to a build dir (with tests on)}
SRC=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
MOCK_PID=
cleanup() {
  [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
TOPIC=bench
PARTS=16
# The broker reads commands on stdin and answers on stdout: two FIFOs held open by this shell
# (fd 7 to it, fd 8 from it), so command substitutions can use them too.
mkfifo "$W/in" "$W/out"
"$B/tests/kafka/mock-kafka" -p "$PARTS" "$TOPIC" < "$W/in" > "$W/out" &
MOCK_PID=$!
exec 7> "$W/in" 8< "$W/out"
read -r BROKERS <&8
mock() { echo "$*" >&7; local line; read -r line <&8; echo "$line"; }
sum() { tr ' ' '\n' | sed -n 's/^[0-9]*=//p' | awk '{s+=$1} END {print s+0}'; }

# ~250-byte JSON events (the value is not parsed on this path).
python3 - "$N" > "$W/events" <<'P'
import sys, random
r = random.Random(42)
types = ["page_view", "add_to_cart", "purchase", "payment_failed", "refund"]
for i in range(int(sys.argv[1])):
    print('{"event_id":"evt-%012d","event_type":"%s","user_id":"user-%05d","session_id":"sess-%07d",'
          '"product_id":"sku-%05d","quantity":%d,"amount":%d.%02d,"currency":"USD","payment_method":"card",'
          '"ts":"2026-05-01T10:00:%02d.%03dZ","pad":"%s"}' % (i, r.choice(types), r.randrange(50000),
          r.randrange(10**6), r.randrange(20000), 1 + r.randrange(3), r.randrange(500), r.randrange(100),
          r.randrange(60), r.randrange(1000), "x" * 12))
P
kcat -P -b "$BROKERS" -t "$TOPIC" -z lz4 -l "$W/events"
END=$(mock end "$TOPIC" | sum)
echo "messages: $END in $PARTS partitions (lz4), $(( $(wc -c < "$W/events") / N )) bytes on average"
[ "$END" -eq "$N" ] || { echo "the broker holds $END of $N messages (retention): use fewer"; exit 1; }

cpu_of() { awk '{printf "%.3f", $1 + $2}' "$1"; }
run_kcat() {
  /usr/bin/time -o "$W/t" -f "%U %S" kcat -C -b "$BROKERS" -t "$TOPIC" -o beginning -e -q > /dev/null
  cpu_of "$W/t"
}
run_sluice() { # a new group each run, so it reads from the start
  local g=g$1
  cat > "$W/p.yaml" <<EOF
pipeline: kafka-null
batch_size: 1024
commit_interval: 100ms
stages:
  - {name: in, use: kafka-source, with: {brokers: "$BROKERS", topics: [$TOPIC], group: $g, start: earliest}}
  - {name: out, use: null-sink}
EOF
  SLUICE_LOG_LEVEL=warn SLUICE_PLUGIN_PATH="$B/plugins:$B/bench/stages" \
    /usr/bin/time -o "$W/t" -f "%U %S" "$B/host/sluice" run --no-rest "$W/p.yaml" > "$W/log" 2>&1 &
  local pid=$! done=0
  for _ in $(seq 1 1200); do
    done=$(mock committed "$g" "$TOPIC" | sum)
    [ "$done" -ge "$N" ] && break
    sleep 0.1
  done
  pkill -TERM -P "$pid" 2>/dev/null || true # /usr/bin/time's child: sluice
  wait "$pid" || true
  [ "$done" -ge "$N" ] || { echo "sluice consumed $done of $N" >&2; cat "$W/log" >&2; exit 1; }
  cpu_of "$W/t"
}
k=() s=()
for r in $(seq 1 "$RUNS"); do
  k+=("$(run_kcat)")
  s+=("$(run_sluice "$r")")
  echo "run $r: kcat ${k[-1]} CPU-s, sluice ${s[-1]} CPU-s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mk=$(median "${k[@]}") ms=$(median "${s[@]}")
awk -v k="$mk" -v s="$ms" -v n="$N" 'BEGIN {
  printf "median CPU-s per million messages: kcat %.2f, sluice %.2f; sluice/kcat %.2f\n", k * 1e6 / n, s * 1e6 / n, s / k }'
mock quit > /dev/null || true
