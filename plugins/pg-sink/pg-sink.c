/*
 * pg-sink — writes records to PostgreSQL tables (UC06).
 *
 * Records are routed by topic to a table spec. process() turns each record into one line of COPY
 * text (the table's mapped columns plus an arrival sequence number) and holds its ack; a flush
 * (every flush_interval, at batch_size rows, and at drain) runs one transaction:
 *
 *   BEGIN; SELECT … FROM sluice_offsets … FOR UPDATE; (owner epochs, after an assignment)
 *   COPY pg_temp.<staging> FROM STDIN; INSERT INTO <table> SELECT … FROM <staging>
 *   [DISTINCT ON (keys) … ORDER BY keys, seq DESC] [ON CONFLICT …]; (per table)
 *   INSERT INTO sluice_offsets … ON CONFLICT DO UPDATE; (max offset per source partition)
 *   COMMIT
 *
 * and releases the acks only after COMMIT. A value a column cannot hold exactly is refused before
 * (check.c). Staging tables are temp tables, ON COMMIT DELETE ROWS, created once per connection;
 * their columns carry the target's types, so a malformed value fails in COPY and a constraint or
 * trigger in the INSERT. Any such non-transient error bisects the batch until each row
 * PostgreSQL refuses is alone; it goes to the dead letter with the server's message and the rest
 * commits. A transient one (a lost connection) keeps the open batch and retries it after a
 * backoff.
 *
 * The transactions run on a writer thread with its own connection, so PostgreSQL works on one
 * batch while process() fills the next: two buffers, one filling and one being written, handed
 * over in order (one writer, FIFO); when both are full, process waits. The host is called from
 * the task thread only (reject, log, count; release excepted): the writer hands refused rows,
 * log lines and counts back, and the task thread's next callback deals with them. The task
 * thread keeps a connection of its own for the catalog and for restore.
 *
 * On partition assignment, the sink takes ownership (owner epochs, fence.c) and specs with
 * `restore:` are streamed back (one query per table) to the earlier stages' on_restore
 * (api->restore), so dedup and window-kpi rebuild their state from what is durable; see
 * README.md. The resume position is the source's own (never moved).
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- callbacks ----------------------------------------------------------------------- */

static void pg_close(void *self, sl_ctx *ctx);

static sl_err pg_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const pg_config *cfg = config;
    pg_sink *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->ctx = ctx;
    s->cfg = cfg;
    s->pipeline = api->pipeline_name(ctx); /* borrowed for the instance's life; the writer uses it */
    s->task.up = s->wr.up = -1;
    s->wr.writer = true;
    s->fill = &s->bufs[0];
    s->out = &s->bufs[1];
    s->bufs[0].pos_row = s->bufs[1].pos_row = NO_ROW;

    /* A dead-letter sink sees the positions of other stages' records: it stores none. */
    s->store_offsets = cfg->store_offsets;
    char why[700], where[300];
    const char *dir = api->config_dir(ctx);
    if (parse_tables(cfg, api, dir ? dir : "", &s->specs, &s->nspecs, why, sizeof why, where, sizeof where)) {
        api->log(ctx, SL_LOG_ERROR, "%s", why);
        free_specs(s->specs, s->nspecs);
        free(s);
        return SL_ECONFIG;
    }
    s->task.sql = calloc(2 * s->nspecs, sizeof *s->task.sql);
    s->wr.sql = calloc(2 * s->nspecs, sizeof *s->wr.sql);
    /* The writer sleeps out its backoff on `work` with a monotonic deadline. */
    pthread_condattr_t ca;
    bool ok = s->task.sql && s->wr.sql && pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&s->work, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (ok) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->done, NULL);
        ok = writers_start(s) && pthread_create(&s->thread, NULL, writer_main, s) == 0;
        if (!ok) {
            writers_stop(s);
            writers_free(s);
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->done);
            pthread_cond_destroy(&s->work);
        }
    }
    if (!ok) {
        api->log(ctx, SL_LOG_ERROR, "cannot start the writer thread");
        free(s->task.sql);
        free(s->wr.sql);
        free_specs(s->specs, s->nspecs);
        free(s);
        return SL_FATAL;
    }
    /* check_schema: compare with the catalog now, so a mismatch refuses to start (if
     * PostgreSQL is away, at the first connection). */
    bool check = false;
    for (size_t i = 0; i < s->nspecs; i++) check |= s->specs[i].bounds != NULL;
    if (check && ensure_conn(s, &s->task, 0) == WR_FATAL) {
        api->log(ctx, SL_LOG_ERROR, "%s", s->task.reason);
        pg_close(s, ctx);
        return SL_ECONFIG;
    }
    *self = s;
    return SL_OK;
}

