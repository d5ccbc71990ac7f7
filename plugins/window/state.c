/* state.c — partitions, windows and groups; a record's contribution extracted and applied.
 *
 * A record is read once (w_extract): its fields resolved, each distinct `where` condition
 * evaluated once, its group key built and hashed, and every aggregate's input reduced to one
 * int64 (a number in minor units, or a distinct value's hash). Applying the contribution
 * (w_apply) touches only the windows' state, so it can happen at process time or later, once
 * the record's passthrough copy is durable. Nothing is allocated per record: windows, groups
 * and distinct tables are created when first needed and grow geometrically. */
#include "window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_hash.h"
#include "../common/sl_hll.h"

int64_t w_floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

bool w_same_topic(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* ---- partitions ----------------------------------------------------------------------------- */

void w_group_clear(wstage *k, wgroup *g)
{
    for (size_t a = 0; a < k->n_aggs; a++)
        if (k->aggs[a].op == A_DISTINCT) {
            wdist *d = (wdist *)(intptr_t)g->slots[k->aggs[a].slot];
            if (d)
                free(d->hll);
            free(d);
        }
    memset(g->slots, 0, k->n_slots * sizeof *g->slots);
}

void w_win_free(wstage *k, win *w)
{
    for (uint32_t i = 0; i < w->cap; i++) {
        wgroup *g = w->tab[i];
        if (!g)
            continue;
        for (size_t a = 0; a < k->n_aggs; a++)
            if (k->aggs[a].op == A_DISTINCT) {
                wdist *d = (wdist *)(intptr_t)g->slots[k->aggs[a].slot];
                if (d)
                    free(d->hll);
                free(d);
            }
        free(g);
    }
    free(w->tab);
    free(w);
}

void w_part_free(wstage *k, part *p)
{
    for (size_t i = 0; i < k->n_sizes; i++) {
        for (size_t j = 0; j < p->s[i].n; j++)
            w_win_free(k, p->s[i].v[j]);
        free(p->s[i].v);
        w_session_free(k, &p->s[i]);
    }
    /* pending contributions hold their inputs */
    for (size_t i = 0; i < p->q_n; i++) {
        contrib *c = (contrib *)(p->q + ((p->q_head + i) % p->q_cap) * k->contrib_size);
        if (c->held)
            k->api->release(c->held);
    }
    for (size_t i = 0; i < p->n_fix; i++)
        if (p->fix[i] && p->fix[i]->retract) /* merged sessions waiting for their retraction row */
            w_win_free(k, p->fix[i]);
    free(p->q);
    if (p->group)
        k->api->release(p->group);
    free(p->fix);
    free(p->topic);
    free(p);
}

part *w_find_part(wstage *k, const char *topic, int32_t partition)
{
    if (k->last && k->last->partition == partition && w_same_topic(k->last->topic, topic))
        return k->last;
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->partition == partition && w_same_topic(k->parts[i]->topic, topic))
            return k->last = k->parts[i];
    return NULL;
}

part *w_get_part(wstage *k, const char *topic, int32_t partition)
{
    part *p = w_find_part(k, topic, partition);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    part **v = realloc(k->parts, (k->n_parts + 1) * sizeof *v);
    if (v)
        k->parts = v;
    if (!p || !v || (topic && !(p->topic = strdup(topic)))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->id = ++k->next_part_id;
    p->cov_max = -1;
    for (size_t i = 0; i < W_MAX_SIZES; i++)
        p->agg_off[i] = p->cov[i] = -1;
    k->parts[k->n_parts++] = p;
    return k->last = p;
}

void w_drop_part(wstage *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->partition == partition && w_same_topic(k->parts[i]->topic, topic)) {
            w_part_free(k, k->parts[i]);
            k->parts[i] = k->parts[--k->n_parts];
            break;
        }
    k->last = NULL;
}

/* ---- windows and groups ---------------------------------------------------------------------- */

/* The window of size `si` starting at `start`, created if absent. Events mostly hit the newest
 * windows, so look from the end. */
win *w_get_win(wstage *k, part *p, size_t si, int64_t start, int64_t watermark)
{
    series *s = &p->s[si];
    size_t i = s->n;
    while (i > 0 && s->v[i - 1]->start > start)
        i--;
    if (i > 0 && s->v[i - 1]->start == start)
        return s->v[i - 1];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        win **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    win *w = calloc(1, sizeof *w);
    uint32_t cap = k->n_group ? 8 : 1;
    if (!w || !(w->tab = calloc(cap, sizeof *w->tab))) {
        free(w);
        return NULL;
    }
    w->cap = cap;
    w->start = start;
    w->si = (uint8_t)si;
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
    s->v[i] = w;
    s->n++;
    /* A late event in a window nobody had seen is born closed, but only at the edge of the
     * closed prefix or inside it, so v[0..n_closed) stay exactly the closed windows. */
    if (i < s->n_closed || (i == s->n_closed && start + k->sz[si].size <= watermark)) {
        w->closed = true;
        s->n_closed++;
    }
    return w;
}

