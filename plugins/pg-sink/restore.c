/*
 * restore.c — pg-sink: state restore on partition assignment (see README.md).
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- state restore on partition assignment ------------------------------------------ */

#define RESTORE_TIMEOUT_MS 60000 /* how long on_assign waits for PostgreSQL */
#define RESTORE_CHUNK 1024       /* state records per api->restore call */

/* The column of t fed from `src` ($partition / $offset); for the partition, else a column
 * named "partition". NULL if none. */
static const column *column_from(const table_spec *t, src_kind src)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (t->cols[c].src == src) return &t->cols[c];
    return src == SRC_PARTITION ? find_column(t, "partition") : NULL;
}

/* Appends `v` as one element of a text[] literal ("…" with \ and " escaped). */
static void put_array_text(buf *b, const char *v)
{
    buf_putc(b, '"');
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') buf_putc(b, '\\');
        buf_putc(b, *v);
    }
    buf_putc(b, '"');
}

/* The (topic, partition, committed offset) triples spec t restores, as three array literals
 * (topics, partitions, offsets). A spec that stores the source topic (a column from $topic, or
 * restore.topic_column) restores every assigned pair, each from its own rows; one keyed by an
 * assigned topic restores that topic's partitions; another (KPI rows: topic kpi_1m) restores
 * every assigned partition, which is only sound while no two assigned topics share a partition
 * number. NULL, or what is wrong. */
static const char *restore_parts(const table_spec *t, bool has_topic_col, const sl_position *parts,
                                 size_t n, buf *tp, buf *ps, buf *cs)
{
    bool keyed = false;
    for (size_t i = 0; i < n; i++) keyed |= parts[i].topic && !strcmp(parts[i].topic, t->topic);
    buf_putc(tp, '{');
    buf_putc(ps, '{');
    buf_putc(cs, '{');
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *topic = parts[i].topic ? parts[i].topic : "";
        if (!has_topic_col && keyed && strcmp(topic, t->topic) != 0) continue;
        for (size_t j = 0; !has_topic_col && !keyed && j < i; j++)
            if (parts[j].partition == parts[i].partition &&
                strcmp(parts[j].topic ? parts[j].topic : "", topic) != 0)
                return "restore: two assigned topics share a partition number, and the table "
                       "does not say which topic a row is of (set restore.topic_column)";
        if (k++) buf_putc(tp, ','), buf_putc(ps, ','), buf_putc(cs, ',');
        put_array_text(tp, topic);
        buf_printf(ps, "%d", (int)parts[i].partition);
        buf_printf(cs, "%lld", (long long)parts[i].offset);
    }
    buf_putc(tp, '}');
    buf_putc(ps, '}');
    buf_putc(cs, '}');
    return NULL;
}

/* The query for the rows of spec t to restore for the assigned partitions (see README), per
 * (topic, partition) a of the assignment:
 *   rows of a's partition (and, with a topic column, of a's topic);
 *   with an $offset column: only offset <= a's committed offset, each record's offset = the
 *   row's; else each record's offset = the position stored in offsets_table for (pipeline,
 *   the spec's topic, partition), -1 if none;
 *   with `within`: only rows whose time_column is within `within` of the newest time_column of
 *   those rows — event time, the data's own clock, not now();
 * ordered by the assignment, then by offset (else time_column). No LIMIT: complete or failing.
 * Result columns: partition, offset, timestamp ms, row as JSON, assignment index, topic. */
