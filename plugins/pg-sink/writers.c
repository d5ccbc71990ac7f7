/*
 * writers.c — pg-sink with `writers: N` > 1: a batch's rows written over N connections at once.
 *
 * PostgreSQL runs one backend per connection, and one backend doing the index maintenance of
 * a batch leaves the other cores idle. So the writer thread groups a batch's rows by connection
 * (a hash of the conflict key's text, so no two transactions touch the same key and none waits
 * for another's row locks; by row without a conflict key) and N connections write their groups
 * at the same time, each with bisection of refused rows as with one. A row is released when
 * its own transaction committed.
 *
 * Positions (`sluice_offsets`) may only cover rows that are all committed, and N transactions
 * cannot commit atomically. So the row transactions carry no positions; when every group of
 * the batch has committed (or its refused rows went to the dead letter), connection 0 writes
 * the positions of the whole batch in a transaction of its own. A crash in between leaves
 * `sluice_offsets` behind the rows (they are written again, idempotently, after a restart),
 * never ahead of an unwritten one. The next batch starts after that.
 *
 * Rows whose coverage *is* their `sluice_offsets` position — specs without an `$offset` column,
 * such as window-kpi's KPI rows, which restore hands back with that position — must commit
 * with it in one transaction, or a crash could leave rows newer than the position they are
 * restored with. They are written by connection 0 together with their positions, after the
 * grouped rows (as with one connection), and are few.
 *
 * The row transactions take the owner rows FOR SHARE (fence.c), so they do not wait for one
 * another, while a new owner's epoch bump still waits for them — the fencing of one writer.
 */
#include "pg-sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WRITERS 16 /* the `writers` bound (pg-sink.c) */

typedef struct wpart {
    pg_sink *s;
    pgc conn;
    pthread_t thread;
    bool started;
    /* the job, under s->mu: written by the coordinator, read by the part's thread */
    batch *b;
    size_t lo, hi;
    unsigned gen, done_gen;
    bool exited; /* its thread is gone (close): a job given now never finishes */
    wr_result result;
    tally t;
} wpart;

struct writers {
    size_t n;          /* connections: s->wr and parts[1..n-1] (parts[0] is unused) */
    wpart *parts;
    pthread_cond_t fin; /* a part finished its job */
    size_t *grp;        /* per row: its group (n: connection 0's tail, after the others) */
    row *tmp;
    size_t cap;
    size_t (*keycols)[8]; /* per spec: the conflict key's column indexes (SIZE_MAX: unused) */
};

bool writers_down(const pg_sink *s)
{
    bool down = s->wr.down;
    for (size_t k = 1; s->par && k < s->par->n; k++) down |= s->par->parts[k].conn.down;
    return down;
}

static void *part_main(void *arg)
{
    wpart *p = arg;
    pg_sink *s = p->s;
    writers *w = s->par;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && p->gen == p->done_gen) pthread_cond_wait(&s->work, &s->mu);
        if (s->stop) break;
        pthread_mutex_unlock(&s->mu);
        tally t = {0};
        wr_result r = write_part(s, &p->conn, p->b, p->lo, p->hi, TX_ROWS, &t);
        pthread_mutex_lock(&s->mu);
        p->t = t;
        p->result = r;
        p->done_gen = p->gen;
        pthread_cond_broadcast(&w->fin);
        if (r == WR_STOPPED) break;
    }
    p->exited = true;
    pthread_cond_broadcast(&w->fin);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Called by pg_init before the writer thread starts (s->mu and s->work exist). */