static wgroup *new_group(wstage *k, uint64_t hash, const char *key, size_t keylen)
{
    wgroup *g = calloc(1, sizeof *g + k->n_slots * sizeof(int64_t) + keylen + 1);
    if (!g)
        return NULL;
    g->hash = hash;
    g->keylen = (uint16_t)keylen;
    g->key = (char *)&g->slots[k->n_slots];
    memcpy(g->key, key, keylen);
    return g;
}

wgroup *w_get_group(wstage *k, win *w, uint64_t hash, const char *key, size_t keylen)
{
    if (!k->n_group) {
        if (!w->tab[0] && (w->tab[0] = new_group(k, 0, "", 0)))
            w->n_groups = 1;
        return w->tab[0];
    }
    uint32_t mask = w->cap - 1, i = (uint32_t)hash & mask;
    for (wgroup *g; (g = w->tab[i]); i = (i + 1) & mask)
        if (g->hash == hash && g->keylen == keylen && !memcmp(g->key, key, keylen))
            return g;
    if ((w->n_groups + 1) * 10 > w->cap * 7) {
        uint32_t cap = w->cap * 2;
        wgroup **t = calloc(cap, sizeof *t);
        if (!t)
            return NULL;
        for (uint32_t j = 0; j < w->cap; j++)
            if (w->tab[j]) {
                uint32_t x = (uint32_t)w->tab[j]->hash & (cap - 1);
                while (t[x])
                    x = (x + 1) & (cap - 1);
                t[x] = w->tab[j];
            }
        free(w->tab);
        w->tab = t;
        w->cap = cap;
        mask = cap - 1;
        for (i = (uint32_t)hash & mask; w->tab[i]; i = (i + 1) & mask)
            ;
    }
    wgroup *g = new_group(k, hash, key, keylen);
    if (!g)
        return NULL;
    w->tab[i] = g;
    w->n_groups++;
    return g;
}

bool w_add_fix(part *p, win *w)
{
    if (w->in_fix)
        return true;
    if (p->n_fix == p->cap_fix) {
        size_t cap = p->cap_fix ? p->cap_fix * 2 : 16;
        win **v = realloc(p->fix, cap * sizeof *v);
        if (!v)
            return false;
        p->fix = v;
        p->cap_fix = cap;
    }
    p->fix[p->n_fix++] = w;
    w->in_fix = true;
    return true;
}

/* ---- distinct values ------------------------------------------------------------------------- */

uint64_t w_distinct_count(const wdist *d, bool *exact)
{
    if (!d) {
        *exact = true;
        return 0;
    }
    uint64_t n = d->hll ? sl_hll_estimate(d->hll) : d->n;
    *exact = !d->hll && !d->floor;
    return n < d->floor ? d->floor : n;
}

static bool to_sketch(wdist *d)
{
    if (!(d->hll = calloc(1, SL_HLL_M)))
        return false;
    for (uint32_t i = 0; i < d->cap; i++)
        if (d->tab[i])
            sl_hll_add(d->hll, d->tab[i]);
    return true;
}

/* h != 0 (0 marks an empty slot; w_extract maps it to 1). */
bool w_distinct_add(wdist **dp, uint64_t h, int exact_bound)
{
    wdist *d = *dp;
    if (!d) {
        uint32_t cap = exact_bound ? 16 : 0;
        if (!(d = calloc(1, sizeof *d + cap * sizeof(uint64_t))))
            return false;
        d->cap = cap;
        *dp = d;
        if (!exact_bound && !to_sketch(d))
            return false;
    }
    if (d->hll) {
        sl_hll_add(d->hll, h);
        return true;
    }
    uint32_t mask = d->cap - 1, i = (uint32_t)(h >> 32) & mask;
    for (; d->tab[i]; i = (i + 1) & mask)
        if (d->tab[i] == h)
            return true;
    if (d->n + 1 > (uint32_t)exact_bound) {
        /* past the bound: the same hashes go into a sketch, which from now on answers */
        if (!to_sketch(d))
            return false;
        sl_hll_add(d->hll, h);
        d->cap = d->n = 0;
        wdist *s = realloc(d, sizeof *d);
        if (s)
            *dp = s;
        return true;
    }
    if ((d->n + 1) * 2 > d->cap) {
        uint32_t cap = d->cap * 2;
        wdist *g = calloc(1, sizeof *g + cap * sizeof(uint64_t));
        if (!g)
            return false;
        *g = *d;
        g->cap = cap;
        for (uint32_t j = 0; j < d->cap; j++)
            if (d->tab[j]) {
                uint32_t x = (uint32_t)(d->tab[j] >> 32) & (cap - 1);
                while (g->tab[x])
                    x = (x + 1) & (cap - 1);
                g->tab[x] = d->tab[j];
            }
        free(d);
        *dp = d = g;
        mask = cap - 1;
        for (i = (uint32_t)(h >> 32) & mask; d->tab[i]; i = (i + 1) & mask)
            ;
    }
    d->tab[i] = h;
    d->n++;
    return true;
}

