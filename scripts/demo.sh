#!/bin/bash
# README command 1: install what is missing, build, and run the e-commerce demo:
#   a throwaway PostgreSQL 15 (user app, database realtime, loopback, temp dir),
#   sluice with the embedded Kafka broker running the ingest and analytics pipelines,
#   sluice-gen generating events, and the dashboard.
# Prints what runs and where, then one line of live figures every few seconds. Ctrl-C stops
# everything and removes the temp dirs.
#   --keep          keep the database directory (printed) instead of removing it
#   --for SECONDS   stop by itself after that long (used by the test suite)
#   --rate N        generator rate in events/s (default 200)
#   --check         before stopping, count the rows of every table; exit 1 if one is empty
#   --no-build      skip installing and building; use $SLUICE_BUILD_DIR (default build/)
#   --kafka real    run on a real Apache Kafka broker (scripts/kafka.sh: fetched with Maven on
#                   first use, started in the temp dir, stopped at the end) instead of the
#                   embedded one
#   --kafka HOST:PORT[,...]  use an existing cluster (topics events_raw and events_dlq must
#                   exist or be auto-created)
set -uo pipefail
cd "$(dirname "$0")/.."
KEEP=0; FOR=0; RATE=200; CHECK=0; BUILD_STEP=1; KAFKA=embedded
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1 ;;
    --for) FOR=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --check) CHECK=1 ;;
    --no-build) BUILD_STEP=0 ;;
    --kafka) KAFKA=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$BUILD_STEP" = 1 ]; then
  bash scripts/deps.sh || exit 1
  bash scripts/build.sh || { echo "demo: build failed" >&2; exit 1; }
fi
B=${SLUICE_BUILD_DIR:-build}

RUN=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()
RC=0
# Rows in every table the reference application writes (for --check).
check_tables() {
  local t n
  for t in events_clean events_rejected kpi_1m kpi_15m kpi_1h kpi_24h sluice_offsets; do
    n=$(psql "$PG_DSN" -XAtq -c "SELECT count(*) FROM $t" 2>/dev/null)
    echo "demo: table $t: ${n:-?} rows"
    [ "${n:-0}" -gt 0 ] || RC=1
  done
}
stop_all() {
  trap - INT TERM EXIT
  [ "$CHECK" = 1 ] && check_tables
  echo; echo "demo: stopping…"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ "$KAFKA" = real ] && [ -f "$RUN/kafka/cluster.env" ] && bash scripts/kafka.sh stop --dir "$RUN/kafka"
  if [ "$KEEP" = 1 ]; then
    echo "demo: kept the database in $PGTMP_DIR and logs in $RUN"
    PGTMP_KEEP=1
  fi
  pgtmp_stop 2>/dev/null
  [ "$KEEP" = 1 ] || rm -rf "$RUN"
  echo "demo: stopped"
  exit "$RC"
}
trap stop_all INT TERM EXIT

# shellcheck source=../tests/lib/pgtmp.sh
. tests/lib/pgtmp.sh
[ "$KEEP" = 1 ] && export PGTMP_KEEP=1
pgtmp_start || { echo "demo: PostgreSQL did not start" >&2; exit 1; }
trap stop_all INT TERM EXIT   # pgtmp_start sets its own EXIT trap; ours calls pgtmp_stop

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GEN_PORT=$(free_port)
REST_PORT=${SLUICE_REST_PORT:-8083}
export GEN_URL="http://127.0.0.1:$GEN_PORT"

"$B/tools/sluice-gen/sluice-gen" --listen "127.0.0.1:$GEN_PORT" --rate "$RATE" --cors-origin "http://127.0.0.1:$REST_PORT" --cors-origin "http://localhost:$REST_PORT" >"$RUN/gen.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -sf "$GEN_URL/gen/stats" >/dev/null && break; sleep 0.1; done