static bool restore_sql(pg_sink *s, const table_spec *t, const char *topic_col, buf *sql)
{
    PGconn *c = s->task.conn;
    const column *pcol = column_from(t, SRC_PARTITION), *ocol = column_from(t, SRC_OFFSET);
    const char *tc = t->restore_time_col;
    const column *tcol = tc ? find_column(t, tc) : NULL;
    bool tc_is_time = !tcol || tcol->is_time; /* an unmapped column: assume a timestamp */
    bool ok = true;
    /* the conditions a row of (a.tp, a.p, a.c) meets, on alias x */
#define WHERE_ROWS(x)                                                                        \
    do {                                                                                     \
        buf_puts(sql, " " x ".");                                                           \
        ok = ok && put_ident(c, sql, pcol->name);                                            \
        buf_puts(sql, " = a.p");                                                             \
        if (topic_col) {                                                                     \
            buf_puts(sql, " AND " x ".");                                                   \
            ok = ok && put_ident(c, sql, topic_col);                                         \
            buf_puts(sql, " = a.tp");                                                        \
        }                                                                                    \
        if (ocol) {                                                                          \
            buf_puts(sql, " AND " x ".");                                                   \
            ok = ok && put_ident(c, sql, ocol->name);                                        \
            buf_puts(sql, " <= a.c");                                                        \
        }                                                                                    \
    } while (0)

    /* The newest time per pair first, once per pair (a MATERIALIZED CTE: as a lateral join the
     * planner may re-run the max for every row), then each pair's rows by an index range. */
    buf_puts(sql, "WITH a AS MATERIALIZED (SELECT a.tp, a.p, a.c, a.ord");
    if (tc && t->restore_within_ms) {
        buf_puts(sql, ", (SELECT max(x.");
        ok = ok && put_ident(c, sql, tc);
        buf_puts(sql, ") FROM ");
        ok = ok && put_table_name(c, sql, t);
        buf_puts(sql, " x WHERE");
        WHERE_ROWS("x");
        buf_puts(sql, ") AS hi");
    }
    buf_puts(sql, " FROM unnest($1::text[], $2::int[], $3::bigint[]) WITH ORDINALITY AS a(tp, p, c, ord))"
                  " SELECT a.p, ");
    if (ocol) {
        buf_puts(sql, "t.");
        ok = ok && put_ident(c, sql, ocol->name);
    } else {
        buf_puts(sql, s->store_offsets ? "coalesce(so.\"offset\", -1)" : "-1::bigint");
    }
    buf_puts(sql, ", ");
    if (!tc) {
        buf_puts(sql, "0::bigint");
    } else if (tc_is_time) {
        buf_puts(sql, "(extract(epoch FROM t.");
        ok = ok && put_ident(c, sql, tc);
        buf_puts(sql, ") * 1000)::bigint");
    } else {
        buf_puts(sql, "t.");
        ok = ok && put_ident(c, sql, tc);
        buf_puts(sql, "::bigint");
    }
    buf_puts(sql, ", row_to_json(t)::text, a.ord, ");
    if (topic_col) {
        buf_puts(sql, "t.");
        ok = ok && put_ident(c, sql, topic_col);
    } else {
        buf_puts(sql, "NULL::text");
    }
    buf_puts(sql, " FROM a");
    if (!ocol && s->store_offsets) {
        buf_puts(sql, " LEFT JOIN ");
        ok = ok && put_ident(c, sql, s->cfg->offsets_table);
        buf_puts(sql, " so ON so.pipeline = $4 AND so.topic = $5 AND so.\"partition\" = a.p");
    }
    buf_puts(sql, " CROSS JOIN LATERAL (SELECT * FROM ");
    ok = ok && put_table_name(c, sql, t);
    buf_puts(sql, " t WHERE");
    WHERE_ROWS("t");
    if (tc && t->restore_within_ms) {
        buf_puts(sql, " AND t.");
        ok = ok && put_ident(c, sql, tc);
        buf_puts(sql, tc_is_time ? " >= a.hi - $6::bigint * interval '1 millisecond'"
                                 : " >= a.hi - $6::bigint");
    }
    buf_puts(sql, ") t");
    buf_puts(sql, " ORDER BY a.ord");
    if (ocol || tc) {
        buf_puts(sql, ", t.");
        ok = ok && put_ident(c, sql, ocol ? ocol->name : tc);
    }
#undef WHERE_ROWS
    return ok && !sql->oom;
}

/* Drains what is left of a query (after an error or a cancel). */
static void drain_results(PGconn *c)
{
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) PQclear(r);
}

/* Streams the rows of spec t to the earlier stages (single-row mode, RESTORE_CHUNK records per
 * api->restore), so memory stays bounded whatever the table holds. *delivered counts the rows
 * handed over: once it is > 0 a failure cannot be retried (the stages would get rows twice). */
