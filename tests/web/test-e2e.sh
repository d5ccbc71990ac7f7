#!/bin/bash
# End-to-end test of the web UI against the real stack: a throwaway PostgreSQL, sluice-gen, and
# `sluice run -c pipelines/sluice.yaml` (both pipelines, embedded Kafka, REST API, dashboard),
# driven in headless Debian chromium by tests/web/e2e.mjs. Everything listens on loopback ports
# picked here; everything started here is stopped on exit, whatever happens.
#
# Environment (meson sets these): SLUICE_BIN, SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR,
# SLUICE_PLUGIN_PATH. Screenshots go to $SLUICE_BUILD_DIR/screenshots/.
set -euo pipefail

SRC=${SLUICE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SLUICE_BUILD_DIR:-$SRC/build}
SLUICE=${SLUICE_BIN:-$BUILD/host/sluice}
GEN=${SLUICE_GEN:-$BUILD/tools/sluice-gen/sluice-gen}
HOST_CONFIG=${SLUICE_HOST_CONFIG:-$SRC/pipelines/sluice.yaml}   # the demo's host config
export SLUICE_PLUGIN_PATH=${SLUICE_PLUGIN_PATH:-$BUILD/plugins}
export SLUICE_SCREENSHOT_DIR=${SLUICE_SCREENSHOT_DIR:-$BUILD/screenshots}

die() { echo "test-e2e: $*" >&2; exit 1; }
[ -x "$SLUICE" ] || die "sluice not built at $SLUICE"
[ -x "$GEN" ] || die "sluice-gen not built at $GEN"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || die "no chromium (scripts/deps.sh installs Debian's chromium)"
[ -d "$SRC/web/node_modules/playwright-core" ] || die "web/node_modules missing (scripts/deps.sh runs npm ci in web/)"
command -v node >/dev/null || die "node not found"

# The dashboard is served from web/dist: build it when missing or older than its sources.
if [ ! -f "$SRC/web/dist/index.html" ] ||
   [ -n "$(find "$SRC/web/src" "$SRC/web/index.html" "$SRC/web/generator.html" -newer "$SRC/web/dist/index.html" -print -quit)" ]; then
    echo "# building web/dist"
    (cd "$SRC/web" && npm run --silent build >/dev/null) || die "npm run build failed"
fi

free_port() {
    local port i
    for i in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    done
    return 1
}

WORK=$(mktemp -d /tmp/sluice-web-e2e.XXXXXX)
# Its own state directory: the REST token sluice generates, which the dashboard gets the way the
# demo hands it out (/ui/?token=...).
export SLUICE_STATE_DIR="$WORK/state"
GEN_PID= SLUICE_PID= STATUS=1

stop_pid() { # pid name: TERM, wait up to 15 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "# $2 did not stop on SIGTERM within 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$SLUICE_PID" sluice
    stop_pid "$GEN_PID" sluice-gen
    if [ "$STATUS" -ne 0 ]; then
        echo "---- sluice log (last 60 lines) ----" >&2
        tail -n 60 "$WORK/sluice.log" >&2 2>/dev/null || true
        echo "---- sluice-gen log (last 20 lines) ----" >&2
        tail -n 20 "$WORK/gen.log" >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

# pgtmp's EXIT trap runs PGTMP_ON_EXIT first, then removes the cluster.
# shellcheck source=../lib/pgtmp.sh
source "$SRC/tests/lib/pgtmp.sh"
PGTMP_ON_EXIT=cleanup
pgtmp_start

GEN_PORT=$(free_port) || die "no free port"
REST_PORT=$(free_port) || die "no free port"
while [ "$REST_PORT" = "$GEN_PORT" ]; do REST_PORT=$(free_port); done
export GEN_URL="http://127.0.0.1:$GEN_PORT"
export SLUICE_LISTEN="127.0.0.1:$REST_PORT"
export SLUICE_URL="http://$SLUICE_LISTEN"

"$GEN" --listen "127.0.0.1:$GEN_PORT" --seed 7 --rate 100 --cors-origin "$SLUICE_URL" >"$WORK/gen.log" 2>&1 &
GEN_PID=$!
"$SLUICE" run -c "$HOST_CONFIG" --rest "$SLUICE_LISTEN" >"$WORK/sluice.log" 2>&1 &
SLUICE_PID=$!
export SLUICE_PID

export SLUICE_TOKEN
SLUICE_TOKEN=$("$SLUICE" token) || die "sluice token failed"

# Wait (bounded) for both HTTP servers.
for i in $(seq 1 300); do
    if curl -fsS -o /dev/null "$GEN_URL/gen/stats" 2>/dev/null &&
       curl -fsS -o /dev/null "$SLUICE_URL/connectors" 2>/dev/null; then
        break
    fi
    kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice exited during start-up"
    kill -0 "$GEN_PID" 2>/dev/null || die "sluice-gen exited during start-up"
    [ "$i" -lt 300 ] || die "sluice or sluice-gen did not answer within 30 s"
    sleep 0.1
done

set +e
timeout -k 10 420 node "$SRC/tests/web/e2e.mjs"
STATUS=$?
set -e
exit "$STATUS"
