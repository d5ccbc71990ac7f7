# tests/lib/pgtmp.sh — a throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
# Source it from bash, then:
#   pgtmp_start      initdb into a temp dir, start postgres on a free 127.0.0.1 port, create role
#                    `app` and database `realtime`, load pipelines/sql/schema.sql, export PG_DSN,
#                    PGHOST, PGPORT, PGUSER, PGDATABASE; stops and removes itself on EXIT.
#   pgtmp_restart    `pg_ctl restart -m fast` (same port, same data)
#   pgtmp_stop       stop and rm -rf (idempotent; also run from the EXIT trap)
#   pgtmp_psql ...   psql as app on realtime: unaligned, tuples only, stops on the first error
#
# Knobs (environment, read by pgtmp_start):
#   PGTMP_BIN     PostgreSQL binaries (default /usr/lib/postgresql/15/bin; /usr/local/bin may hold
#                 other builds, so never rely on PATH)
#   PGTMP_SCHEMA  SQL file loaded into realtime as app (default pipelines/sql/schema.sql;
#                 "none" loads nothing)
#   PGTMP_FSYNC   "on" keeps fsync (benchmarks); default off: a test cluster never needs to survive
#                 an OS crash, and fsync=off makes it start and load faster
#   PGTMP_ON_EXIT a command the EXIT trap runs before stopping the cluster (your own cleanup)
#
# Works as root on a fresh Debian 12: postgres refuses to run as root, so the cluster belongs to
# the `postgres` system user (from the postgresql package) or, failing that, `nobody`.

PGTMP_BIN=${PGTMP_BIN:-/usr/lib/postgresql/15/bin}
PGTMP_DIR=
PGTMP_PORT=
PGTMP_USER=

_pgtmp_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Run a command as the cluster's owner (as ourselves when we are not root), from a directory it
# can enter so initdb/pg_ctl do not complain about the caller's cwd.
# (The owner is read from the directory so that a child process that only inherited PGTMP_DIR,
# say a helper script of a test, can restart the cluster too.)
_pgtmp_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$PGTMP_DIR" && runuser -u "${PGTMP_USER:-$(stat -c %U "$PGTMP_DIR")}" -- "$@")
    else
        (cd "$PGTMP_DIR" && "$@")
    fi
}

# A loopback port nobody listens on now. Racy by nature; pgtmp_start retries on a clash.
_pgtmp_free_port() {
    local port i
    for i in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

pgtmp_psql() {
    PGOPTIONS="-c client_min_messages=warning" "$PGTMP_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$PGTMP_PORT" -U app -d realtime "$@"
}

_pgtmp_on_exit() {
    local rc=$?
    if [ -n "${PGTMP_ON_EXIT:-}" ]; then eval "$PGTMP_ON_EXIT" || true; fi
    pgtmp_stop
    exit "$rc"
}

pgtmp_start() {
    local schema=${PGTMP_SCHEMA:-$_pgtmp_here/../../pipelines/sql/schema.sql}
    local fsync=${PGTMP_FSYNC:-off} attempt

    if [ ! -x "$PGTMP_BIN/initdb" ]; then
        echo "pgtmp: $PGTMP_BIN/initdb not found (apt-get install postgresql-15)" >&2
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        if id postgres >/dev/null 2>&1; then PGTMP_USER=postgres; else PGTMP_USER=nobody; fi
    else
        PGTMP_USER=$(id -un)
    fi

    PGTMP_DIR=$(mktemp -d /tmp/pgtmp.XXXXXX) || return 1
    trap _pgtmp_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [ "$(id -u)" -eq 0 ]; then chown "$PGTMP_USER" "$PGTMP_DIR"; fi
    chmod 700 "$PGTMP_DIR"

    # trust auth is fine: the server listens only on 127.0.0.1 and a socket in our private dir.
    if ! _pgtmp_as_owner "$PGTMP_BIN/initdb" -D "$PGTMP_DIR/data" -U postgres --auth=trust \
            -E UTF8 --no-locale --no-sync >"$PGTMP_DIR/initdb.log" 2>&1; then
        cat "$PGTMP_DIR/initdb.log" >&2
        return 1
    fi

    for attempt in 1 2 3 4 5; do
        PGTMP_PORT=$(_pgtmp_free_port) || return 1
        if _pgtmp_as_owner "$PGTMP_BIN/pg_ctl" -D "$PGTMP_DIR/data" -l "$PGTMP_DIR/server.log" \
                -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PGTMP_PORT \
                -c unix_socket_directories=$PGTMP_DIR -c fsync=$fsync \
                -c full_page_writes=$fsync -c max_connections=50" start >/dev/null; then
            break
        fi
        PGTMP_PORT=
    done
    if [ -z "$PGTMP_PORT" ]; then
        echo "pgtmp: postgres did not start; log:" >&2
        cat "$PGTMP_DIR/server.log" >&2
        return 1
    fi

    "$PGTMP_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGTMP_PORT" -U postgres \
        -d postgres -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE realtime OWNER app" || return 1

    export PGHOST=127.0.0.1 PGPORT=$PGTMP_PORT PGUSER=app PGDATABASE=realtime
    export PG_DSN="host=127.0.0.1 port=$PGTMP_PORT user=app dbname=realtime"
    export PGTMP_DIR PGTMP_PORT PGTMP_USER

    if [ "$schema" != none ]; then
        pgtmp_psql -f "$schema" || return 1
    fi
}

pgtmp_restart() {
    _pgtmp_as_owner "$PGTMP_BIN/pg_ctl" -D "$PGTMP_DIR/data" -l "$PGTMP_DIR/server.log" \
        -m fast -w -t 60 restart >/dev/null
}

pgtmp_stop() {
    [ -n "$PGTMP_DIR" ] || return 0
    if [ -f "$PGTMP_DIR/data/postmaster.pid" ]; then
        _pgtmp_as_owner "$PGTMP_BIN/pg_ctl" -D "$PGTMP_DIR/data" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    # PGTMP_KEEP=1 (the demo's --keep) leaves the data directory for a later look.
    [ "${PGTMP_KEEP:-0}" = 1 ] || rm -rf "$PGTMP_DIR"
    PGTMP_DIR=
}
