/* session.c — session windows ("session GAP"): per partition and group, events less than GAP
 * apart form one session [first event, last event + GAP).
 *
 * Each session is a window with one group. The sessions of a group are linked by start
 * (older/newer) from the newest, which a small hash table per (partition, size) finds by group
 * key. Sessions of a group never overlap: an event that falls within GAP of a session joins it;
 * an event that bridges two sessions (a late one, in the gap between them) merges the newer into
 * the older. If the newer one had emitted a row, that row is retracted: a final row with
 * `merged_into` (the surviving session's start), its aggregates empty, revision + 1, so a table
 * upserted by (window_start, group) can delete or ignore it.
 *
 * A session closes when the watermark reaches its end (last event + GAP); a late event within
 * retention extends or corrects a closed session (a correction, revision + 1). */
#include "window.h"

#include <stdlib.h>
#include <string.h>

#include "../common/sl_hll.h"

wgroup *w_session_group(const win *w)
{
    for (uint32_t i = 0; i < w->cap; i++)
        if (w->tab[i])
            return w->tab[i];
    return NULL;
}

/* ---- the newest session of each group ---------------------------------------------------- */

static uint32_t head_slot(const series *s, uint64_t hash, const char *key, size_t keylen, bool *found)
{
    uint32_t mask = s->hcap - 1, i = (uint32_t)hash & mask;
    for (win *w; (w = s->head[i]); i = (i + 1) & mask) {
        wgroup *g = w_session_group(w);
        if (g->hash == hash && g->keylen == keylen && !memcmp(g->key, key, keylen)) {
            *found = true;
            return i;
        }
    }
    *found = false;
    return i;
}

static bool head_set(series *s, win *w)
{
    const wgroup *g = w_session_group(w);
    if ((s->hn + 1) * 10 > s->hcap * 7) {
        uint32_t cap = s->hcap ? s->hcap * 2 : 16;
        win **t = calloc(cap, sizeof *t), **old = s->head;
        if (!t)
            return false;
        uint32_t ocap = s->hcap;
        s->head = t;
        s->hcap = cap;
        s->hn = 0;
        for (uint32_t j = 0; j < ocap; j++)
            if (old[j]) {
                bool f;
                s->head[head_slot(s, w_session_group(old[j])->hash, w_session_group(old[j])->key,
                                  w_session_group(old[j])->keylen, &f)] = old[j];
                s->hn++;
            }
        free(old);
    }
    bool found;
    uint32_t i = head_slot(s, g->hash, g->key, g->keylen, &found);
    s->head[i] = w;
    s->hn += !found;
    return true;
}

/* Remove the entry of w's group (w was its head and has no older session). Re-inserts the
 * rest of the probe run so lookups still find them. */
static void head_remove(series *s, const win *w)
{
    const wgroup *g = w_session_group(w);
    bool found;
    uint32_t mask = s->hcap - 1, i = head_slot(s, g->hash, g->key, g->keylen, &found);
    if (!found)
        return;
    s->head[i] = NULL;
    s->hn--;
    for (uint32_t j = (i + 1) & mask; s->head[j]; j = (j + 1) & mask) {
        win *x = s->head[j];
        s->head[j] = NULL;
        s->hn--;
        head_set(s, x);
    }
}

/* Take w out of its group's chain and the series (not freed). */
static void unlink_session(series *s, win *w)
{
    if (w->newer)
        w->newer->older = w->older;
    if (w->older)
        w->older->newer = w->newer;
    if (!w->newer) { /* it was the head */
        if (w->older)
            head_set(s, w->older);
        else
            head_remove(s, w);
    }
    w->older = w->newer = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == w) {
            s->v[i] = s->v[--s->n];
            break;
        }
}

