#!/bin/bash
# bench/pg-sink.sh [EVENTS] [RUNS] [WRITERS…] — one file-source → pg-sink task into events_clean
# (on_conflict: ignore) on a throwaway PostgreSQL 15 (fsync on), at each `writers:` count
# (default 1 2 4), against psql doing pg-sink's SQL path with the SAME rows: COPY into a temp
# table + INSERT … ON CONFLICT DO NOTHING in one transaction (and plain COPY for reference).
#
# The events carry random UUID v4 event_ids, like sluice-gen's: sequential keys (e0, e1, …)
# append to the right edge of the primary-key index and flatter whoever writes them. The psql
# baseline reads back exactly the rows pg-sink wrote (all 12 columns, in arrival order), so both
# sides insert identical rows in the same order into an empty table.
#
# RUNS rounds, each: psql, then sluice at every writers count (alternating, so a noisy
# neighbour hurts both alike); prints every run, then medians and ratios to psql. Figures only;
# never fails on time.
set -eu
N=${1:-1000000}
RUNS=${2:-3}
shift $(($# > 2 ? 2 : $#))
WRITERS=${*:-1 2 4}
SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=${SLUICE_BIN:-$BUILD/host/sluice}
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-$BUILD/plugins}
W=$(mktemp -d /tmp/pg-bench.XXXXXX)
. "$SRC/tests/lib/pgtmp.sh"
PGTMP_ON_EXIT='rm -rf "$W"'
PGTMP_FSYNC=on pgtmp_start >/dev/null
cd "$W"

# ~250-byte events with random (seeded) UUID v4 ids.
awk -v n="$N" 'BEGIN {
    srand(42); split("page_view add_to_cart purchase payment_failed refund", types, " ");
    for (i = 0; i < n; i++) {
        id = sprintf("%08x-%04x-4%03x-%04x-%04x%08x", int(rand() * 4294967296), int(rand() * 65536),
                     int(rand() * 4096), 32768 + int(rand() * 16384), int(rand() * 65536),
                     int(rand() * 4294967296))
        t = types[i % 5 + 1]; ts = sprintf("2024-05-01T12:%02d:%02dZ", (i / 60) % 60, i % 60)
        printf "{\"event_id\":\"%s\",\"event_type\":\"%s\",\"user_id\":\"u-%06d\",\"session_id\":\"s-%06d\",\"product_id\":\"p-%05d\",\"quantity\":%d,\"amount\":%.2f,\"currency\":\"USD\",\"payment_method\":\"card\",\"ts\":\"%s\"}\n",
            id, t, int(rand() * 100000), int(rand() * 1000000), int(rand() * 10000), i % 5 + 1,
            int(rand() * 100000) / 100, ts
    }
}' >events.ndjson
echo "events: $N, $(($(stat -c %s events.ndjson) / N)) bytes each on average; $RUNS rounds, writers: $WRITERS"

cols="event_id, event_type, user_id, session_id, product_id, quantity, amount, currency, payment_method, ts, kafka_partition, kafka_offset"
pipeline() { # WRITERS
    cat <<YAML
pipeline: pg-bench
stages:
  - {name: in, use: file-source, with: {path: events.ndjson, offset_file: ""}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      writers: $1
      tables:
        "*":
          table: events_clean
          conflict: [event_id]
          on_conflict: ignore
          columns: {event_id: event_id, event_type: event_type, user_id: user_id,
                    session_id: session_id, product_id: product_id, quantity: quantity,
                    amount: amount, currency: currency, payment_method: payment_method, ts: ts,
                    kafka_partition: \$partition, kafka_offset: \$offset}
YAML
}
now() { date +%s.%N; }
fresh() { pgtmp_psql -q -c "TRUNCATE events_clean, sluice_offsets"; }
# prints rows/s of one run and appends it to results.NAME
record() { # NAME ROWS T0 T1
    awk -v n="$2" -v a="$3" -v b="$4" 'BEGIN { printf "%.0f\n", n / (b - a) }' | tee -a "results.$1"
}
run_sluice() { # WRITERS
    pipeline "$1" >p.yaml
    fresh
    local t0 t1 rows
    t0=$(now)
    "$SLUICE" run --no-rest p.yaml 2>>sluice.log
    t1=$(now)
    rows=$(pgtmp_psql -c "SELECT count(*) FROM events_clean")
    [ "$rows" = "$N" ] || echo "pg-sink writers $1: $rows rows, expected $N" >&2
    printf 'pg-sink writers %s: ' "$1"; record "w$1" "$rows" "$t0" "$t1"
}
run_psql() {
    fresh
    local t0 t1
    t0=$(now)
    pgtmp_psql -q -c "CREATE TEMP TABLE stg AS SELECT $cols FROM events_clean WITH NO DATA" \
        -c "BEGIN" -c "\\copy stg ($cols) FROM 'rows.tsv'" \
        -c "INSERT INTO events_clean ($cols) SELECT $cols FROM stg ON CONFLICT (event_id) DO NOTHING" \
        -c "COMMIT"
    t1=$(now)
    printf 'psql COPY → temp + INSERT … ON CONFLICT: '; record psql "$N" "$t0" "$t1"
}

# The baseline's rows: exactly what one pg-sink run wrote.
run_sluice 1 >/dev/null
pgtmp_psql -c "\\copy (SELECT $cols FROM events_clean ORDER BY kafka_offset) TO 'rows.tsv'"
rm -f results.*
for r in $(seq "$RUNS"); do
    echo "-- round $r"
    run_psql
    for w in $WRITERS; do run_sluice "$w"; done
done
fresh
t0=$(now)
pgtmp_psql -c "\\copy events_clean ($cols) FROM 'rows.tsv'"
t1=$(now)
printf 'psql plain COPY into events_clean (reference, once): '; record copy "$N" "$t0" "$t1"

median() { sort -n "results.$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p=$(median psql)
echo "== medians of $RUNS alternating rounds, $N rows (2-core machine shared with other work: noisy)"
printf '%-44s %8.0f rows/s\n' "psql COPY → temp + INSERT … ON CONFLICT" "$p"
for w in $WRITERS; do
    m=$(median "w$w")
    printf '%-44s %8.0f rows/s  %.2f × psql\n' "pg-sink, one task, writers: $w" "$m" "$(awk -v a="$m" -v b="$p" 'BEGIN { print a / b }')"
done
