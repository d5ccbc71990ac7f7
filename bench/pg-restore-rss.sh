#!/bin/bash
# Peak RSS of a pipeline while pg-sink restores ROWS rows (issue 11 item 3: restore streamed in
# chunks, so memory stays bounded). Figures only; loopback; a throwaway PostgreSQL 15.
#
#   SLUICE_BUILD_DIR=$PWD/build bench/pg-restore-rss.sh [ROWS] [PLUGIN_DIR]
#
# ROWS rows (default 1,000,000) of one partition are put in events_clean; a pipeline
# assign-source -> state-dump (to /dev/null) -> pg-sink with `restore: {time_column: ts}`
# restores them all; the peak RSS of the `sluice run` process tree (getrusage of the waited
# children) is printed. PLUGIN_DIR: another pg-sink build to compare (its other plugins are
# taken from the build dir).
set -u
ROWS=${1:-1000000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
. "$SRC/tests/lib/pgtmp.sh"
WORK=$(mktemp -d /tmp/pg-restore-rss.XXXXXX)
PGTMP_ON_EXIT='rm -rf "$WORK"'
pgtmp_start >"$WORK/pgtmp.log" 2>&1 || { cat "$WORK/pgtmp.log"; exit 1; }
PLUGINS=$BUILD/plugins
if [ -n "${2:-}" ]; then
    mkdir "$WORK/plugins"
    for p in "$BUILD"/plugins/*/*.so; do ln -s "$p" "$WORK/plugins/"; done
    ln -sf "$2/pg-sink.so" "$WORK/plugins/pg-sink.so"
    PLUGINS=$WORK/plugins
fi
pgtmp_psql -c "INSERT INTO events_clean (event_id, event_type, user_id, product_id, amount, ts,
               kafka_topic, kafka_partition, kafka_offset)
               SELECT 'ev-' || i, 'purchase', 'user-' || (i % 9973), 'product-' || (i % 500), 12.34,
                      now() - (i * interval '1 ms'), 'events_raw', 0, i
               FROM generate_series(1, $ROWS) i" >/dev/null
cat >"$WORK/p.yaml" <<YAML
pipeline: restore-rss
stages:
  - {name: in, use: assign-source, with: {partitions: ["0=$ROWS"]}}
  - {name: dump, use: state-dump, with: {path: /dev/null}}
  - name: out
    use: pg-sink
    with:
      dsn: "\${PG_DSN}"
      store_offsets: false
      tables:
        events_raw:
          table: events_clean
          conflict: [event_id]
          columns: {event_id: event_id, event_type: event_type, user_id: user_id, ts: ts,
                    kafka_partition: \$partition, kafka_offset: \$offset}
          restore: {time_column: ts}
YAML
cd "$WORK" || exit 1
python3 - "$BUILD/host/sluice" "$PLUGINS" "$BUILD/tests/pg/stages" "$ROWS" <<'PY'
import resource, subprocess, sys, time, os
sluice, plugins, stages, rows = sys.argv[1:]
env = dict(os.environ, SLUICE_PLUGIN_PATH=plugins, SLUICE_REST_LISTEN="127.0.0.1:0")
t0 = time.monotonic()
r = subprocess.run([sluice, "run", "--no-rest", "--plugin-path", stages, "p.yaml"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
dt = time.monotonic() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
restored = [l for l in r.stderr.splitlines() if "restored" in l]
print(f"rows {rows}: exit {r.returncode}, {dt:.1f} s, peak RSS {rss / 1024:.0f} MiB")
for l in restored: print("  " + l[l.find("msg="):])
PY
