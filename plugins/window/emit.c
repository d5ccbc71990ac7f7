/* emit.c — output rows and emission cycles.
 *
 * A row: {"window","window_start","window_end",["source_topic",]"partition", group columns,
 * aggregate and derived columns in the order configured, "final","revision", then the state a
 * restart needs (distinct sketches, first/last times, avg sums and counts)}.
 *
 * Derived columns are evaluated in exact rationals (128-bit numerator and denominator), so
 * gmv / orders rounded to the cent is exact, and a ratio printed with `decimals` is the one
 * double division of the exact numerator by the exact denominator. */
#include "window.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "../common/sl_hll.h"
#include "../common/sl_time.h"

/* ---- a growable output buffer (grown at emission, never per record) ------------------------ */

typedef struct obuf {
    wstage *k;
    size_t n;
    bool oom;
} obuf;

static bool ob_reserve(obuf *b, size_t more)
{
    wstage *k = b->k;
    if (b->n + more + 1 <= k->row_cap)
        return true;
    size_t cap = k->row_cap ? k->row_cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *r = realloc(k->row, cap);
    if (!r) {
        b->oom = true;
        return false;
    }
    k->row = r;
    k->row_cap = cap;
    return true;
}

static void ob_add(obuf *b, const char *s, size_t n)
{
    if (!ob_reserve(b, n))
        return;
    memcpy(b->k->row + b->n, s, n);
    b->n += n;
    b->k->row[b->n] = 0;
}

static void ob_str(obuf *b, const char *s) { ob_add(b, s, strlen(s)); }

static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(obuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        ob_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string literal. */
static void ob_json_str(obuf *b, const char *s, size_t n)
{
    ob_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            ob_add(b, e, 2);
        } else if (c < 0x20) {
            ob_printf(b, "\\u%04x", c);
        } else {
            ob_add(b, (const char *)&s[i], 1);
        }
    }
    ob_add(b, "\"", 1);
}

/* v minor units of 10^-scale: exactly `scale` digits when fixed, else trailing zeros trimmed. */
static void ob_dec(obuf *b, int64_t v, int scale, int64_t pow10, bool fixed)
{
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char frac[24] = "";
    int fl = 0;
    if (scale > 0) {
        fl = snprintf(frac, sizeof frac, "%0*llu", scale, (unsigned long long)(a % (uint64_t)pow10));
        if (!fixed)
            while (fl > 0 && frac[fl - 1] == '0')
                frac[--fl] = 0;
    }
    ob_printf(b, "%s%llu%s%s", v < 0 ? "-" : "", (unsigned long long)(a / (uint64_t)pow10), fl ? "." : "", frac);
}

/* ---- derived columns ------------------------------------------------------------------------ */

typedef struct rat {
    __int128 n, d; /* d > 0 */
    bool null;
} rat;