bool writers_start(pg_sink *s)
{
    s->wr.share_lock = false;
    if (s->cfg->writers <= 1 || s->cfg->writers > MAX_WRITERS) return true;
    writers *w = calloc(1, sizeof *w);
    if (!w) return false;
    s->par = w;
    w->n = (size_t)s->cfg->writers;
    w->parts = calloc(w->n, sizeof *w->parts);
    w->keycols = calloc(s->nspecs, sizeof *w->keycols);
    if (!w->parts || !w->keycols || pthread_cond_init(&w->fin, NULL) != 0) {
        free(w->parts);
        free(w->keycols);
        free(w);
        s->par = NULL;
        return false;
    }
    for (size_t i = 0; i < s->nspecs; i++)
        for (size_t k = 0; k < 8; k++) w->keycols[i][k] = SIZE_MAX;
    for (size_t k = 1; k < w->n; k++) {
        wpart *p = &w->parts[k];
        p->s = s;
        p->conn.up = -1;
        p->conn.writer = true;
        p->conn.share_lock = true;
        if (!(p->conn.sql = calloc(2 * s->nspecs, sizeof *p->conn.sql))) return false;
        if (pthread_create(&p->thread, NULL, part_main, p) != 0) return false;
        p->started = true;
    }
    return true;
}

/* Stops the parts' threads (s->stop is set; they wake on s->work). Writer thread, at exit. */
void writers_stop(pg_sink *s)
{
    writers *w = s->par;
    if (!w) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    for (size_t k = 1; k < w->n; k++) {
        if (w->parts[k].started) pthread_join(w->parts[k].thread, NULL);
        w->parts[k].started = false;
    }
}

void writers_free(pg_sink *s)
{
    writers *w = s->par;
    if (!w) return;
    for (size_t k = 1; k < w->n; k++) pgc_free(&w->parts[k].conn, s->nspecs);
    pthread_cond_destroy(&w->fin);
    free(w->parts);
    free(w->keycols);
    free(w->grp);
    free(w->tmp);
    free(w);
    s->par = NULL;
}

/* Is the spec's coverage its sluice_offsets position (no `$offset` column)? */
static bool coverage_spec(const pg_sink *s, const table_spec *t)
{
    if (!s->store_offsets) return false;
    for (size_t c = 0; c < t->ncols; c++)
        if (t->cols[c].src == SRC_OFFSET) return false;
    return true;
}

/* The group of a row: FNV-1a of its conflict key's COPY text (the same value always renders
 * the same text, and tabs inside values are escaped), or its index without a key. */