static sl_err pg_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken || s->failed) return SL_FATAL;
    sl_err e = collect(s, false);
    if (e != SL_OK) return e;
    /* Both buffers full: wait for the writer, then hand it this one. If PostgreSQL is away,
     * refuse the batch (nothing held yet) so the host backs off and offers it again. */
    if ((int64_t)s->fill->nrows >= s->cfg->batch_size) {
        e = collect(s, true);
        if (e != SL_OK) return e;
        if (!submit(s)) return SL_RETRY;
    }
    /* Rendering a row needs the columns and their types from the catalog. */
    bool loaded = true;
    for (size_t i = 0; i < s->nspecs; i++) loaded = loaded && s->specs[i].loaded;
    if (!loaded) {
        wr_result w = ensure_conn(s, &s->task, 0);
        if (w == WR_RETRY) return SL_RETRY;
        if (w == WR_FATAL) {
            s->api->log(ctx, SL_LOG_ERROR, "%s", s->task.reason);
            return SL_FATAL;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (add_record(s, batch->recs[i]) != SL_OK) {
            s->api->log(ctx, SL_LOG_ERROR, "out of memory buffering rows");
            return SL_ENOMEM;
        }
    }
    /* A full buffer goes to the writer now if it is free, else at the next call. */
    if ((int64_t)s->fill->nrows >= s->cfg->batch_size) (void)submit(s);
    return SL_OK;
}

static sl_err pg_flush(void *self, sl_ctx *ctx, int final)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken || s->failed) return SL_FATAL;
    if (!final) {
        sl_err e = collect(s, false);
        if (e == SL_OK && s->fill->nrows &&
            ((int64_t)s->fill->nrows >= s->cfg->batch_size ||
             mono_ms() - s->fill->first_ms >= s->cfg->flush_interval_ms))
            (void)submit(s); /* if the writer is busy, the next flush hands it over */
        return e;
    }
    /* Final: everything durable before returning SL_OK. While PostgreSQL is away the writer
     * keeps retrying and we return SL_RETRY at once; the host calls again. */
    for (;;) {
        sl_err e = collect(s, true);
        if (e != SL_OK) return e;
        if (s->fill->nrows == 0) {
            pthread_mutex_lock(&s->mu);
            bool idle = s->wstate == W_IDLE;
            pthread_mutex_unlock(&s->mu);
            return idle ? SL_OK : SL_RETRY;
        }
        if (!submit(s)) return SL_RETRY;
    }
}

void pgc_free(pgc *l, size_t nspecs)
{
    if (l->conn) PQfinish(l->conn);
    for (size_t i = 0; l->sql && i < 2 * nspecs; i++) buf_free(&l->sql[i]);
    free(l->sql);
    free(l->offsets_put);
}

static void batch_free(batch *b)
{
    free(b->rows);
    buf_free(&b->lines);
    buf_free(&b->saved);
}

