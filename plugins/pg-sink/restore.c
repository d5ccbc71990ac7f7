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
const column *column_from(const table_spec *t, src_kind src)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (t->cols[c].src == src) return &t->cols[c];
    return src == SRC_PARTITION ? find_column(t, "partition") : NULL;
}

/* One query for the rows of spec t to restore for the assigned partitions (see README):
 *   with an $offset column: rows with offset <= the partition's committed offset, each record's
 *     offset = the row's;
 *   else: every row of the partitions, each record's offset = the position stored in
 *     offsets_table for (pipeline, the spec's topic, partition), -1 if none;
 * in both cases only rows whose time_column is within `within` of now(), the newest max_rows.
 * Result columns: partition, offset, timestamp ms, row as JSON text. */
wr_result restore_query(pg_sink *s, const table_spec *t, const sl_position *parts,
                               size_t n, PGresult **out)
{
    *out = NULL;
    const column *pcol = column_from(t, SRC_PARTITION), *ocol = column_from(t, SRC_OFFSET);
    if (!pcol) {
        snprintf(s->task.reason, sizeof s->task.reason, "tables.%s: restore needs a column mapped from "
                 "$partition or named \"partition\"", t->topic);
        return WR_FATAL;
    }
    const char *tc = t->restore_time_col;
    const column *tcol = tc ? find_column(t, tc) : NULL;
    bool tc_is_time = !tcol || tcol->is_time; /* an unmapped column: assume a timestamp */

    /* $1 partitions, $2 their committed offsets (one per distinct partition: the smallest
     * among the positions of the spec's topic, or of any topic if none is the spec's). */
    bool topic_match = false;
    for (size_t i = 0; i < n; i++) topic_match |= parts[i].topic && !strcmp(parts[i].topic, t->topic);
    buf ps = {0}, cs = {0}, sql = {0};
    buf_putc(&ps, '{');
    buf_putc(&cs, '{');
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = parts[j].partition == parts[i].partition;
        if (seen) continue;
        int64_t c = INT64_MAX;
        for (size_t j = i; j < n; j++) {
            if (parts[j].partition != parts[i].partition) continue;
            if (topic_match && !(parts[j].topic && !strcmp(parts[j].topic, t->topic))) continue;
            if (parts[j].offset < c) c = parts[j].offset;
        }
        if (c == INT64_MAX) c = -1;
        buf_printf(&ps, "%s%d", distinct ? "," : "", (int)parts[i].partition);
        buf_printf(&cs, "%s%lld", distinct ? "," : "", (long long)c);
        distinct++;
    }
    buf_putc(&ps, '}');
    buf_putc(&cs, '}');

    bool ok = true;
    buf_puts(&sql, "SELECT r.p, r.off, r.ms, r.v FROM (SELECT a.p, ");
    if (ocol) {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol->name);
    } else {
        buf_puts(&sql, s->store_offsets ? "coalesce(so.\"offset\", -1)" : "-1::bigint");
    }
    buf_puts(&sql, " AS off, ");
    if (!tc) {
        buf_puts(&sql, "0::bigint");
    } else if (tc_is_time) {
        buf_puts(&sql, "(extract(epoch FROM t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, ") * 1000)::bigint");
    } else {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, "::bigint");
    }
    buf_puts(&sql, " AS ms, row_to_json(t)::text AS v, ");
    if (ocol || tc) {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol ? ocol->name : tc);
    } else {
        buf_puts(&sql, "0");
    }
    buf_puts(&sql, " AS o FROM ");
    ok = ok && put_table_name(s->task.conn, &sql, t);
    buf_puts(&sql, " t JOIN unnest($1::int[], $2::bigint[]) AS a(p, c) ON t.");
    ok = ok && put_ident(s->task.conn, &sql, pcol->name);
    buf_puts(&sql, " = a.p");
    if (!ocol && s->store_offsets) {
        buf_puts(&sql, " LEFT JOIN ");
        ok = ok && put_ident(s->task.conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " so ON so.pipeline = $3 AND so.topic = $4 AND so.\"partition\" = a.p");
    }
    buf_puts(&sql, " WHERE true");
    if (ocol) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol->name);
        buf_puts(&sql, " <= a.c");
    }
    if (tc && t->restore_within_ms) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, tc_is_time ? " >= now() - $5::bigint * interval '1 millisecond'"
                                  : " >= (extract(epoch FROM now()) * 1000)::bigint - $5::bigint");
    }
    buf_puts(&sql, " ORDER BY o DESC LIMIT $6::bigint) r ORDER BY r.p, r.o");

    char within[24], limit[24];
    snprintf(within, sizeof within, "%lld", (long long)t->restore_within_ms);
    snprintf(limit, sizeof limit, "%lld", (long long)t->restore_max_rows);
    const char *params[6] = {ps.p, cs.p, s->pipeline, t->topic, within, limit};
    const Oid types[6] = {25, 25, 25, 25, 25, 25}; /* text: unused ones need a type too */
    wr_result w = WR_OK;
    if (!ok || ps.oom || cs.oom || sql.oom) {
        snprintf(s->task.reason, sizeof s->task.reason, "out of memory building the restore query");
        w = WR_FATAL;
    } else {
        PGresult *res = PQexecParams(s->task.conn, sql.p, 6, types, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            *out = res;
        } else {
            describe_error(&s->task, res);
            w = classify(s->task.conn, res);
            if (w == WR_DATA) w = WR_FATAL;
            PQclear(res);
        }
    }
    buf_free(&ps);
    buf_free(&cs);
    buf_free(&sql);
    return w;
}

