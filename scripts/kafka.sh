#!/bin/bash
# A throwaway Apache Kafka cluster (KRaft, every node broker + controller) on loopback, for
# tests, benchmarks, the chaos run and the demo.
#
#   kafka.sh start [--brokers N] [--dir DIR] [--listen IP]
#                                                  start N nodes; prints KAFKA_BROKERS=h:p,...
#                                                  (clients connect to IP, default 127.0.0.1:
#                                                  e.g. a bridge the test's network namespaces
#                                                  reach; the controllers stay on 127.0.0.1)
#   kafka.sh topic NAME --partitions N [--replication R] [--config k=v ...] --dir DIR
#   kafka.sh stop --dir DIR                        stop every node (SIGTERM, SIGKILL after 30 s)
#   kafka.sh env --dir DIR                         print KAFKA_BROKERS=... again
#   kafka.sh kill-broker ID... --dir DIR           kill -9 nodes (IDs 1..N)
#   kafka.sh stop-broker ID... --dir DIR           SIGTERM nodes and wait for them to exit
#   kafka.sh start-broker ID... --dir DIR          restart nodes and wait until they serve
#                                                  (restart a majority of the controllers
#                                                  together: a lone one waits for a quorum)
#   kafka.sh pid ID --dir DIR                      print node ID's JVM pid
#   kafka.sh leaders TOPIC --dir DIR               print "PARTITION LEADER_ID" lines
#   kafka.sh delete-records TOPIC PARTITION OFFSET --dir DIR
#                                                  delete the partition's records before OFFSET
#                                                  (what retention does; tests offset resets)
#   kafka.sh fetch                                 only fetch the jars (cache)
#
# The broker jars (org.apache.kafka:kafka_2.13 and kafka-tools, pinned below, with their runtime
# dependencies) come from Maven Central through `mvn dependency:copy-dependencies`, cached in
# ${SLUICE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/sluice}/kafka-VERSION. Without --dir, start makes a
# temp dir and prints KAFKA_DIR=... too. Every JVM is stopped by the pid recorded in DIR/node-ID/pid.
set -euo pipefail