static win *new_session(wstage *k, part *p, size_t si, int64_t ts, uint64_t hash, const char *key, size_t keylen)
{
    series *s = &p->s[si];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        win **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    win *w = calloc(1, sizeof *w);
    if (!w || !(w->tab = calloc(1, sizeof *w->tab))) {
        free(w);
        return NULL;
    }
    w->cap = 1;
    w->si = (uint8_t)si;
    w->start = w->last = ts;
    s->v[s->n++] = w;
    /* a group of its own in a one-slot table: w_get_group grows it if group_by is set */
    if (!w_get_group(k, w, hash, key, keylen))
        return NULL;
    return w;
}

/* ---- merging ------------------------------------------------------------------------------ */

void w_merge_group(wstage *k, wgroup *into, const wgroup *from)
{
    for (size_t ai = 0; ai < k->n_aggs; ai++) {
        const wagg *a = &k->aggs[ai];
        int64_t *d = &into->slots[a->slot];
        const int64_t *f = &from->slots[a->slot];
        switch (a->op) {
        case A_COUNT:
        case A_SUM: d[0] += f[0]; break;
        case A_MIN: if (f[1] && (!d[1] || f[0] < d[0])) d[0] = f[0], d[1] = 1; break;
        case A_MAX: if (f[1] && (!d[1] || f[0] > d[0])) d[0] = f[0], d[1] = 1; break;
        case A_AVG: d[0] += f[0], d[1] += f[1]; break;
        case A_FIRST: if (f[2] && (!d[2] || f[1] < d[1])) d[0] = f[0], d[1] = f[1], d[2] = 1; break;
        case A_LAST: if (f[2] && (!d[2] || f[1] > d[1])) d[0] = f[0], d[1] = f[1], d[2] = 1; break;
        case A_DISTINCT: {
            wdist *x = (wdist *)(intptr_t)d[0];
            w_distinct_merge(&x, (const wdist *)(intptr_t)f[0], a->exact);
            d[0] = (int64_t)(intptr_t)x;
            break;
        }
        case A_DERIVED: break;
        }
    }
    into->dirty = true;
}

/* The newer session x joins the older o: o takes x's aggregates and end; x is retracted if it
 * had emitted a row, else forgotten. */
static bool merge_into_older(wstage *k, part *p, series *s, win *o, win *x)
{
    w_merge_group(k, w_session_group(o), w_session_group(x));
    if (x->last > o->last)
        o->last = x->last;
    o->dirty = true;
    if (o->closed && !w_add_fix(p, o))
        return false;
    if (!o->closed)
        p->dirty_open = true;
    unlink_session(s, x);
    x->merged_into = o->start;
    x->retract = true;
    if (x->emitted || x->in_fix)
        return w_add_fix(p, x); /* the cycle emits the retraction and frees it */
    w_win_free(k, x);
    return true;
}

/* ---- applying a record -------------------------------------------------------------------- */

/* A session that emitted rows moves its start (its key) earlier: the rows under the old start
 * are retracted by a placeholder the next cycle emits (merged_into = the new start). */
static bool retract_start(wstage *k, part *p, win *w, int64_t new_start)
{
    const wgroup *g = w_session_group(w);
    win *r = calloc(1, sizeof *r);
    wgroup *rg;
    if (!r || !(r->tab = calloc(1, sizeof *r->tab))) {
        free(r);
        return false;
    }
    r->cap = 1;
    r->si = w->si;
    r->start = w->start;
    r->last = w->last;
    r->closed = r->emitted = r->retract = true;
    r->merged_into = new_start;
    if (!(rg = w_get_group(k, r, g->hash, g->key, g->keylen))) {
        w_win_free(k, r);
        return false;
    }
    rg->finals = g->finals;
    return w_add_fix(p, r);
}

static bool touch(wstage *k, part *p, win *w, const contrib *c)
{
    if (c->ts < w->start && w->emitted && !retract_start(k, p, w, c->ts))
        return false;
    if (c->ts < w->start)
        w->start = c->ts;
    if (c->ts > w->last)
        w->last = c->ts;
    w->dirty = true;
    if (w->closed)
        return w_add_fix(p, w);
    p->dirty_open = true;
    return true;
}