/* Hands the rows of one restore result to the earlier stages, in chunks. */
void restore_deliver(pg_sink *s, const table_spec *t, PGresult *res)
{
    sl_record recs[RESTORE_CHUNK];
    int rows = PQntuples(res), k = 0;
    for (int i = 0; i < rows; i++) {
        recs[k++] = (sl_record){
            .value = PQgetvalue(res, i, 3),
            .value_len = (size_t)PQgetlength(res, i, 3),
            .timestamp_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10),
            .topic = t->topic,
            .partition = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10),
            .offset = strtoll(PQgetvalue(res, i, 1), NULL, 10),
        };
        if (k == RESTORE_CHUNK || i + 1 == rows) {
            s->api->restore(s->ctx, recs, (size_t)k);
            k = 0;
        }
    }
    s->api->count(s->ctx, "rows_restored", (uint64_t)rows);
    s->api->log(s->ctx, rows >= t->restore_max_rows ? SL_LOG_WARN : SL_LOG_INFO,
                "restored %d rows of %s for %s%s", rows, t->table, t->topic,
                rows >= t->restore_max_rows ? " (max_rows reached: older rows were left out)" : "");
}

void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Partitions were assigned: read the state of every spec with `restore:` (one query each; all
 * read before any is handed over, so a retry never delivers a table twice) and hand it to the
 * earlier stages. While PostgreSQL is away it waits (bounded); if the state cannot be read, the
 * sink stops the pipeline at its next call rather than let stages run without their state. */
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
    if (want == 0 || n == 0) return SL_OK;
    PGresult **res = calloc(s->nspecs, sizeof *res);
    if (!res) {
        s->broken = true;
        return SL_ENOMEM;
    }
    int64_t deadline = s->api->monotonic_ms(ctx) + RESTORE_TIMEOUT_MS;
    wr_result w;
    for (;;) {
        w = ensure_conn(s, &s->task, 0);
        for (size_t i = 0; i < s->nspecs && w == WR_OK; i++)
            if (s->specs[i].restore) w = restore_query(s, &s->specs[i], parts, n, &res[i]);
        if (w == WR_OK || w == WR_FATAL || s->api->monotonic_ms(ctx) >= deadline) break;
        for (size_t i = 0; i < s->nspecs; i++) {
            PQclear(res[i]);
            res[i] = NULL;
        }
        if (s->task.up != 0) set_down(s, &s->task, 0, s->task.reason);
        sleep_ms(BACKOFF_MIN_MS);
    }
    for (size_t i = 0; i < s->nspecs; i++) {
        if (w == WR_OK && res[i]) restore_deliver(s, &s->specs[i], res[i]);
        PQclear(res[i]);
    }
    free(res);
    if (w == WR_OK) return SL_OK;
    s->api->log(ctx, SL_LOG_ERROR, "cannot restore state for %zu assigned partitions: %s; "
                "stopping the pipeline", n, s->task.reason);
    s->broken = true;
    return SL_FATAL;
}