bool w_distinct_merge(wdist **into, const wdist *from, int exact_bound)
{
    if (!from)
        return true;
    for (uint32_t i = 0; i < from->cap; i++)
        if (from->tab[i] && !w_distinct_add(into, from->tab[i], exact_bound))
            return false;
    if (from->hll) {
        wdist *d = *into;
        if (!d) {
            if (!(d = calloc(1, sizeof *d)))
                return false;
            *into = d;
        }
        if (!d->hll && !to_sketch(d))
            return false;
        for (unsigned i = 0; i < SL_HLL_M; i++)
            if (from->hll[i] > d->hll[i])
                d->hll[i] = from->hll[i];
        d->cap = d->n = 0;
    }
    if (from->floor > (*into ? (*into)->floor : 0) && *into)
        (*into)->floor = from->floor;
    return true;
}

/* ---- one record ------------------------------------------------------------------------------ */

/* A JSON number (or numeric string) in minor units of 10^-scale; false when absent or beyond
 * what a double holds exactly (2^53). Rounded half away from zero, like the cents of window-kpi. */
static bool scaled(const sl_api *api, const sl_json *n, const wagg *a, int64_t *out)
{
    double x;
    sl_json_type t = api->json_type(n);
    if (t == SL_JSON_NUMBER) {
        x = api->json_number(n);
    } else if (t == SL_JSON_STRING) {
        const char *s = api->json_string(n);
        char *end;
        x = strtod(s, &end);
        if (end == s || *end)
            return false;
    } else {
        return false;
    }
    double v = x * (double)a->pow10;
    if (!isfinite(v) || fabs(v) >= 9e15)
        return false;
    *out = llround(v);
    return true;
}

static uint64_t value_hash(const sl_api *api, const sl_json *n, bool *ok)
{
    char buf[40];
    const char *s;
    *ok = true;
    switch (api->json_type(n)) {
    case SL_JSON_STRING:
        s = api->json_string(n);
        return sl_hash_bytes(0, s, strlen(s));
    case SL_JSON_NUMBER: {
        int len = snprintf(buf, sizeof buf, "%.17g", api->json_number(n));
        return sl_hash_bytes(0x6e, buf, (size_t)len);
    }
    case SL_JSON_BOOL:
        return sl_hash_bytes(0x62, api->json_number(n) != 0 ? "true" : "false", api->json_number(n) != 0 ? 4 : 5);
    default:
        *ok = false; /* missing, null, arrays, objects: not a value */
        return 0;
    }
}

/* The group key: per field a type tag and the value ('s' string NUL, 'n' 8-byte double,
 * 't'/'f' bool, 'z' null or missing). */
static bool group_key(wstage *k, const sl_json *const *nodes, contrib *c)
{
    const sl_api *api = k->api;
    size_t n = 0;
    for (size_t i = 0; i < k->n_group; i++) {
        const sl_json *v = nodes[k->group_path[i]];
        switch (api->json_type(v)) {
        case SL_JSON_STRING: {
            const char *s = api->json_string(v);
            size_t l = strlen(s);
            if (n + l + 2 > W_KEY_MAX)
                return false;
            W_CKEY(k, c)[n++] = 's';
            memcpy(W_CKEY(k, c) + n, s, l + 1);
            n += l + 1;
            break;
        }
        case SL_JSON_NUMBER: {
            double d = api->json_number(v);
            if (n + 9 > W_KEY_MAX)
                return false;
            W_CKEY(k, c)[n++] = 'n';
            memcpy(W_CKEY(k, c) + n, &d, 8);
            n += 8;
            break;
        }
        case SL_JSON_BOOL:
            if (n + 1 > W_KEY_MAX)
                return false;
            W_CKEY(k, c)[n++] = api->json_number(v) != 0 ? 't' : 'f';
            break;
        default:
            if (n + 1 > W_KEY_MAX)
                return false;
            W_CKEY(k, c)[n++] = 'z';
            break;
        }
    }
    c->keylen = (uint16_t)n;
    c->ghash = n ? sl_hash_bytes(0x9, W_CKEY(k, c), n) : 0;
    return true;
}

