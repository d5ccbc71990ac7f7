/*
 * writer.c — pg-sink: connections and their up/down state, the writer thread's transactions
 * (bisection of refused rows), and the hand-over between the task thread and the writer.
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The host API is called from the task thread only, so the writer's log lines and reconnect
 * counts wait in s->notes until the task thread's next callback (report_notes). */
void say(pg_sink *s, pgc *l, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void say(pg_sink *s, pgc *l, sl_log_level level, const char *fmt, ...)
{
    char msg[sizeof s->notes[0].msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!l->writer) {
        s->api->log(s->ctx, level, "%s", msg);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->nnotes < sizeof s->notes / sizeof s->notes[0]) { /* more is a flapping server */
        s->notes[s->nnotes].level = level;
        memcpy(s->notes[s->nnotes].msg, msg, sizeof msg);
        s->nnotes++;
    }
    pthread_mutex_unlock(&s->mu);
}

void set_down(pg_sink *s, pgc *l, size_t rows, const char *why)
{
    if (l->up != 0)
        say(s, l, SL_LOG_WARN,
            "PostgreSQL unavailable (%s); keeping %zu rows and retrying with backoff", why, rows);
    l->up = 0;
    l->attempts++;
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS) l->backoff_ms = BACKOFF_MAX_MS;
    l->next_try_ms = mono_ms() + l->backoff_ms;
    if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
}

static void set_up(pg_sink *s, pgc *l)
{
    if (l->up == 0) {
        say(s, l, SL_LOG_INFO, "PostgreSQL available again after %d retries", l->attempts);
        if (l->writer) {
            pthread_mutex_lock(&s->mu);
            s->reconnects++;
            pthread_mutex_unlock(&s->mu);
        } else {
            s->api->count(s->ctx, "reconnects", 1);
        }
    }
    l->up = 1;
    l->attempts = 0;
    l->backoff_ms = 0;
    l->next_try_ms = 0;
}

/* Connect if needed: session setup, catalog (first time, task thread), statements and staging
 * tables. WR_RETRY while PostgreSQL is unreachable or during the backoff; WR_FATAL on a setup
 * problem (l->reason says which). `rows`: how many rows wait for it (for the log). */
wr_result ensure_conn(pg_sink *s, pgc *l, size_t rows)
{
    if (mono_ms() < l->next_try_ms) return WR_RETRY;
    if (l->conn && PQstatus(l->conn) == CONNECTION_OK && PQtransactionStatus(l->conn) == PQTRANS_IDLE)
        return WR_OK;
    if (l->conn) PQfinish(l->conn);
    l->conn = PQconnectdb(s->cfg->dsn ? s->cfg->dsn : "");
    if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
        snprintf(l->reason, sizeof l->reason, "%s",
                 l->conn ? PQerrorMessage(l->conn) : "out of memory");
        squeeze_spaces(l->reason);
        set_down(s, l, rows, l->reason);
        return WR_RETRY;
    }
    wr_result r = WR_OK;
    if (PQsetClientEncoding(l->conn, "UTF8") != 0) r = WR_RETRY;
    /* The writer connects only once the task thread has done both (rows need the catalog). */
    if (r == WR_OK && !l->writer && s->cfg->create_tables && !s->tables_created) {
        r = create_tables(s, l);
        s->tables_created = r == WR_OK;
    }
    buf create = {0};
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        if (!t->loaded) r = l->writer ? WR_FATAL : load_catalog(l, t);
        if (r == WR_OK)
            r = build_sql(l->conn, t, i, &l->sql[2 * i], &l->sql[2 * i + 1], &create)
                    ? exec_cmd(l, create.p)
                    : WR_FATAL;
    }
    buf_free(&create);
    /* Timestamps read back (restore) come as RFC 3339 with +00:00, whatever the server's zone. */
    if (r == WR_OK) r = exec_cmd(l, "SET TIME ZONE 'UTC'");
    if (r == WR_OK && s->store_offsets) r = prepare_offsets(s, l);
    if (r == WR_FATAL || r == WR_DATA) return WR_FATAL; /* session setup: nobody's row */
    if (r != WR_OK) {
        set_down(s, l, rows, l->reason);
        return WR_RETRY;
    }
    if (l->up == -1 && !l->writer)
        say(s, l, SL_LOG_INFO, "connected to PostgreSQL %s at %s:%s",
            PQparameterStatus(l->conn, "server_version"), PQhost(l->conn), PQport(l->conn));
    set_up(s, l);
    return WR_OK;
}

/* ---- writing (the writer thread) ----------------------------------------------------- */