KAFKA_VERSION=4.1.1
LOG4J_VERSION=2.24.3
CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}/kafka-$KAFKA_VERSION"
LIBS="$CACHE/libs"
# Small heaps, one GC thread and the C1 compiler only: a node starts in seconds and stays near
# 300-400 MB RSS, which matters on a 2-core machine running several of them.
JVM_OPTS=(-Xms${KAFKA_HEAP:-256m} -Xmx${KAFKA_HEAP:-256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1
          -XX:MaxDirectMemorySize=128m -Xss512k -Djava.awt.headless=true)

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v mvn >/dev/null || die "maven is missing (scripts/deps.sh installs it)"
  command -v java >/dev/null || die "java is missing (scripts/deps.sh installs default-jre-headless)"
  mkdir -p "$CACHE"
  # Parallel tests may fetch at the same time: one does, the others wait and find it done.
  exec 9>"$CACHE/.fetch.lock"
  flock 9
  [ -f "$LIBS/.complete" ] && { exec 9>&-; return 0; }
  local pomdir; pomdir=$(mktemp -d "$CACHE/pom.XXXXXX")
  cat >"$pomdir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluice</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS" >&2
  rm -rf "$LIBS.tmp"
  (cd "$pomdir" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIBS.tmp" >&2) || { rm -rf "$pomdir" "$LIBS.tmp"; die "maven fetch failed"; }
  rm -rf "$pomdir" "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  touch "$LIBS/.complete"
  exec 9>&-
}

classpath() { local IFS=:; local jars=("$LIBS"/*.jar); echo "${jars[*]}"; }

free_port() { python3 -c 'import socket, sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "${1:-127.0.0.1}"; }

# log4j2 configuration: warnings to the node's server.log, plus the lines that say it started.
write_log4j() {
  cat >"$1" <<'EOF'
status = error
appender.f.type = File
appender.f.name = F
appender.f.fileName = ${sys:kafka.logs.dir}/server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.f.ref = F
logger.k.name = kafka.server.KafkaRaftServer
logger.k.level = INFO
logger.b.name = kafka.server.BrokerServer
logger.b.level = INFO
EOF
}

need_dir() { [ -n "${DIR:-}" ] || die "--dir DIR is required"; [ -f "$DIR/cluster.env" ] || die "$DIR: no cluster (cluster.env missing)"; }

load() { need_dir; # shellcheck disable=SC1091
  . "$DIR/cluster.env"; }

node_pid() { cat "$DIR/node-$1/pid" 2>/dev/null || true; }

node_alive() { local p; p=$(node_pid "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

launch() {  # ID: start the node's JVM in its own session, record its pid
  local n="$DIR/node-$1"
  # shellcheck disable=SC2086
  setsid java "${JVM_OPTS[@]}" -Dkafka.logs.dir="$n" -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
    -cp "$(classpath)" kafka.Kafka "$n/server.properties" >>"$n/stdout.log" 2>&1 </dev/null &
  echo $! >"$n/pid"
}

# wait_ready ID...: each named node answers a metadata request listing every live node.
wait_ready() {
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-120})) id port want
  want=0; for id in $(seq 1 "$BROKERS"); do node_alive "$id" && want=$((want + 1)); done
  for id in "$@"; do
    port=$(sed -n 's/^listeners=PLAINTEXT:\/\/\([0-9.]*:[0-9]*\),.*/\1/p' "$DIR/node-$id/server.properties")
    while :; do
      node_alive "$id" || { tail -20 "$DIR/node-$id/stdout.log" "$DIR/node-$id/server.log" >&2 2>/dev/null; die "node $id exited while starting"; }
      if kcat -b "$port" -L -m 3 2>/dev/null | grep -q "^ $want brokers:"; then break; fi
      [ $SECONDS -lt $deadline ] || die "node $id not ready after ${KAFKA_START_TIMEOUT:-120} s (see $DIR/node-$id)"
      sleep 0.3
    done
  done
}

cmd_start() {
  local brokers=1 ip=127.0.0.1
  while [ $# -gt 0 ]; do
    case "$1" in
      --brokers) brokers="$2"; shift 2 ;;
      --listen) ip="$2"; shift 2 ;;
      --dir) DIR="$2"; shift 2 ;;
      *) die "start: unknown argument $1" ;;
    esac
  done
  [[ "$brokers" =~ ^[1-9]$ ]] || die "--brokers must be 1..9"
  [[ "$ip" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--listen takes an IPv4 address"
  fetch
  local made=""
  if [ -z "${DIR:-}" ]; then DIR=$(mktemp -d /tmp/sluice-kafka.XXXXXX); made=1; fi
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
  [ -f "$DIR/cluster.env" ] && die "$DIR already holds a cluster (stop it first)"
  local t0=$SECONDS i rf voters="" bootstrap="" cluster_id
  rf=$((brokers < 3 ? brokers : 3))
  declare -a bport cport
  for i in $(seq 1 "$brokers"); do
    bport[$i]=$(free_port "$ip"); cport[$i]=$(free_port)
    voters+="${voters:+,}$i@127.0.0.1:${cport[$i]}"
    bootstrap+="${bootstrap:+,}$ip:${bport[$i]}"
  done
  cluster_id=$(python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  write_log4j "$DIR/log4j2.properties"
  for i in $(seq 1 "$brokers"); do
    local n="$DIR/node-$i"; mkdir -p "$n/data"
    cat >"$n/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$ip:${bport[$i]},CONTROLLER://127.0.0.1:${cport[$i]}
advertised.listeners=PLAINTEXT://$ip:${bport[$i]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$n/data
# Few threads and small buffers: several nodes share 2 cores and small heaps.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
offsets.topic.num.partitions=8
offsets.topic.replication.factor=$rf
transaction.state.log.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=1
# Tests start consumers right away: no 3 s wait before the first group rebalance.
group.initial.rebalance.delay.ms=0
default.replication.factor=$rf
num.partitions=4
EOF
    java "${JVM_OPTS[@]}" -Dlog4j2.configurationFile="$DIR/log4j2.properties" -Dkafka.logs.dir="$n" \
      -cp "$(classpath)" kafka.tools.StorageTool format -t "$cluster_id" -c "$n/server.properties" \
      >"$n/format.log" 2>&1 || { cat "$n/format.log" >&2; die "formatting node $i failed"; }
  done
  { echo "BROKERS=$brokers"; echo "KAFKA_BROKERS=$bootstrap"; echo "CLUSTER_ID=$cluster_id"; } >"$DIR/cluster.env"
  BROKERS=$brokers
  for i in $(seq 1 "$brokers"); do launch "$i"; done
  if ! (wait_ready $(seq 1 "$brokers")); then cmd_stop_dir; exit 1; fi
  echo "kafka.sh: $brokers node(s) ready in $((SECONDS - t0)) s (dir $DIR)" >&2
  [ -n "$made" ] && echo "KAFKA_DIR=$DIR"
  echo "KAFKA_BROKERS=$bootstrap"
}

stop_node() {  # ID SIGNAL
  local p; p=$(node_pid "$1")
  [ -n "$p" ] || return 0
  kill -"$2" "$p" 2>/dev/null || { rm -f "$DIR/node-$1/pid"; return 0; }
  local deadline=$((SECONDS + 30))
  while kill -0 "$p" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -KILL "$p" 2>/dev/null || true; deadline=$((SECONDS + 10)); fi
    sleep 0.1
  done
  rm -f "$DIR/node-$1/pid"
}

cmd_stop_dir() {
  local i pids=()
  # SIGTERM all first so the nodes shut down together (a lone controller waits for a quorum).
  for i in "$DIR"/node-*; do
    local p; p=$(cat "$i/pid" 2>/dev/null || true)
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && pids+=("$p")
  done
  local deadline=$((SECONDS + 30))
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null; do
      [ $SECONDS -ge $deadline ] && { kill -KILL "$p" 2>/dev/null || true; }
      sleep 0.1
    done
  done
  rm -f "$DIR"/node-*/pid
}

parse_dir() { REST=(); while [ $# -gt 0 ]; do case "$1" in --dir) DIR="$2"; shift 2 ;; *) REST+=("$1"); shift ;; esac; done; }

cmd_topic() {
  local name="" parts="" rf="" configs=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --partitions) parts="$2"; shift 2 ;;
      --replication) rf="$2"; shift 2 ;;
      --config) configs+=(--config "$2"); shift 2 ;;
      -*) die "topic: unknown option $1" ;;
      *) [ -z "$name" ] || die "topic: one NAME only"; name="$1"; shift ;;
    esac
  done
  [ -n "$name" ] && [ -n "$parts" ] || die "usage: topic NAME --partitions N [--replication R] [--config k=v] --dir DIR"
  load
  rf=${rf:-$((BROKERS < 3 ? BROKERS : 3))}
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" --create --topic "$name" \
    --partitions "$parts" --replication-factor "$rf" "${configs[@]}" >&2
  # Wait until every partition has a leader in the metadata clients see.
  local deadline=$((SECONDS + 60))
  until [ "$(kcat -b "$KAFKA_BROKERS" -L -t "$name" -m 5 2>/dev/null | grep -c 'partition .*leader [0-9]')" -ge "$parts" ]; do
    [ $SECONDS -lt $deadline ] || die "topic $name: partitions without a leader after 60 s"
    sleep 0.2
  done
}