const char *w_extract(wstage *k, const sl_json *root, const sl_json *tnode, int64_t ts, contrib *c)
{
    const sl_api *api = k->api;
    const sl_json *nodes[W_MAX_PATHS];
    nodes[0] = tnode;
    for (size_t i = 1; i < k->n_paths; i++)
        nodes[i] = w_path_get(k, root, &k->paths[i]);
    signed char cond[W_MAX_CONDS];
    memset(cond, -1, k->n_conds);
    c->ts = ts;
    c->present = 0;
    c->held = NULL;
    c->done = c->rejected = false;
    if (!group_key(k, nodes, c))
        return "group key longer than 256 bytes";
    for (size_t ai = 0; ai < k->n_aggs; ai++) {
        const wagg *a = &k->aggs[ai];
        if (a->op == A_DERIVED)
            continue;
        if (a->cond >= 0) {
            if (cond[a->cond] < 0)
                cond[a->cond] = wcond_eval(k->conds[a->cond], api, root, nodes);
            if (!cond[a->cond])
                continue;
        }
        int64_t v = 1;
        switch (a->op) {
        case A_COUNT:
            if (a->path >= 0) { /* count(path): records where the field has a value */
                sl_json_type t = api->json_type(nodes[a->path]);
                if (t == SL_JSON_INVALID || t == SL_JSON_NULL)
                    continue;
            }
            break;
        case A_DISTINCT: {
            bool ok;
            uint64_t h = value_hash(api, nodes[a->path], &ok);
            if (!ok)
                continue;
            v = (int64_t)(h ? h : 1);
            break;
        }
        default:
            if (!scaled(api, nodes[a->path], a, &v))
                continue;
            break;
        }
        c->val[ai] = v;
        c->present |= 1ULL << ai;
    }
    return NULL;
}

bool w_apply_group(wstage *k, wgroup *g, const contrib *c)
{
    for (uint64_t bits = c->present; bits; bits &= bits - 1) {
        int ai = __builtin_ctzll(bits);
        const wagg *a = &k->aggs[ai];
        int64_t *s = &g->slots[a->slot], v = c->val[ai];
        switch (a->op) {
        case A_COUNT: s[0]++; break;
        case A_SUM: s[0] += v; break;
        case A_MIN: if (!s[1] || v < s[0]) s[0] = v, s[1] = 1; break;
        case A_MAX: if (!s[1] || v > s[0]) s[0] = v, s[1] = 1; break;
        case A_AVG: s[0] += v, s[1]++; break;
        case A_FIRST: if (!s[2] || c->ts < s[1]) s[0] = v, s[1] = c->ts, s[2] = 1; break;
        case A_LAST: if (!s[2] || c->ts >= s[1]) s[0] = v, s[1] = c->ts, s[2] = 1; break;
        case A_DISTINCT: {
            wdist *d = (wdist *)(intptr_t)s[0];
            bool ok = w_distinct_add(&d, (uint64_t)v, a->exact);
            s[0] = (int64_t)(intptr_t)d;
            if (!ok)
                return false;
            break;
        }
        case A_DERIVED: break;
        }
    }
    g->dirty = true;
    return true;
}

static bool apply_win(wstage *k, part *p, win *w, const contrib *c)
{
    wgroup *g = w_get_group(k, w, c->ghash, W_CKEY(k, c), c->keylen);
    if (!g || !w_apply_group(k, g, c))
        return false;
    w->dirty = true;
    if (w->closed)
        return w_add_fix(p, w);
    p->dirty_open = true;
    return true;
}

bool w_apply(wstage *k, part *p, const contrib *c)
{
    if (!p->seen || c->ts > p->max_ts)
        p->max_ts = c->ts; /* the windows' clock: event time applied */
    p->seen = true;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t si = 0; si < k->n_sizes; si++) {
        if (c->offset <= p->cov[si])
            continue; /* restored rows of this size already count it */
        const wsize *z = &k->sz[si];
        if (z->kind == WK_SESSION) {
            if (!w_session_apply(k, p, si, c, wm))
                return false;
            if (c->offset > p->agg_off[si])
                p->agg_off[si] = c->offset;
            continue;
        }
        int64_t last = w_floor_div(c->ts, z->slide) * z->slide;
        for (int64_t start = last; start > c->ts - z->size; start -= z->slide) {
            win *w = w_get_win(k, p, si, start, wm);
            if (!w || !apply_win(k, p, w, c))
                return false;
        }
        if (c->offset > p->agg_off[si])
            p->agg_off[si] = c->offset;
    }
    return true;
}