static size_t group_of(pg_sink *s, const batch *b, size_t i)
{
    writers *w = s->par;
    const row *r = &b->rows[i];
    const table_spec *t = &s->specs[r->table];
    if (coverage_spec(s, t)) return w->n;
    size_t *kc = w->keycols[r->table];
    if (t->nkeys == 0 || t->nkeys > 8) return i % w->n;
    if (kc[0] == SIZE_MAX) {
        for (size_t k = 0; k < t->nkeys; k++) {
            const column *c = find_column(t, t->keys[k]);
            kc[k] = c ? (size_t)(c - t->cols) : 0;
        }
    }
    uint64_t h = 1469598103934665603ull;
    const char *line = b->lines.p + r->line_off, *end = line + r->line_len;
    for (size_t k = 0; k < t->nkeys; k++) {
        const char *f = line;
        for (size_t c = 0; c < kc[k] && f < end; f++)
            if (*f == '\t') c++;
        for (; f < end && *f != '\t' && *f != '\n'; f++) h = (h ^ (unsigned char)*f) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return (size_t)(h % w->n);
}

/* Reorders the rows stably by group, so each group is a range [bound[g], bound[g + 1]): the
 * rows of one key keep their order (on_conflict: update keeps the last). Idempotent, so a
 * batch handed back after a refused row regroups to the same ranges. */
static bool group_rows(pg_sink *s, batch *b, size_t *bound)
{
    writers *w = s->par;
    if (b->nrows > w->cap) {
        size_t *g = realloc(w->grp, b->nrows * sizeof *g);
        if (g) w->grp = g;
        row *t = g ? realloc(w->tmp, b->nrows * sizeof *t) : NULL;
        if (t) w->tmp = t;
        if (!g || !t) return false;
        w->cap = b->nrows;
    }
    for (size_t g = 0; g <= w->n + 1; g++) bound[g] = 0;
    for (size_t i = 0; i < b->nrows; i++) bound[(w->grp[i] = group_of(s, b, i)) + 1]++;
    for (size_t g = 1; g <= w->n + 1; g++) bound[g] += bound[g - 1];
    size_t at[MAX_WRITERS + 1];
    memcpy(at, bound, (w->n + 1) * sizeof *at);
    for (size_t i = 0; i < b->nrows; i++) w->tmp[at[w->grp[i]]++] = b->rows[i];
    memcpy(b->rows, w->tmp, b->nrows * sizeof *b->rows);
    return true;
}

static void add_tally(batch *b, const tally *t)
{
    b->written += t->written;
    b->flushes += t->flushes;
    b->seconds += t->seconds;
}

/* The writer thread's batch with `writers` > 1: the groups in parallel (group 0 on this
 * thread's connection), then connection 0's tail (rows covered by their positions) and the
 * positions of the whole batch. */
wr_result write_batch_par(pg_sink *s, batch *b)
{
    writers *w = s->par;
    size_t bound[MAX_WRITERS + 2];
    b->pos_row = NO_ROW; /* a rejected row's position goes with the batch's, below */
    if (!group_rows(s, b, bound)) {
        snprintf(b->reason, sizeof b->reason, "out of memory grouping rows");
        return WR_FATAL;
    }
    pthread_mutex_lock(&s->mu);
    for (size_t k = 1; k < w->n; k++) {
        wpart *p = &w->parts[k];
        p->b = b;
        p->lo = bound[k];
        p->hi = bound[k + 1];
        p->gen++;
    }
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);

    tally t0 = {0};
    s->wr.share_lock = true;
    wr_result r = write_part(s, &s->wr, b, bound[0], bound[1], TX_ROWS, &t0);
    s->wr.share_lock = false;
    add_tally(b, &t0);
    wr_result res = r;
    const char *reason = s->wr.reason;
    if (r == WR_REFUSED) b->refused = t0.refused, reason = t0.reason;

    pthread_mutex_lock(&s->mu);
    for (size_t k = 1; k < w->n; k++) {
        wpart *p = &w->parts[k];
        while (p->done_gen != p->gen && !p->exited) pthread_cond_wait(&w->fin, &s->mu);
        if (p->done_gen != p->gen) p->result = WR_STOPPED;
        add_tally(b, &p->t);
        /* the worst outcome wins: stopped, then a setup error, then a refused row */
        int rank_p = p->result == WR_STOPPED ? 3 : p->result == WR_FATAL ? 2 : p->result == WR_REFUSED;
        int rank = res == WR_STOPPED ? 3 : res == WR_FATAL ? 2 : res == WR_REFUSED;
        if (rank_p > rank) {
            res = p->result;
            reason = p->result == WR_FATAL ? p->conn.reason : p->t.reason;
            if (res == WR_REFUSED) b->refused = p->t.refused;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (res != WR_OK) {
        if (res != WR_STOPPED && reason != b->reason) snprintf(b->reason, sizeof b->reason, "%s", reason);
        return res;
    }

    /* Every grouped row is committed (or dropped by fencing): connection 0's tail, then the
     * positions of everything. */
    tally t = {0};
    r = write_part(s, &s->wr, b, bound[w->n], bound[w->n + 1], TX_ALL, &t);
    if (r == WR_OK && s->store_offsets && b->nrows)
        r = write_part(s, &s->wr, b, 0, b->nrows, TX_OFFSETS, &t);
    add_tally(b, &t);
    if (r == WR_REFUSED) {
        b->refused = t.refused;
        memcpy(b->reason, t.reason, sizeof b->reason);
    } else if (r == WR_FATAL) {
        memcpy(b->reason, s->wr.reason, sizeof b->reason);
    }
    return r;
}