tool() {  # CLASS ARGS...: one of Kafka's command-line tools, against the cluster
  java "${JVM_OPTS[@]}" -Dlog4j2.configurationFile="$DIR/log4j2.properties" -Dkafka.logs.dir="$DIR" \
    -cp "$(classpath)" "$@"
}

cmd="${1:-}"; [ $# -gt 0 ] && shift
case "$cmd" in
  fetch) fetch; echo "$LIBS" ;;
  start) cmd_start "$@" ;;
  stop) parse_dir "$@"; need_dir; cmd_stop_dir ;;
  env) parse_dir "$@"; load; echo "KAFKA_BROKERS=$KAFKA_BROKERS" ;;
  topic) parse_dir "$@"; cmd_topic "${REST[@]}" ;;
  kill-broker|stop-broker) parse_dir "$@"; load; [ ${#REST[@]} -gt 0 ] || die "$cmd: node id?"
    sig=TERM; [ "$cmd" = kill-broker ] && sig=KILL
    for id in "${REST[@]}"; do [ -d "$DIR/node-$id" ] || die "no node $id"; stop_node "$id" $sig; done ;;
  start-broker) parse_dir "$@"; load; [ ${#REST[@]} -gt 0 ] || die "start-broker: node id?"
    for id in "${REST[@]}"; do
      [ -d "$DIR/node-$id" ] || die "no node $id"
      node_alive "$id" && die "node $id is running"
    done
    for id in "${REST[@]}"; do launch "$id"; done
    wait_ready "${REST[@]}" ;;
  delete-records) parse_dir "$@"; load; [ ${#REST[@]} -eq 3 ] || die "usage: delete-records TOPIC PARTITION OFFSET --dir DIR"
    printf '{"version":1,"partitions":[{"topic":"%s","partition":%d,"offset":%d}]}\n' \
      "${REST[0]}" "${REST[1]}" "${REST[2]}" >"$DIR/delete-records.json"
    tool org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$KAFKA_BROKERS" \
      --offset-json-file "$DIR/delete-records.json" >&2 ;;
  pid) parse_dir "$@"; load; node_pid "${REST[0]:?node id}" ;;
  leaders) parse_dir "$@"; load
    kcat -b "$KAFKA_BROKERS" -L -t "${REST[0]:?topic}" -m 5 | sed -n 's/^ *partition \([0-9]*\), leader \([-0-9]*\),.*/\1 \2/p' ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || [ "$cmd" = help ] || exit 2 ;;
esac