static wr_result restore_spec(pg_sink *s, const table_spec *t, const sl_position *parts,
                              size_t n, uint64_t *delivered)
{
    pgc *l = &s->task;
    *delivered = 0;
    const column *pcol = column_from(t, SRC_PARTITION), *topic_src = NULL;
    if (!pcol) {
        snprintf(l->reason, sizeof l->reason, "tables.%s: restore needs a column mapped from "
                 "$partition or named \"partition\"", t->topic);
        return WR_FATAL;
    }
    for (size_t c = 0; c < t->ncols && !topic_src; c++)
        if (t->cols[c].src == SRC_TOPIC) topic_src = &t->cols[c];
    const char *topic_col = t->restore_topic_col ? t->restore_topic_col
                            : topic_src           ? topic_src->name
                                                  : NULL;
    buf tp = {0}, ps = {0}, cs = {0}, sql = {0};
    const char *bad = restore_parts(t, topic_col != NULL, parts, n, &tp, &ps, &cs);
    wr_result w = WR_OK;
    if (bad) {
        snprintf(l->reason, sizeof l->reason, "tables.%s: %s", t->topic, bad);
        w = WR_FATAL;
    } else if (!restore_sql(s, t, topic_col, &sql) || tp.oom || ps.oom || cs.oom) {
        snprintf(l->reason, sizeof l->reason, "out of memory building the restore query");
        w = WR_FATAL;
    }
    char within[24];
    snprintf(within, sizeof within, "%lld", (long long)t->restore_within_ms);
    const char *params[6] = {tp.p, ps.p, cs.p, s->pipeline, t->topic, within};
    const Oid types[6] = {25, 25, 25, 25, 25, 25}; /* text: unused ones need a type too */
    if (w == WR_OK && (!PQsendQueryParams(l->conn, sql.p, 6, types, params, NULL, NULL, 0) ||
                       !PQsetSingleRowMode(l->conn))) {
        describe_error(l, NULL);
        drain_results(l->conn);
        w = WR_RETRY;
    }
    buf_free(&tp);
    buf_free(&ps);
    buf_free(&cs);
    buf_free(&sql);
    if (w != WR_OK) return w;

    PGresult *held[RESTORE_CHUNK];
    sl_record recs[RESTORE_CHUNK];
    size_t k = 0;
    long long ord = -1;
    int64_t in_part = 0;
    PGresult *res;
    while (w == WR_OK && (res = PQgetResult(l->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK) { /* the end */
            PQclear(res);
            continue;
        }
        if (st != PGRES_SINGLE_TUPLE) {
            describe_error(l, res);
            w = classify(l->conn, res);
            if (w == WR_DATA) w = WR_FATAL;
            PQclear(res);
            break;
        }
        long long o = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        in_part = o == ord ? in_part + 1 : 1;
        ord = o;
        if (t->restore_max_rows && in_part > t->restore_max_rows) {
            /* never a silent truncation: the state would be incomplete */
            snprintf(l->reason, sizeof l->reason,
                     "tables.%s: more than max_rows (%lld) rows to restore for partition %s; "
                     "raise restore.max_rows or shorten within",
                     t->topic, (long long)t->restore_max_rows, PQgetvalue(res, 0, 0));
            PQclear(res);
            w = WR_FATAL;
            break;
        }
        held[k] = res;
        recs[k++] = (sl_record){
            .value = PQgetvalue(res, 0, 3),
            .value_len = (size_t)PQgetlength(res, 0, 3),
            .timestamp_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10),
            .topic = topic_src && !PQgetisnull(res, 0, 5) ? PQgetvalue(res, 0, 5) : t->topic,
            .partition = (int32_t)strtol(PQgetvalue(res, 0, 0), NULL, 10),
            .offset = strtoll(PQgetvalue(res, 0, 1), NULL, 10),
        };
        if (k == RESTORE_CHUNK) {
            s->api->restore(s->ctx, recs, k);
            *delivered += k;
            while (k) PQclear(held[--k]);
        }
    }
    if (w == WR_OK && k) {
        s->api->restore(s->ctx, recs, k);
        *delivered += k;
    }
    while (k) PQclear(held[--k]);
    if (w != WR_OK) {
        PGcancel *cancel = PQgetCancel(l->conn);
        char ignore[256];
        if (cancel) {
            PQcancel(cancel, ignore, sizeof ignore);
            PQfreeCancel(cancel);
        }
        drain_results(l->conn);
        return w;
    }
    s->api->count(s->ctx, "rows_restored", *delivered);
    s->api->log(s->ctx, SL_LOG_INFO, "restored %llu rows of %s for %s",
                (unsigned long long)*delivered, t->table, t->topic);
    return WR_OK;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Partitions were assigned: stream the state of every spec with `restore:` to the earlier
 * stages. While PostgreSQL is away before anything was handed over, it waits (bounded); a
 * failure after rows were handed over, or state that cannot be read, stops the pipeline
 * (SL_FATAL; the supervisor restarts it with empty stages) rather than let stages run with
 * partial or no state. */
sl_err pg_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->failed) return SL_FATAL;
    /* The host has drained the chain; also let the writer finish, so what is read back
     * includes every committed batch. */
    sl_err e = collect(s, true);
    if (e != SL_OK) return e;
    size_t want = 0;
    for (size_t i = 0; i < s->nspecs; i++) want += s->specs[i].restore;
    if (n == 0 || (want == 0 && !s->store_offsets)) return SL_OK;
    int64_t deadline = s->api->monotonic_ms(ctx) + RESTORE_TIMEOUT_MS;
    wr_result w = WR_OK;
    bool owner = !s->store_offsets; /* ownership taken (or not kept without offsets) */
    size_t next = 0; /* specs before it are restored */
    for (;;) {
        w = ensure_conn(s, &s->task, 0);
        /* Take ownership first: after the epoch bump no earlier owner can commit, so what is
         * read next is final. */
        if (w == WR_OK && !owner) {
            w = take_ownership(s, &s->task, parts, n);
            owner = w == WR_OK;
        }
        uint64_t delivered = 0;
        for (; next < s->nspecs && w == WR_OK; next++) {
            if (!s->specs[next].restore) continue;
            w = restore_spec(s, &s->specs[next], parts, n, &delivered);
            if (w == WR_RETRY && delivered) w = WR_FATAL;
            if (w != WR_OK) break;
        }
        if (w == WR_OK || w == WR_FATAL || s->api->monotonic_ms(ctx) >= deadline) break;
        if (s->task.up != 0) set_down(s, &s->task, 0, s->task.reason);
        sleep_ms(BACKOFF_MIN_MS);
    }
    if (w == WR_OK) return SL_OK;
    s->api->log(ctx, SL_LOG_ERROR, "cannot restore state for %zu assigned partitions: %s; "
                "stopping the pipeline", n, s->task.reason);
    s->broken = true;
    return SL_FATAL;
}