bool w_session_apply(wstage *k, part *p, size_t si, const contrib *c, int64_t wm)
{
    series *s = &p->s[si];
    int64_t gap = k->sz[si].size;
    bool found = false;
    uint32_t hi = s->hcap ? head_slot(s, c->ghash, W_CKEY(k, c), c->keylen, &found) : 0;
    win *newer = NULL, *x = found ? s->head[hi] : NULL;
    while (x && x->start - gap >= c->ts) { /* sessions that start GAP or more after it */
        newer = x;
        x = x->older;
    }
    /* x: the newest session starting less than GAP after the event, if any */
    if (x && c->ts < x->last + gap) {
        /* it joins x; in the gap before x it may also reach the older one: x merges into it
         * (first, so the retraction row has x's own start) */
        win *o = x->older;
        if (o && c->ts < o->last + gap) {
            if (!merge_into_older(k, p, s, o, x))
                return false;
            x = o;
        }
        if (!touch(k, p, x, c))
            return false;
    } else {
        win *w = new_session(k, p, si, c->ts, c->ghash, W_CKEY(k, c), c->keylen);
        if (!w)
            return false;
        w->older = x;
        w->newer = newer;
        if (x)
            x->newer = w;
        if (newer)
            newer->older = w;
        else if (!head_set(s, w))
            return false;
        if (c->ts + gap <= wm)
            w->closed = true; /* born closed: its final row goes out as a correction */
        if (!touch(k, p, w, c))
            return false;
        x = w;
    }
    wgroup *g = w_session_group(x);
    return g && w_apply_group(k, g, c);
}

/* ---- cycles ------------------------------------------------------------------------------- */

bool w_session_due(const wstage *k, const part *p, size_t si, int64_t wm)
{
    const series *s = &p->s[si];
    for (size_t j = 0; j < s->n; j++)
        if (!s->v[j]->closed && s->v[j]->last + k->sz[si].size <= wm)
            return true;
    return false;
}

sl_err w_session_cycle(wstage *k, sl_ctx *ctx, part *p, size_t si, bool close_all, int64_t wm)
{
    series *s = &p->s[si];
    int64_t gap = k->sz[si].size;
    for (size_t j = 0; j < s->n; j++) {
        win *w = s->v[j];
        sl_err e = SL_OK;
        if (!w->closed && (close_all || (p->seen && w->last + gap <= wm))) {
            w->closed = true;
            e = w_emit_window(k, ctx, p, w, true, true);
        } else if (!w->closed && w->dirty) {
            e = w_emit_window(k, ctx, p, w, false, false);
        }
        if (e != SL_OK)
            return e;
    }
    /* forget sessions beyond retention, oldest of their group first */
    for (size_t j = 0; j < s->n;) {
        win *w = s->v[j];
        if (p->seen && w->closed && !w->in_fix && w->last + gap <= wm - k->conf->retention_ms) {
            unlink_session(s, w); /* moves the last one to j */
            w_win_free(k, w);
        } else {
            j++;
        }
    }
    return SL_OK;
}

/* ---- restore and free --------------------------------------------------------------------- */

win *w_session_restore(wstage *k, part *p, size_t si, int64_t start, int64_t last, uint64_t hash, const char *key,
                       size_t keylen)
{
    series *s = &p->s[si];
    bool found = false;
    uint32_t hi = s->hcap ? head_slot(s, hash, key, keylen, &found) : 0;
    win *newer = NULL, *x = found ? s->head[hi] : NULL;
    while (x && x->start > start) {
        newer = x;
        x = x->older;
    }
    if (x && x->start == start)
        return x;
    win *w = new_session(k, p, si, start, hash, key, keylen);
    if (!w)
        return NULL;
    w->last = last;
    w->older = x;
    w->newer = newer;
    if (x)
        x->newer = w;
    if (newer)
        newer->older = w;
    else if (!head_set(s, w))
        return NULL;
    w->emitted = true;
    return w;
}

void w_session_free(wstage *k, series *s)
{
    (void)k;
    free(s->head);
    s->head = NULL;
    s->hcap = s->hn = 0;
}