/* Does spec t keep its coverage per source topic? (sql.c sets cov_col; `offsets_topic` asks
 * for one position per partition, so it turns this off.) Restore reads the same keys. */
bool coverage_by_topic(const pg_sink *s, const table_spec *t)
{
    return t->loaded && t->cov_col != SIZE_MAX && !s->cfg->offsets_topic;
}

/* Key of sluice_offsets for a row: the configured topic; else, for a row of a spec with
 * coverage per source topic that names one, "<spec topic>|<source topic>" — so the coverage
 * of one topic's KPI windows never mixes with another's of the same partition number; else the
 * record's own topic. */
const char *offsets_topic(const pg_sink *s, const batch *b, const row *r)
{
    if (s->cfg->offsets_topic) return s->cfg->offsets_topic;
    if (r->okey_off != SIZE_MAX) return b->saved.p + r->okey_off;
    return r->topic_len == SIZE_MAX ? "" : b->saved.p + r->topic_off;
}

/* Upserts the max offset per (topic, partition) of the rows of [lo, hi) that are pending (or,
 * with with_done, also those already finished: a rejected row's position). */
static wr_result write_offsets(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, bool with_done)
{
    if (!s->store_offsets) return WR_OK;
    for (size_t i = lo; i < hi; i++) {
        row *r = &b->rows[i];
        if ((r->done && !with_done) || r->dropped || r->partition < 0) continue;
        /* Write each pair once, at its highest offset (the last such row). Rows of a partition
         * arrive in offset order, so with one writer the next row of the pair is usually that
         * higher one; with several (writers.c) a batch is grouped by connection, so look both
         * ways. */
        const char *topic = offsets_topic(s, b, r);
        bool beaten = false;
        for (size_t k = 1; k < hi - lo && !beaten; k++) {
            size_t j = i + k < hi ? i + k : i + k - (hi - lo);
            const row *q = &b->rows[j];
            beaten = (!q->done || with_done) && !q->dropped && q->partition == r->partition &&
                     (q->offset > r->offset || (q->offset == r->offset && j > i)) &&
                     !strcmp(offsets_topic(s, b, q), topic);
        }
        if (beaten) continue;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", (int)r->partition);
        snprintf(off, sizeof off, "%lld", (long long)r->offset);
        const char *params[4] = {s->pipeline, topic, part, off};
        PGresult *res = PQexecParams(l->conn, l->offsets_put, 4, NULL, params, NULL, NULL, 0);
        wr_result w = WR_OK;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
        }
        PQclear(res);
        if (w != WR_OK) return w == WR_DATA ? WR_FATAL : w; /* not a row's fault */
    }
    return WR_OK;
}

/* COPY the pending rows of [lo, hi) for table t into its staging table and move them into the
 * target. */
static wr_result write_table(pgc *l, batch *b, size_t t, size_t lo, size_t hi)
{
    PGresult *res = PQexec(l->conn, l->sql[2 * t].p);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r;
    }
    PQclear(res);
    bool sent = true;
    for (size_t i = lo; i < hi && sent; i++) {
        const row *r = &b->rows[i];
        if (!r->done && r->table == t)
            sent = PQputCopyData(l->conn, b->lines.p + r->line_off, (int)r->line_len) == 1;
    }
    if (PQputCopyEnd(l->conn, sent ? NULL : "client failed to send") != 1) sent = false;
    wr_result w = WR_OK;
    while ((res = PQgetResult(l->conn)) != NULL) {
        if (w == WR_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
        }
        PQclear(res);
    }
    if (w == WR_OK && !sent) {
        snprintf(l->reason, sizeof l->reason, "%s", PQerrorMessage(l->conn));
        w = WR_RETRY;
    }
    return w == WR_OK ? exec_cmd(l, l->sql[2 * t + 1].p) : w;
}

/* One transaction: TX_ALL the pending rows of [lo, hi) and their positions; TX_ROWS the rows
 * only (a parallel writer's share, writers.c); TX_OFFSETS just the positions of [lo, hi),
 * finished rows included. */
static wr_result write_txn(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, tx_mode mode)
{
    bool offsets_only = mode == TX_OFFSETS;
    wr_result w = exec_cmd(l, "BEGIN");
    if (w == WR_OK) w = fence_check(s, l, b, lo, hi, offsets_only);
    for (size_t t = 0; t < s->nspecs && w == WR_OK && !offsets_only; t++) {
        bool any = false;
        for (size_t i = lo; i < hi && !any; i++) any = !b->rows[i].done && b->rows[i].table == t;
        if (any) w = write_table(l, b, t, lo, hi);
    }
    if (w == WR_OK && mode != TX_ROWS) w = write_offsets(s, l, b, lo, hi, offsets_only);
    if (w == WR_OK) w = exec_cmd(l, "COMMIT");
    if (w != WR_OK && PQstatus(l->conn) == CONNECTION_OK &&
        PQtransactionStatus(l->conn) != PQTRANS_IDLE) {
        char keep[sizeof l->reason];
        memcpy(keep, l->reason, sizeof keep);
        PQclear(PQexec(l->conn, "ROLLBACK"));
        memcpy(l->reason, keep, sizeof keep);
    }
    return w;
}