static void pg_close(void *self, sl_ctx *ctx)
{
    pg_sink *s = self;
    s->ctx = ctx;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* a transaction under way finishes first */
    pthread_mutex_lock(&s->mu);
    report_notes(s);
    pthread_mutex_unlock(&s->mu);
    /* Rows not written (buffered, or the writer's unfinished batch) keep their holds, so
     * their positions are never committed and a restart delivers them again. */
    size_t left = s->fill->nrows + (s->wstate != W_IDLE ? pending_rows(s->out) : 0);
    if (left)
        s->api->log(ctx, SL_LOG_WARN, "closing with %zu rows not written to PostgreSQL; they "
                    "stay unacknowledged and will be redelivered", left);
    pgc_free(&s->task, s->nspecs);
    pgc_free(&s->wr, s->nspecs);
    writers_free(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free_specs(s->specs, s->nspecs);
    for (size_t i = 0; i < s->nown; i++) free(s->own[i].topic);
    free(s->own);
    batch_free(&s->bufs[0]);
    batch_free(&s->bufs[1]);
    buf_free(&s->scratch);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry pg_config_table[] = {
    SL_CFG_STRING("dsn", pg_config, dsn,
        .description = "libpq conninfo or URI; empty: the PG* environment variables"),
    SL_CFG_JSON("tables", pg_config, tables, .flags = SL_CFG_REQUIRED,
        .description = "map of record topic (\"*\": any other) to {table, schema, columns, " "conflict, on_conflict, restore, check_schema}"),
    SL_CFG_INT("batch_size", pg_config, batch_size, .flags = SL_CFG_BOUNDED, .default_value = "10000",
        .min = 1, .max = 1000000, .description = "rows per transaction; a full buffer is written at once"),
    SL_CFG_DURATION("flush_interval", pg_config, flush_interval_ms, .flags = SL_CFG_BOUNDED,
        .default_value = "200ms", .min = 1, .max = 3600000,
        .description = "longest time a row waits in the buffer"),
    SL_CFG_BOOL("create_tables", pg_config, create_tables, .flags = SL_CFG_OPERATOR_ONLY,
        .default_value = "false",
        .description = "CREATE TABLE IF NOT EXISTS from the typed columns (schema: pipelines/sql/); DDL, so the " "operator's files only"),
    SL_CFG_BOOL("store_offsets", pg_config, store_offsets, .default_value = "true",
        .description = "store source positions in offsets_table in each transaction and resume " "from them; false on a dead-letter pg-sink"),
    SL_CFG_STRING("offsets_table", pg_config, offsets_table, .default_value = "sluice_offsets",
        .description = "table of (pipeline, topic, partition, offset)"),
    SL_CFG_STRING("offsets_topic", pg_config, offsets_topic,
        .description = "topic name stored with positions; default: the record's topic as the sink " "sees it (set the source topic if a transform renames topics)"),
    SL_CFG_INT("writers", pg_config, writers, .flags = SL_CFG_BOUNDED, .default_value = "1",
        .min = 1, .max = 16, .description = "connections writing rows in parallel, partitioned by conflict key"),
    SL_CFG_END,
};

/* The same parse as init's, before start: `sluice validate`, REST and hot reload see it. */
static sl_err pg_check(const void *config, sl_check *c)
{
    table_spec *specs;
    size_t n;
    const char *err = parse_tables(config, c->api, c->config_dir, &specs, &n, c->why, c->why_len, c->where,
                                   c->where_len);
    free_specs(specs, n);
    return err ? SL_ECONFIG : SL_OK;
}

static const sl_stage_desc pg_sink_desc = {
    SL_STAGE_DESC_INIT,
    .name = "pg-sink",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "writes records to PostgreSQL tables: COPY + INSERT ON CONFLICT, acked after COMMIT",
    .config = pg_config_table,
    .config_size = sizeof(pg_config),
    .init = pg_init,
    .process = pg_process,
    .flush = pg_flush,
    .close = pg_close,
    .on_assign = pg_on_assign,
    .on_revoke = pg_on_revoke,
    .check = pg_check,
};

SL_STAGE_DEFINE(pg_sink_desc)
