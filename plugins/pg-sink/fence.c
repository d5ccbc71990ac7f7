/*
 * fence.c — pg-sink: owner epochs, so a writer whose partitions moved on (a zombie: its revoke
 * drain timed out, or it was evicted from the group while a retry blocked) can neither commit
 * old rows nor overwrite the new owner's positions.
 *
 * On assignment, every (pipeline, source topic, partition) row of offsets_table gets
 * `epoch = epoch + 1`, and the sink remembers the value it got. Every transaction first locks
 * the rows of the partitions its rows belong to (SELECT … FOR UPDATE) and compares: a newer
 * epoch means another owner took over — the rows of that partition are dropped, never acked
 * (their records stay unfinished, so this process never commits past them), logged and counted
 * (rows_fenced). The lock also orders a zombie's transaction before the new owner's bump, so
 * the new owner's restore reads everything the zombie committed. A revoke drops the unwritten
 * rows of the revoked partitions the same way (rows_revoked).
 *
 * A row belongs to the owned (topic, partition) of its own topic — for a row that names its
 * source topic in restore.topic_column (KPI rows: source_topic), of that topic —, or, a record
 * whose topic is not a source topic (KPI rows without source_topic), to every owned pair of its
 * partition.
 */
#include "pg-sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The topic a row's ownership follows: the source topic it names (a KPI row's source_topic,
 * see table_spec.cov_col), else its own topic. */
static const char *row_topic(const batch *b, const row *r)
{
    if (r->stopic_off != SIZE_MAX) return b->saved.p + r->stopic_off;
    return r->topic_len == SIZE_MAX ? "" : b->saved.p + r->topic_off;
}

/* Does the row belong to owned pair o? (exact topic, else by partition alone when the row's
 * topic is no owned topic at all) */
static bool belongs(const owned *own, size_t n, const owned *o, const char *topic, int32_t p)
{
    if (o->partition != p) return false;
    if (!strcmp(o->topic, topic)) return true;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(own[i].topic, topic)) return false; /* a source topic, but not o's */
    return true;
}

static void owned_free(owned *o, size_t n)
{
    for (size_t i = 0; i < n; i++) free(o[i].topic);
    free(o);
}

/* Drops row r: finished for the sink, its ack never released. */
static void drop_row(row *r)
{
    r->done = true;
    r->dropped = true;
    r->ack = NULL; /* deliberately never released: the record must not count as finished */
}

/* Bumps the epoch of every assigned (pipeline, topic, partition) and remembers the new ones
 * (task thread, autocommit). */
wr_result take_ownership(pg_sink *s, pgc *l, const sl_position *parts, size_t n)
{
    buf tp = {0}, ps = {0}, sql = {0};
    buf_putc(&tp, '{');
    buf_putc(&ps, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) buf_putc(&tp, ','), buf_putc(&ps, ',');
        buf_putc(&tp, '"');
        for (const char *c = parts[i].topic ? parts[i].topic : ""; *c; c++) {
            if (*c == '"' || *c == '\\') buf_putc(&tp, '\\');
            buf_putc(&tp, *c);
        }
        buf_putc(&tp, '"');
        buf_printf(&ps, "%d", (int)parts[i].partition);
    }
    buf_putc(&tp, '}');
    buf_putc(&ps, '}');
    buf_puts(&sql, "INSERT INTO ");
    bool ok = put_ident(l->conn, &sql, s->cfg->offsets_table);
    buf_puts(&sql, " AS o (pipeline, topic, \"partition\", \"offset\", epoch)"
                   " SELECT DISTINCT $1, a.tp, a.p, -1, 1 FROM unnest($2::text[], $3::int[]) AS a(tp, p)"
                   " ON CONFLICT (pipeline, topic, \"partition\") DO UPDATE SET epoch = o.epoch + 1"
                   " RETURNING topic, \"partition\", epoch");
    wr_result w = WR_OK;
    if (!ok || tp.oom || ps.oom || sql.oom) {
        snprintf(l->reason, sizeof l->reason, "out of memory");
        w = WR_FATAL;
    }
    PGresult *res = NULL;
    if (w == WR_OK) {
        const char *params[3] = {s->pipeline, tp.p, ps.p};
        res = PQexecParams(l->conn, sql.p, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
            if (w == WR_DATA) { /* e.g. no epoch column: a schema from before fencing */
                w = WR_FATAL;
                size_t len = strlen(l->reason);
                snprintf(l->reason + len, sizeof l->reason - len,
                         " (taking ownership in %s: load pipelines/sql/schema.sql again, it adds "
                         "the epoch column)", s->cfg->offsets_table);
            }
        }
    }
    buf_free(&tp);
    buf_free(&ps);
    buf_free(&sql);
    if (w != WR_OK) {
        PQclear(res);
        return w;
    }
    int rows = PQntuples(res);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < rows; i++) {
        const char *topic = PQgetvalue(res, i, 0);
        int32_t p = (int32_t)strtol(PQgetvalue(res, i, 1), NULL, 10);
        int64_t epoch = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        size_t j = 0;
        while (j < s->nown && !(s->own[j].partition == p && !strcmp(s->own[j].topic, topic))) j++;
        if (j == s->nown) {
            owned *grown = realloc(s->own, (s->nown + 1) * sizeof *grown);
            char *t = strdup(topic);
            if (!grown || !t) {
                if (grown) s->own = grown;
                free(t);
                w = WR_FATAL;
                snprintf(l->reason, sizeof l->reason, "out of memory");
                break;
            }
            s->own = grown;
            s->own[s->nown++] = (owned){.topic = t, .partition = p};
        }
        s->own[j].epoch = epoch;
    }
    s->fencing = true;
    pthread_mutex_unlock(&s->mu);
    PQclear(res);
    if (w == WR_OK)
        s->api->log(s->ctx, SL_LOG_INFO, "took ownership of %d partitions (owner epochs in %s)",
                    rows, s->cfg->offsets_table);
    return w;
}