/* Writes [lo, hi); on a data error splits the range until the refused row is alone, and stops
 * there with WR_REFUSED (in t->refused, t->reason): the task thread rejects it (only it may),
 * then hands the batch back to go on. The halves before it have committed, so every pending
 * row is after it. */
static wr_result write_range(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, tx_mode mode,
                             tally *t)
{
    size_t pending = 0, only = lo;
    for (size_t i = lo; i < hi; i++)
        if (!b->rows[i].done) pending++, only = i;
    if (pending == 0) return WR_OK;
    wr_result w = write_txn(s, l, b, lo, hi, mode);
    if (w == WR_OK) {
        for (size_t i = lo; i < hi; i++) {
            row *r = &b->rows[i];
            if (r->done) continue; /* fenced rows too: dropped, never released */
            s->api->release(r->ack); /* thread-safe */
            r->ack = NULL;
            r->done = true;
            t->written++;
        }
        return WR_OK;
    }
    if (w != WR_DATA) return w;
    if (pending == 1) {
        t->refused = only;
        memcpy(t->reason, l->reason, sizeof t->reason);
        return WR_REFUSED;
    }
    size_t mid = lo + (hi - lo) / 2;
    w = write_range(s, l, b, lo, mid, mode, t);
    return w == WR_OK ? write_range(s, l, b, mid, hi, mode, t) : w;
}

size_t pending_rows(const batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nrows; i++) n += !b->rows[i].done;
    return n;
}

/* Writes [lo, hi) of a batch on connection l until it is durable, a row is refused, or a setup
 * error: a lost connection is retried here, with backoff, redoing what has not committed.
 * TX_OFFSETS: only the positions of [lo, hi). WR_STOPPED: close wants the thread back. */
static size_t pending_in(const batch *b, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++) n += !b->rows[i].done;
    return n;
}

wr_result write_part(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, tx_mode mode, tally *t)
{
    /* only [lo, hi): other connections may be finishing the rest of the batch meanwhile */
    for (;;) {
        wr_result w = ensure_conn(s, l, pending_in(b, lo, hi));
        if (w == WR_OK) {
            int64_t t0 = mono_ms();
            if (b->pos_row != NO_ROW && mode == TX_ALL) {
                /* Dead letter first (done by now), then its position: a crash in between
                 * re-rejects the row after a restart rather than losing it. A failure to
                 * store the position is harmless (the next commit of the partition moves it
                 * on) unless the connection is gone: then it is redone with the rest. */
                w = write_txn(s, l, b, b->pos_row, b->pos_row + 1, TX_OFFSETS);
                if (w != WR_RETRY) {
                    b->pos_row = NO_ROW;
                    w = WR_OK;
                }
            }
            if (w == WR_OK && mode == TX_OFFSETS) w = write_txn(s, l, b, lo, hi, TX_OFFSETS);
            else if (w == WR_OK) w = write_range(s, l, b, lo, hi, mode, t);
            t->seconds += (double)(mono_ms() - t0) / 1e3;
            t->flushes++;
            if (w == WR_RETRY) set_down(s, l, pending_in(b, lo, hi), l->reason);
        }
        pthread_mutex_lock(&s->mu);
        l->down = l->up == 0;
        s->wdown = writers_down(s);
        if (w == WR_RETRY) {
            /* Tell a waiting task thread that this will take a while, then sleep out the
             * backoff (close wakes us). */
            pthread_cond_broadcast(&s->done);
            int64_t wake = l->next_try_ms > mono_ms() ? l->next_try_ms : mono_ms() + BACKOFF_MIN_MS;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ms = wake - mono_ms();
            ts.tv_sec += (time_t)(ms / 1000);
            ts.tv_nsec += (long)(ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            while (!s->stop && mono_ms() < wake)
                if (pthread_cond_timedwait(&s->work, &s->mu, &ts) == ETIMEDOUT) break;
        }
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) return WR_STOPPED;
        if (w != WR_RETRY) return w;
    }
}

