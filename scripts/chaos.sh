#!/bin/bash
# The chaos certificate (docs/guarantees.md): the reference application on a throwaway 3-broker
# Kafka cluster and a throwaway PostgreSQL, under a seeded schedule of faults, checked at the end
# against the generator's own record of every event.
#
#   bash scripts/chaos.sh [--minutes M] [--seed S] [--quick] [--kafka mock|real] [--json FILE]
#                         [--pipelines DIR] [--rate N] [--partitions N] [--tasks N] [--topics 1|2]
#                         [--keep DIR]
#
#   --quick          every fault kind once (host kill -9 twice), a few minutes in all (CI)
#   --minutes M      length of the fault phase of a full run (default 10)
#   --seed S         replay a run: the seed fixes the events, the fault order, targets and timing
#   --kafka real     Apache Kafka 4.x brokers from scripts/kafka.sh (default)
#   --kafka mock     librdkafka's mock cluster (tests/kafka/mock-kafka): no replication, faster
#   --json FILE      the certificate as JSON too
#   --pipelines DIR  your own ecommerce-ingest.yaml / ecommerce-analytics.yaml (and what they
#                    reference) instead of pipelines/; they must write the reference tables
#   --topics 2       (default) the analytics pipeline also reads a second topic fed by a second
#                    generator and ingest pipeline; --topics 1: the files' single topic
#   --no-trigger     no PostgreSQL trigger refusing rows (and no injected rows for it)
#                    after aggregation (an open gap, docs/guarantees.md), so the CI run leaves it out
#   --keep DIR       copy every log, the generator's record and the certificate into DIR
#
# Needs a build (bash scripts/build.sh; SLUICE_BUILD_DIR picks another), PostgreSQL 15, kcat and,
# for --kafka real, Java and Maven (scripts/deps.sh installs them all). Everything listens on
# 127.0.0.1 only; every process is stopped by its pid on exit; a hard time limit (the fault
# phase + 10 minutes) ends a run that hangs. Exit status 0 when every check passed, 1 otherwise.
set -u
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SLUICE_SOURCE_DIR=$SRC
export SLUICE_BUILD_DIR=${SLUICE_BUILD_DIR:-$SRC/build}
export SLUICE_BIN=${SLUICE_BIN:-$SLUICE_BUILD_DIR/host/sluice}
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-$SLUICE_BUILD_DIR/plugins}

minutes=10 quick= keep= kafka=real
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) minutes=$2; shift ;;
        --quick) quick=1 ;;
        --no-trigger) ;;
        --keep) keep=$2; shift ;;
        --kafka) kafka=$2; shift ;;
        --seed|--json|--pipelines|--rate|--partitions|--tasks|--topics) shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "chaos.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
for f in "$SLUICE_BIN" "$SLUICE_BUILD_DIR/tools/sluice-gen/sluice-gen" "$SLUICE_BUILD_DIR/tests/kafka/mock-kafka"; do
    [ -x "$f" ] || { echo "chaos.sh: $f not built (bash scripts/build.sh)" >&2; exit 2; }
done
command -v kcat >/dev/null || { echo "chaos.sh: kcat missing (bash scripts/deps.sh)" >&2; exit 2; }
if [ "$kafka" = real ] && [ ! -f "$SRC/scripts/kafka.sh" ]; then
    echo "chaos.sh: scripts/kafka.sh is missing: use --kafka mock" >&2
    exit 2
fi
[ -n "$quick" ] && minutes=2
limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 600 }')

. "$SRC/tests/lib/pgtmp.sh"
CHAOS_WORK=$(mktemp -d /tmp/sluice-chaos.XXXXXX)
export CHAOS_WORK
DRIVER_PID=
chaos_cleanup() {
    if [ -n "$DRIVER_PID" ]; then
        kill -TERM "$DRIVER_PID" 2>/dev/null
        wait "$DRIVER_PID" 2>/dev/null
    fi
    # the driver stops its cluster; if it was killed before it could, stop it here
    if [ -d "$CHAOS_WORK/kafka" ] && [ -f "$SRC/scripts/kafka.sh" ]; then
        bash "$SRC/scripts/kafka.sh" stop --dir "$CHAOS_WORK/kafka" >/dev/null 2>&1
    fi
    if [ -n "$keep" ]; then
        mkdir -p "$keep" && cp -r "$CHAOS_WORK"/*.log "$CHAOS_WORK"/*.ndjson "$CHAOS_WORK"/*.json \
            "$CHAOS_WORK"/pipelines "$keep"/ 2>/dev/null
        [ -n "${PGTMP_DIR:-}" ] && cp "$PGTMP_DIR/server.log" "$keep/postgresql.log" 2>/dev/null
    fi
    rm -rf "$CHAOS_WORK"
}
PGTMP_ON_EXIT=chaos_cleanup
pgtmp_start >"$CHAOS_WORK/pgtmp.log" 2>&1 || { cat "$CHAOS_WORK/pgtmp.log" >&2; exit 1; }
export PGTZ=UTC

# The driver runs under a hard time limit (SIGTERM, then SIGKILL 30 s later); it stops every
# process it started in its own `finally`, and this script's trap does again what it could not.
timeout --kill-after=30 "$limit" python3 "$SRC/scripts/chaos/run.py" "${args[@]}" &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=
[ "$rc" = 124 ] && echo "chaos.sh: hard time limit of $limit s reached" >&2
exit "$rc"