/* Partitions were revoked: forget them, and drop the unwritten rows of the buffer being filled
 * (released: the host detached those partitions first, so nothing commits for them); the writer
 * drops those of its batch (never released: it cannot tell a revoke from a fence). Task thread. */
sl_err pg_on_revoke(void *self, sl_ctx *ctx, const sl_position *parts, size_t n)
{
    pg_sink *s = self;
    s->ctx = ctx;
    pthread_mutex_lock(&s->mu);
    owned *own = s->own;
    size_t nown = s->nown;
    /* which rows of `fill` belong to a revoked pair: decided against the owned set as it was */
    batch *b = s->fill;
    uint64_t dropped = 0;
    for (size_t i = 0; i < b->nrows; i++) {
        row *r = &b->rows[i];
        if (r->done || r->partition < 0) continue;
        for (size_t k = 0; k < n; k++) {
            owned o = {.topic = (char *)(parts[k].topic ? parts[k].topic : ""),
                       .partition = parts[k].partition};
            if (belongs(own, nown, &o, row_topic(b, r), r->partition)) {
                /* The host has detached the partition before this call, so releasing cannot
                 * commit anything; it lets a stage that watches the record forget it. */
                s->api->release(r->ack);
                drop_row(r);
                dropped++;
                break;
            }
        }
    }
    for (size_t k = 0; k < n; k++) {
        const char *topic = parts[k].topic ? parts[k].topic : "";
        for (size_t j = 0; j < s->nown; j++) {
            if (s->own[j].partition == parts[k].partition && !strcmp(s->own[j].topic, topic)) {
                free(s->own[j].topic);
                s->own[j] = s->own[--s->nown];
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (dropped) {
        s->api->log(ctx, SL_LOG_WARN, "revoked %zu partitions: dropped %llu unwritten rows of "
                    "them (never acknowledged; the next owner reads them again)", n,
                    (unsigned long long)dropped);
        s->api->count(ctx, "rows_revoked", dropped);
    }
    return SL_OK;
}

/* Inside the transaction, before any row is written: lock the owner rows of the partitions
 * the rows of [lo, hi) belong to and drop the rows of any partition another owner has taken
 * (or that is no longer assigned). with_done: the range's finished rows count too (a refused
 * row's position). Writer thread. */
wr_result fence_check(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, bool with_done)
{
    if (!s->store_offsets) return WR_OK;
    pthread_mutex_lock(&s->mu);
    bool on = s->fencing;
    size_t n = s->nown;
    owned *own = on && n ? calloc(n, sizeof *own) : NULL;
    bool oom = on && n && !own;
    for (size_t i = 0; own && i < n; i++) {
        own[i] = s->own[i];
        if (!(own[i].topic = strdup(s->own[i].topic))) oom = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (!on) return WR_OK;
    if (oom) {
        owned_free(own, n);
        snprintf(l->reason, sizeof l->reason, "out of memory");
        return WR_FATAL;
    }
    /* which owned pairs the rows need; rows of no owned pair are not ours any more */
    bool *need = calloc(n ? n : 1, sizeof *need);
    uint64_t unowned = 0;
    for (size_t i = lo; need && i < hi; i++) {
        row *r = &b->rows[i];
        if ((r->done && !with_done) || r->dropped || r->partition < 0) continue;
        bool any = false;
        for (size_t j = 0; j < n; j++)
            if (belongs(own, n, &own[j], row_topic(b, r), r->partition)) need[j] = any = true;
        if (!any) {
            if (!r->done) unowned++;
            drop_row(r);
        }
    }
    buf tp = {0}, ps = {0}, sql = {0};
    buf_putc(&tp, '{');
    buf_putc(&ps, '{');
    size_t k = 0;
    for (size_t j = 0; need && j < n; j++) {
        if (!need[j]) continue;
        if (k++) buf_putc(&tp, ','), buf_putc(&ps, ',');
        buf_putc(&tp, '"');
        for (const char *c = own[j].topic; *c; c++) {
            if (*c == '"' || *c == '\\') buf_putc(&tp, '\\');
            buf_putc(&tp, *c);
        }
        buf_putc(&tp, '"');
        buf_printf(&ps, "%d", (int)own[j].partition);
    }
    buf_putc(&tp, '}');
    buf_putc(&ps, '}');
    wr_result w = need && !tp.oom && !ps.oom ? WR_OK : WR_FATAL;
    if (w == WR_FATAL) snprintf(l->reason, sizeof l->reason, "out of memory");
    uint64_t fenced = 0;
    if (w == WR_OK && k) {
        buf_puts(&sql, "SELECT o.topic, o.\"partition\", o.epoch FROM ");
        bool ok = put_ident(l->conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " o JOIN unnest($2::text[], $3::int[]) AS a(tp, p) ON o.topic = a.tp AND"
                       " o.\"partition\" = a.p WHERE o.pipeline = $1");
        /* parallel writers' row transactions share the lock (writers.c) */
        buf_puts(&sql, l->share_lock ? " FOR SHARE OF o" : " FOR UPDATE OF o");
        const char *params[3] = {s->pipeline, tp.p, ps.p};
        PGresult *res = ok && !sql.oom ? PQexecParams(l->conn, sql.p, 3, NULL, params, NULL, NULL, 0) : NULL;
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
            if (w == WR_DATA) w = WR_FATAL; /* not a row's fault */
        } else {
            /* a pair whose row is missing or holds another epoch has a newer owner */
            for (size_t j = 0; j < n; j++) {
                if (!need[j]) continue;
                bool mine = false;
                for (int i = 0; i < PQntuples(res) && !mine; i++)
                    mine = !strcmp(PQgetvalue(res, i, 0), own[j].topic) &&
                           strtol(PQgetvalue(res, i, 1), NULL, 10) == own[j].partition &&
                           strtoll(PQgetvalue(res, i, 2), NULL, 10) == own[j].epoch;
                if (mine) continue;
                uint64_t here = 0;
                for (size_t i = lo; i < hi; i++) {
                    row *r = &b->rows[i];
                    if ((r->done && !with_done) || r->dropped || r->partition < 0) continue;
                    if (!belongs(own, n, &own[j], row_topic(b, r), r->partition)) continue;
                    if (!r->done) here++;
                    drop_row(r);
                }
                fenced += here;
                say(s, l, SL_LOG_WARN,
                    "fenced: partition %d of '%s' has a newer owner (my epoch %lld is stale); "
                    "dropping %llu unwritten rows of it, never acknowledged",
                    (int)own[j].partition, own[j].topic, (long long)own[j].epoch,
                    (unsigned long long)here);
                pthread_mutex_lock(&s->mu);
                for (size_t q = 0; q < s->nown; q++) {
                    if (s->own[q].partition == own[j].partition &&
                        !strcmp(s->own[q].topic, own[j].topic) && s->own[q].epoch == own[j].epoch) {
                        free(s->own[q].topic);
                        s->own[q] = s->own[--s->nown];
                        break;
                    }
                }
                pthread_mutex_unlock(&s->mu);
            }
        }
        PQclear(res);
    }
    if (unowned)
        say(s, l, SL_LOG_WARN, "dropping %llu unwritten rows of partitions no longer assigned "
            "(never acknowledged)", (unsigned long long)unowned);
    pthread_mutex_lock(&s->mu);
    s->fenced_rows += fenced;
    s->revoked_rows += unowned;
    pthread_mutex_unlock(&s->mu);
    buf_free(&tp);
    buf_free(&ps);
    buf_free(&sql);
    free(need);
    owned_free(own, n);
    return w;
}