static __int128 gcd128(__int128 a, __int128 b)
{
    if (a < 0)
        a = -a;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static rat norm(rat r)
{
    if (r.null)
        return r;
    if (r.d < 0)
        r.n = -r.n, r.d = -r.d;
    __int128 g = gcd128(r.n, r.d);
    if (g > 1)
        r.n /= g, r.d /= g;
    return r;
}

/* The value of aggregate column a of group g as a rational (null: no value). */
static rat agg_value(const wstage *k, const wgroup *g, const wagg *a)
{
    const int64_t *s = &g->slots[a->slot];
    switch (a->op) {
    case A_COUNT: return (rat){s[0], 1, false};
    case A_SUM: return norm((rat){s[0], a->pow10, false});
    case A_MIN:
    case A_MAX: return s[1] ? norm((rat){s[0], a->pow10, false}) : (rat){0, 1, true};
    case A_FIRST:
    case A_LAST: return s[2] ? norm((rat){s[0], a->pow10, false}) : (rat){0, 1, true};
    case A_AVG: return s[1] ? norm((rat){s[0], (__int128)a->pow10 * s[1], false}) : (rat){0, 1, true};
    case A_DISTINCT: {
        bool exact;
        return (rat){(__int128)w_distinct_count((const wdist *)(intptr_t)s[0], &exact), 1, false};
    }
    case A_DERIVED: break;
    }
    (void)k;
    return (rat){0, 1, true};
}

static rat derive(const wstage *k, const wgroup *g, const wagg *a)
{
    rat st[64];
    int sp = 0;
    for (int i = 0; i < a->nrpn; i++) {
        const dstep *d = &a->rpn[i];
        if (d->op == 'c') {
            st[sp++] = (rat){d->num, d->den, false};
            continue;
        }
        if (d->op == 'v') {
            st[sp++] = agg_value(k, g, &k->aggs[d->col]);
            continue;
        }
        if (d->op == 'n') {
            st[sp - 1].n = -st[sp - 1].n;
            continue;
        }
        rat y = st[--sp], x = st[sp - 1], r = {0, 1, x.null || y.null};
        if (!r.null)
            switch (d->op) {
            case '+': r.n = x.n * y.d + y.n * x.d, r.d = x.d * y.d; break;
            case '-': r.n = x.n * y.d - y.n * x.d, r.d = x.d * y.d; break;
            case '*': r.n = x.n * y.n, r.d = x.d * y.d; break;
            case '/':
                if (y.n == 0)
                    r.null = true; /* division by zero: the column is null */
                else
                    r.n = x.n * y.d, r.d = x.d * y.n;
                break;
            }
        st[sp - 1] = norm(r);
    }
    return st[0];
}

static void ob_derived(obuf *b, const wstage *k, const wgroup *g, const wagg *a)
{
    rat r = derive(k, g, a);
    if (r.null) {
        ob_str(b, "null");
        return;
    }
    if (a->scale < 0) {
        ob_printf(b, "%.*f", a->decimals, (double)r.n / (double)r.d);
        return;
    }
    __int128 p = 1;
    for (int i = 0; i < a->scale; i++)
        p *= 10;
    __int128 t = r.n * p, at = t < 0 ? -t : t;
    __int128 q = (2 * at + r.d) / (2 * r.d); /* half away from zero */
    ob_dec(b, (int64_t)(t < 0 ? -q : q), a->scale, (int64_t)p, true);
}

/* ---- a row ---------------------------------------------------------------------------------- */

static void ob_group_value(obuf *b, const char **p)
{
    const char *q = *p;
    switch (*q++) {
    case 's': {
        size_t l = strlen(q);
        ob_json_str(b, q, l);
        q += l + 1;
        break;
    }
    case 'n': {
        double d;
        memcpy(&d, q, 8);
        q += 8;
        char t[40];
        snprintf(t, sizeof t, "%.15g", d);
        if (strtod(t, NULL) != d)
            snprintf(t, sizeof t, "%.17g", d);
        ob_str(b, t);
        break;
    }
    case 't': ob_str(b, "true"); break;
    case 'f': ob_str(b, "false"); break;
    default: ob_str(b, "null"); break;
    }
    *p = q;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The exact values of a distinct column in its state column: "x" + base64 of the hashes. */
static void ob_dist_state(obuf *b, const wdist *d)
{
    ob_add(b, "\"", 1);
    if (d && d->hll) {
        if (ob_reserve(b, 4 * ((SL_HLL_M + 2) / 3)))
            b->n += sl_base64_encode(d->hll, SL_HLL_M, b->k->row + b->n);
    } else {
        ob_add(b, "x", 1);
        /* sorted, so the same set always reads the same whatever the insertion order */
        uint64_t *v = d && d->n ? malloc(d->n * sizeof *v) : NULL;
        size_t nv = 0;
        if (d && d->n && !v) {
            b->oom = true;
            return;
        }
        for (uint32_t i = 0; d && i < d->cap; i++)
            if (d->tab[i])
                v[nv++] = d->tab[i];
        if (nv)
            qsort(v, nv, sizeof *v, cmp_u64);
        uint8_t chunk[24]; /* three hashes: 32 base64 characters, no padding inside */
        size_t cn = 0;
        for (size_t i = 0; i < nv; i++) {
            memcpy(chunk + cn, &v[i], 8);
            cn += 8;
            if (cn == sizeof chunk) {
                if (ob_reserve(b, 32))
                    b->n += sl_base64_encode(chunk, cn, b->k->row + b->n);
                cn = 0;
            }
        }
        free(v);
        if (cn && ob_reserve(b, 4 * ((cn + 2) / 3)))
            b->n += sl_base64_encode(chunk, cn, b->k->row + b->n);
    }
    ob_add(b, "\"", 1);
}

int64_t w_end(const wstage *k, const win *w)
{
    const wsize *z = &k->sz[w->si];
    return z->kind == WK_SESSION ? w->last + z->size : w->start + z->size;
}

static sl_err emit_group(wstage *k, sl_ctx *ctx, part *p, win *w, wgroup *g, bool final)
{
    const wsize *z = &k->sz[w->si];
    char start[32], end[32];
    int64_t e_ms = w_end(k, w);
    sl_ts_format(w->start, w->start % 1000 != 0, start);
    sl_ts_format(e_ms, e_ms % 1000 != 0, end);
    obuf b = {.k = k};
    ob_printf(&b, "{\"window\":\"%s\",\"window_start\":\"%s\",\"window_end\":\"%s\",", z->label, start, end);
    if (p->topic) {
        ob_str(&b, "\"source_topic\":");
        ob_json_str(&b, p->topic, strlen(p->topic));
        ob_str(&b, ",");
    }
    ob_printf(&b, "\"partition\":%d", (int)p->partition);
    const char *kp = g->key;
    for (size_t i = 0; i < k->n_group; i++) {
        ob_str(&b, ",");
        ob_json_str(&b, k->group_name[i], strlen(k->group_name[i]));
        ob_str(&b, ":");
        ob_group_value(&b, &kp);
    }
    for (size_t ai = 0; ai < k->n_aggs; ai++) {
        const wagg *a = &k->aggs[ai];
        const int64_t *s = &g->slots[a->slot];
        ob_printf(&b, ",\"%s\":", a->name);
        switch (a->op) {
        case A_COUNT: ob_printf(&b, "%lld", (long long)s[0]); break;
        case A_SUM: ob_dec(&b, s[0], a->scale, a->pow10, a->fixed); break;
        case A_MIN:
        case A_MAX:
            if (s[1])
                ob_dec(&b, s[0], a->scale, a->pow10, a->fixed);
            else
                ob_str(&b, "null");
            break;
        case A_FIRST:
        case A_LAST:
            if (s[2])
                ob_dec(&b, s[0], a->scale, a->pow10, a->fixed);
            else
                ob_str(&b, "null");
            break;
        case A_AVG:
            if (s[1]) {
                int64_t n = s[1], at = s[0] < 0 ? -s[0] : s[0], q = (2 * at + n) / (2 * n);
                ob_dec(&b, s[0] < 0 ? -q : q, a->scale, a->pow10, a->fixed);
            } else {
                ob_str(&b, "null");
            }
            break;
        case A_DISTINCT: {
            bool exact;
            uint64_t n = w_distinct_count((const wdist *)(intptr_t)s[0], &exact);
            ob_printf(&b, "%llu", (unsigned long long)n);
            if (a->exact > 0)
                ob_printf(&b, ",\"%s_exact\":%s", a->name, exact ? "true" : "false");
            break;
        }
        case A_DERIVED: ob_derived(&b, k, g, a); break;
        }
    }
    if (w->retract) {
        char into[32];
        sl_ts_format(w->merged_into, w->merged_into % 1000 != 0, into);
        ob_printf(&b, ",\"merged_into\":\"%s\"", into);
    }
    ob_printf(&b, ",\"final\":%s,\"revision\":%u", final ? "true" : "false", final ? g->finals : 0);
    for (size_t ai = 0; ai < k->n_aggs; ai++) {
        const wagg *a = &k->aggs[ai];
        const int64_t *s = &g->slots[a->slot];
        if (a->op == A_DISTINCT && a->sketch) {
            ob_printf(&b, ",\"%s\":", a->sketch);
            ob_dist_state(&b, (const wdist *)(intptr_t)s[0]);
        } else if (a->op == A_FIRST || a->op == A_LAST) {
            ob_printf(&b, ",\"%s_at\":%lld", a->name, (long long)s[1]);
        } else if (a->op == A_AVG) {
            ob_printf(&b, ",\"%s_sum\":", a->name);
            ob_dec(&b, s[0], a->scale, a->pow10, false);
            ob_printf(&b, ",\"%s_n\":%lld", a->name, (long long)s[1]);
        }
    }
    ob_str(&b, "}");
    if (b.oom)
        return SL_ENOMEM;
    /* the key: window, start, partition and the group's values */
    char key[W_KEY_MAX * 2 + 128];
    int kn = snprintf(key, sizeof key, "%s|%s|%d", z->label, start, (int)p->partition);
    kp = g->key;
    for (size_t i = 0; i < k->n_group && kn < (int)sizeof key - 1; i++) {
        char c = *kp++;
        if (c == 's') {
            size_t l = strlen(kp);
            kn += snprintf(key + kn, sizeof key - (size_t)kn, "|%s", kp);
            kp += l + 1;
        } else if (c == 'n') {
            double d;
            memcpy(&d, kp, 8);
            kp += 8;
            kn += snprintf(key + kn, sizeof key - (size_t)kn, "|%.17g", d);
        } else {
            kn += snprintf(key + kn, sizeof key - (size_t)kn, "|%s", c == 't' ? "true" : c == 'f' ? "false" : "");
        }
    }
    if (kn >= (int)sizeof key)
        kn = (int)sizeof key - 1;
    sl_record rec = {
        .key = key,
        .key_len = (size_t)kn,
        .value = k->row,
        .value_len = b.n,
        .timestamp_ms = w->start,
        .topic = z->topic,
        .partition = p->partition,
        .offset = p->agg_off[w->si], /* the coverage this row represents */
        .ack = p->group,             /* NULL when no input is behind it (a restored window) */
    };
    sl_err e = k->api->emit(ctx, &rec);
    if (e != SL_OK)
        return e;
    g->dirty = false;
    w->emitted = true;
    if (final)
        g->finals++;
    return SL_OK;
}

/* Every group of w (all: a window closing), or only the changed ones. */
sl_err w_emit_window(wstage *k, sl_ctx *ctx, part *p, win *w, bool final, bool all)
{
    for (uint32_t i = 0; i < w->cap; i++) {
        wgroup *g = w->tab[i];
        if (g && (all || g->dirty)) {
            sl_err e = emit_group(k, ctx, p, w, g, final);
            if (e != SL_OK)
                return e;
        }
    }
    w->dirty = false;
    return SL_OK;
}

/* ---- cycles --------------------------------------------------------------------------------- */

bool w_cycle_due(const wstage *k, const part *p)
{
    if (!p->seen)
        return false;
    if (p->n_fix)
        return true;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t si = 0; si < k->n_sizes; si++) {
        const series *s = &p->s[si];
        if (k->sz[si].kind == WK_SESSION) {
            if (w_session_due(k, p, si, wm))
                return true;
            continue;
        }
        if (s->n_closed < s->n && s->v[s->n_closed]->start + k->sz[si].size <= wm)
            return true;
    }
    return false;
}

/* One emission cycle of partition p: corrections, windows the watermark closed (all open ones
 * with close_all), and every other changed open window, all anchored to the partition's group;
 * then the group is released and windows beyond retention are forgotten. */
sl_err w_cycle(wstage *k, sl_ctx *ctx, part *p, bool close_all)
{
    sl_err e;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t i = 0; i < p->n_fix; i++) {
        win *w = p->fix[i];
        w->in_fix = false;
        if (w->retract) {
            /* a session merged into an older one: its row says so, with nothing in it */
            wgroup *g = w_session_group(w);
            if (w->emitted && g) {
                w_group_clear(k, g); /* its values live on in the survivor */
                if ((e = emit_group(k, ctx, p, w, g, true)) != SL_OK)
                    return e;
            }
            w_win_free(k, w);
            p->fix[i] = NULL;
            continue;
        }
        if (w->dirty && (e = w_emit_window(k, ctx, p, w, true, false)) != SL_OK)
            return e;
    }
    p->n_fix = 0;
    for (size_t si = 0; si < k->n_sizes; si++) {
        series *s = &p->s[si];
        if (k->sz[si].kind == WK_SESSION) {
            if ((e = w_session_cycle(k, ctx, p, si, close_all, wm)) != SL_OK)
                return e;
            continue;
        }
        int64_t size = k->sz[si].size;
        while (s->n_closed < s->n && (close_all || (p->seen && s->v[s->n_closed]->start + size <= wm))) {
            win *w = s->v[s->n_closed++];
            w->closed = true;
            if ((e = w_emit_window(k, ctx, p, w, true, true)) != SL_OK)
                return e;
        }
        for (size_t j = s->n_closed; j < s->n; j++)
            if (s->v[j]->dirty && (e = w_emit_window(k, ctx, p, s->v[j], false, false)) != SL_OK)
                return e;
        size_t drop = 0;
        while (p->seen && drop < s->n_closed && s->v[drop]->start + size <= wm - k->conf->retention_ms)
            w_win_free(k, s->v[drop++]);
        if (drop) {
            memmove(s->v, s->v + drop, (s->n - drop) * sizeof *s->v);
            s->n -= drop;
            s->n_closed -= drop;
        }
    }
    p->dirty_open = false;
    if (p->group) {
        k->api->release(p->group); /* each emitted record holds its own reference */
        p->group = NULL;
    }
    return SL_OK;
}