HOST_CONFIG=pipelines/sluice.yaml
if [ "$KAFKA" != embedded ]; then
  if [ "$KAFKA" = real ]; then
    echo "demo: starting Apache Kafka (scripts/kafka.sh; the first run fetches it with Maven)…"
    KAFKA_BROKERS=$(bash scripts/kafka.sh start --dir "$RUN/kafka" | sed -n 's/^KAFKA_BROKERS=//p')
    [ -n "$KAFKA_BROKERS" ] || { echo "demo: Kafka did not start" >&2; RC=1; stop_all; }
    for t in events_raw events_dlq; do
      bash scripts/kafka.sh topic "$t" --partitions 16 --dir "$RUN/kafka" 2>/dev/null || { RC=1; stop_all; }
    done
  else
    KAFKA_BROKERS=$KAFKA
  fi
  export KAFKA_BROKERS
  # The same host config without its embedded broker: the pipelines read ${KAFKA_BROKERS}.
  HOST_CONFIG=$RUN/sluice.yaml
  sed -e '/^kafka:$/,/^$/d' -e "s#^  - ecommerce-#  - $PWD/pipelines/ecommerce-#" \
      -e "s#root: ../web/dist#root: $PWD/web/dist#" pipelines/sluice.yaml >"$HOST_CONFIG"
fi

"$B/host/sluice" run -c "$HOST_CONFIG" --rest "127.0.0.1:$REST_PORT" >"$RUN/sluice.log" 2>&1 &
pids+=($!)
brokers=${KAFKA_BROKERS:-}
for _ in $(seq 100); do
  [ -n "$brokers" ] && break
  brokers=$(grep -o 'embedded Kafka[^;]* at [^;]*' "$RUN/sluice.log" | sed 's/.* at //' | head -1)
  sleep 0.1
done

cat <<INFO

  sluice demo is running
  ──────────────────────
  dashboard        http://127.0.0.1:$REST_PORT/ui/?token=$("$B/host/sluice" token -c pipelines/sluice.yaml)
  generator UI     http://127.0.0.1:$REST_PORT/ui/generator.html
  generator API    $GEN_URL/gen/stats
  REST API         http://127.0.0.1:$REST_PORT/connectors?expand=status
  metrics          http://127.0.0.1:$REST_PORT/metrics
  $(printf '%-16s' "Kafka ($([ "$KAFKA" = embedded ] || [ "$KAFKA" = real ] && echo "$KAFKA" || echo given))") ${brokers:-see $RUN/sluice.log}     e.g. kcat -b ${brokers:-ADDR} -t events_raw -C -c 5
  PostgreSQL       psql "$PG_DSN" -c "SELECT event_type, count(*) FROM events_clean GROUP BY 1"
  logs             $RUN/sluice.log, $RUN/gen.log

  Ctrl-C stops everything.
INFO

q() { psql "$PG_DSN" -XAtq -F ' ' -c "$1" 2>/dev/null; }
start=$(date +%s); last_n=0; last_t=$start
while :; do
  sleep 5
  now=$(date +%s)
  n=$(q "SELECT count(*) FROM events_clean"); n=${n:-0}
  rate=$(( (n - last_n) / (now - last_t > 0 ? now - last_t : 1) ))
  last_n=$n; last_t=$now
  read -r orders gmv success <<<"$(q "SELECT coalesce(sum(orders),0), coalesce(sum(gmv),0), coalesce(round(100.0*sum(orders)/nullif(sum(orders)+sum(payment_failed),0),1)::text,'-') FROM kpi_1m_total WHERE window_start = date_trunc('minute', now())")"
  rejected=$(q "SELECT count(*) FROM events_rejected")
  lag=$(curl -sf "http://127.0.0.1:$REST_PORT/metrics" 2>/dev/null | awk '/^sluice_consumer_lag[{ ]/ {s+=$NF} END {print s+0}')
  printf '%s  events/s %-6s orders(min) %-5s GMV(min) %-10s success %s%%  rejected %-5s lag %s\n' \
    "$(date +%H:%M:%S)" "$rate" "${orders:-0}" "${gmv:-0}" "${success:--}" "${rejected:-0}" "${lag:-?}"
  if [ "$FOR" -gt 0 ] && [ $((now - start)) -ge "$FOR" ]; then stop_all; fi
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "demo: a process died; see $RUN"; tail -5 "$RUN/sluice.log"; KEEP=1; RC=1; stop_all; }; done
done
