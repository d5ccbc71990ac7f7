#!/bin/bash
# bench/pg-sink.sh [EVENTS] — file-source → pg-sink into events_clean (on_conflict: ignore) on a
# throwaway PostgreSQL 15 (fsync on), printing rows/s; then the same rows by psql: COPY into a
# temp table + INSERT … ON CONFLICT DO NOTHING (pg-sink's SQL path without sluice), and plain COPY.
# Figures only; never fails on time.
set -eu
N=${1:-1000000}
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=${SLUICE_BIN:-$BUILD/host/sluice}
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-$BUILD/plugins}
W=$(mktemp -d /tmp/pg-bench.XXXXXX)
. "$SRC/tests/lib/pgtmp.sh"
PGTMP_ON_EXIT='rm -rf "$W"'
PGTMP_FSYNC=on pgtmp_start >/dev/null
cd "$W"

# ~220-byte events (as tests/pg/pglib.sh's gen_events), and the same rows as COPY text.
awk -v n="$N" 'BEGIN {
    split("page_view add_to_cart purchase payment_failed refund", types, " ");
    for (i = 0; i < n; i++) {
        t = types[i % 5 + 1]; ts = sprintf("2024-05-01T12:%02d:%02dZ", (i / 60) % 60, i % 60)
        printf "{\"event_id\":\"e%d\",\"event_type\":\"%s\",\"user_id\":\"u%d\",\"session_id\":\"s%d\",\"product_id\":\"p%d\",\"quantity\":%d,\"amount\":%.1f,\"currency\":\"USD\",\"payment_method\":\"card\",\"ts\":\"%s\"}\n",
            i, t, i % 997, i % 101, i % 50, i % 5 + 1, (i % 1000) / 10, ts > "events.ndjson"
        printf "e%d\t%s\tu%d\ts%d\tp%d\t%d\t%.1f\tUSD\tcard\t%s\n",
            i, t, i % 997, i % 101, i % 50, i % 5 + 1, (i % 1000) / 10, ts > "events.tsv"
    }
}'
echo "events: $N, $(($(stat -c %s events.ndjson) / N)) bytes each on average"

cat >p.yaml <<'YAML'
pipeline: pg-bench
stages:
  - {name: in, use: file-source, with: {path: events.ndjson, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "${PG_DSN}"
      tables:
        "*":
          table: events_clean
          conflict: [event_id]
          on_conflict: ignore
          columns: {event_id: event_id, event_type: event_type, user_id: user_id,
                    session_id: session_id, product_id: product_id, quantity: quantity,
                    amount: amount, currency: currency, payment_method: payment_method, ts: ts,
                    kafka_partition: $partition, kafka_offset: $offset}
YAML
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f rows/s (%.2f s)", n / (b - a), b - a }'; }
now() { date +%s.%N; }
cols="event_id, event_type, user_id, session_id, product_id, quantity, amount, currency, payment_method, ts"

t0=$(now)
"$SLUICE" run p.yaml 2>sluice.log
t1=$(now)
rows=$(pgtmp_psql -c "SELECT count(*) FROM events_clean")
echo "pg-sink (file-source → pg-sink, batch_size 10000): $rows rows, $(rate "$rows" "$t0" "$t1")"

pgtmp_psql -c "TRUNCATE events_clean"
t0=$(now)
pgtmp_psql -c "CREATE TEMP TABLE stg AS SELECT $cols FROM events_clean WITH NO DATA" \
    -c "BEGIN" -c "\\copy stg ($cols) FROM 'events.tsv'" \
    -c "INSERT INTO events_clean ($cols) SELECT $cols FROM stg ON CONFLICT (event_id) DO NOTHING" -c "COMMIT"
t1=$(now)
echo "baseline psql COPY → temp table + INSERT … ON CONFLICT DO NOTHING, one transaction: $(rate "$N" "$t0" "$t1")"

pgtmp_psql -c "TRUNCATE events_clean"
t0=$(now)
pgtmp_psql -c "\\copy events_clean ($cols) FROM 'events.tsv'"
t1=$(now)
echo "baseline psql plain COPY into events_clean: $(rate "$N" "$t0" "$t1")"