/* One connection writes the whole batch, rows and positions in each transaction. */
static wr_result write_batch(pg_sink *s, batch *b)
{
    if (s->par) return write_batch_par(s, b);
    tally t = {0};
    wr_result w = write_part(s, &s->wr, b, 0, b->nrows, TX_ALL, &t);
    b->written += t.written;
    b->flushes += t.flushes;
    b->seconds += t.seconds;
    if (w == WR_REFUSED) {
        b->refused = t.refused;
        memcpy(b->reason, t.reason, sizeof b->reason);
    }
    return w;
}

/* The writer: takes the batch the task thread hands over (wstate W_BUSY), writes it, hands it
 * back (W_DONE). One batch at a time, in the order they were handed over. */
void *writer_main(void *arg)
{
    pg_sink *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->wstate != W_BUSY) pthread_cond_wait(&s->work, &s->mu);
        if (s->stop) break;
        batch *b = s->out;
        pthread_mutex_unlock(&s->mu);
        wr_result w = write_batch(s, b);
        pthread_mutex_lock(&s->mu);
        if (w == WR_STOPPED) break; /* close: the batch stays unacknowledged */
        b->result = w;
        if (w == WR_FATAL && !s->par) memcpy(b->reason, s->wr.reason, sizeof b->reason);
        s->wstate = W_DONE;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    writers_stop(s);
    return NULL;
}

/* ---- the task thread's side ---------------------------------------------------------- */

static void batch_clear(batch *b)
{
    b->nrows = 0;
    b->lines.len = b->saved.len = 0;
    b->pos_row = NO_ROW;
}

/* Logs what the writer noted (task thread). Called with s->mu held; releases it meanwhile. */
void report_notes(pg_sink *s)
{
    note notes[sizeof s->notes / sizeof s->notes[0]];
    size_t n = s->nnotes;
    uint64_t reconnects = s->reconnects, fenced = s->fenced_rows, revoked = s->revoked_rows;
    memcpy(notes, s->notes, n * sizeof notes[0]);
    s->nnotes = 0;
    s->reconnects = s->fenced_rows = s->revoked_rows = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) s->api->log(s->ctx, notes[i].level, "%s", notes[i].msg);
    if (reconnects) s->api->count(s->ctx, "reconnects", reconnects);
    if (fenced) s->api->count(s->ctx, "rows_fenced", fenced);
    if (revoked) s->api->count(s->ctx, "rows_revoked", revoked);
    pthread_mutex_lock(&s->mu);
}

/* Takes back what the writer finished: counts it, rejects a refused row and hands the batch
 * back to go on, or recycles it. With `wait`, first waits while the writer is busy and
 * PostgreSQL is up (while it is away the writer retries by itself and we return at once).
 * SL_FATAL after a setup error. */
sl_err collect(pg_sink *s, bool wait)
{
    sl_err e = SL_OK;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (wait && s->wstate == W_BUSY && !s->wdown) pthread_cond_wait(&s->done, &s->mu);
        report_notes(s);
        if (s->wstate != W_DONE) break;
        batch *b = s->out;
        pthread_mutex_unlock(&s->mu);
        if (b->flushes) {
            s->api->count(s->ctx, "flushes", b->flushes);
            s->api->observe(s->ctx, "flush_seconds", b->seconds);
        }
        if (b->written) s->api->count(s->ctx, "rows_written", b->written);
        b->flushes = b->written = 0;
        b->seconds = 0;
        int next = W_IDLE;
        if (b->result == WR_REFUSED) {
            reject_row(s, b, &b->rows[b->refused], b->reason);
            if (s->store_offsets) b->pos_row = b->refused;
            next = W_BUSY;
        } else if (b->result == WR_FATAL) {
            s->api->log(s->ctx, SL_LOG_ERROR, "cannot write: %s", b->reason);
            s->failed = true;
            e = SL_FATAL;
            next = W_DONE; /* the writer keeps nothing; the rows stay unacknowledged */
        } else {
            batch_clear(b);
        }
        pthread_mutex_lock(&s->mu);
        s->wstate = next;
        if (next == W_BUSY) pthread_cond_broadcast(&s->work); /* parallel writers sleep on it too */
        if (next != W_BUSY) break;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Hands the filled batch to the writer if it is free; false if it is still busy. */
bool submit(pg_sink *s)
{
    pthread_mutex_lock(&s->mu);
    bool idle = s->wstate == W_IDLE;
    if (idle) {
        batch *b = s->fill;
        s->fill = s->out;
        s->out = b;
        s->wstate = W_BUSY;
        pthread_cond_broadcast(&s->work); /* parallel writers sleep on it too */
    }
    pthread_mutex_unlock(&s->mu);
    return idle;
}
