#!/bin/bash
# Autoscaling: a burst into a 4-partition topic outpaces a slow 1-task consumer with
# tasks: {min: 1, max: 3}; the supervisor adds a task (lag grew, tasks busy), and once the
# backlog is gone removes it again (lag near zero). Nothing is lost: every record arrives.
. "$SLUICE_SOURCE_DIR/tests/rest/restlib.sh"
cd "$T"
mkdir pl
seq 1 12000 | awk '{print "{\"n\":" $1 "}"}' > in.ndjson
cat > host.yaml <<'Y'
kafka: {embedded: {partitions: 4, topics: [burst]}}
rest: {listen: "127.0.0.1:0", autoscale: {window: 3s, interval: 1s, lag_low: 0}}
Y
# The producer is paced (~2000 records/s); one consumer task does ~400 records/s.
cat > pl/produce.yaml <<Y
pipeline: produce
batch_size: 100
stages:
  - {name: in, use: file-source, with: {path: $T/in.ndjson}}
  - {name: pace, use: chaos, with: {delay: 50ms}}
  - {name: out, use: kafka-sink, with: {brokers: "\${KAFKA_BROKERS}", topic: burst}}
Y
# A short session timeout: after a rescale the new members rebalance quickly.
cat > pl/consume.yaml <<Y
pipeline: consume
tasks: {min: 1, max: 3}
batch_size: 20
stages:
  - name: in
    use: kafka-source
    with: {brokers: "\${KAFKA_BROKERS}", topics: [burst], group: scale,
           rdkafka: {session.timeout.ms: "6000", heartbeat.interval.ms: "500"}}
  - {name: slow, use: chaos, with: {delay: 50ms}}
  - {name: out, use: file-sink, with: {path: $T/out.ndjson}}
Y
start_sluice log.txt -c host.yaml pl

# wait_long SECONDS CMD... — like wait_for, with a longer (still finite) bound.
wait_long() { local i n=$(($1 * 10)); shift; for i in $(seq 1 $n); do "$@" && return 0; sleep 0.1; done; return 1; }
tasks_is() { curl -s "$BASE/metrics" | grep -q "^sluice_pipeline_tasks{pipeline=\"consume\"} $1\$"; }

wait_long 90 grep -q 'pipeline consume: scaling from 1 to 2 tasks' log.txt || fail "no scale-up"
ok "scaled up when lag grew: $(grep -o 'scaling from 1 to 2 tasks.*' log.txt | head -1)"
wait_long 30 tasks_is 2 || fail "metrics do not show 2 tasks"
ok "sluice_pipeline_tasks shows the new task count"
wait_long 30 sh -c "curl -s $BASE/connectors/consume/status | grep -q '\"tasks\":\[{\"id\":0.*{\"id\":1'" || fail "status does not show 2 tasks"
ok "status shows two tasks"
wait_long 120 grep -q 'pipeline consume: scaling from 2 to 1 tasks' log.txt || fail "no scale-down"
ok "scaled down when lag stayed near zero"
wait_long 60 lines_eq out.ndjson 12000 || [ "$(sort -u out.ndjson | wc -l)" -eq 12000 ] || fail "records lost: $(sort -u out.ndjson | wc -l) of 12000"
sort -u out.ndjson > got.txt; sort -u in.ndjson > want.txt
assert_file_eq got.txt want.txt "nothing lost across the rescaling"
# The running child reports lag (its source's partition ends, about once a second): after the
# last rescale's restart it takes a moment to appear.
lag_metric() { curl -s "$BASE/metrics" | grep -q 'sluice_consumer_lag{pipeline="consume",topic="burst",partition="0"}'; }
wait_long 30 lag_metric || fail "no lag metric"
ok "consumer lag is exported per partition"
stop_sluice
echo "all autoscaling checks passed ($CHECKS)"
