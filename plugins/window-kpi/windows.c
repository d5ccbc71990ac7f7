/* windows.c — window-kpi's partitions and windows: counting an input, emission cycles and
 * the distinct-users sketch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "../common/sl_hll.h"
#include "../common/sl_time.h"
#include "wkpi.h"

/* ---- small helpers ------------------------------------------------------------------------ */

/* "1m", "15m", "1h", "24h": whole hours, then minutes, seconds, milliseconds. */
void duration_label(int64_t ms, char *buf, size_t n)
{
    if (ms % 3600000 == 0)
        snprintf(buf, n, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, n, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, n, "%lldms", (long long)ms);
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

/* Append "12.34" for a number of cents. */
static int put_cents(char *p, size_t n, int64_t c)
{
    uint64_t a = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    return snprintf(p, n, "%s%llu.%02llu", c < 0 ? "-" : "", (unsigned long long)(a / 100),
                    (unsigned long long)(a % 100));
}

static int put_ratio(char *p, size_t n, uint64_t num, uint64_t den)
{
    return den ? snprintf(p, n, "%.6f", (double)num / (double)den) : snprintf(p, n, "null");
}

/* ---- partitions and windows ---------------------------------------------------------------- */

/* Frees a partition's state. Its contributions still waiting: those whose note came are
 * freed, the others are orphaned (freed when their note comes); their inputs are let go. */
void part_free(wkpi *k, part *p)
{
    for (contrib *c = p->head, *n; c; c = n) {
        n = c->next;
        if (c->held)
            k->api->release(c->held);
        c->held = NULL;
        c->p = NULL;
        if (c->finished)
            contrib_put(k, c);
    }
    for (size_t i = 0; i < k->n_sizes; i++) {
        for (size_t j = 0; j < p->s[i].n; j++)
            free(p->s[i].v[j]);
        free(p->s[i].v);
    }
    if (p->group)
        k->api->release(p->group);
    free(p->fix);
    free(p->topic);
    free(p);
}

bool same_topic(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static part *find_part(wkpi *k, const char *topic, int32_t partition)
{
    if (k->last && k->last->partition == partition && same_topic(k->last->topic, topic))
        return k->last;
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->partition == partition && same_topic(k->parts[i]->topic, topic))
            return k->last = k->parts[i];
    return NULL;
}

part *get_part(wkpi *k, const char *topic, int32_t partition)
{
    part *p = find_part(k, topic, partition);
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
    p->cov_max = -1;
    for (size_t i = 0; i < MAX_WINDOWS; i++)
        p->agg_off[i] = p->cov[i] = -1;
    k->parts[k->n_parts++] = p;
    return k->last = p;
}

void drop_part(wkpi *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->partition == partition && same_topic(k->parts[i]->topic, topic)) {
            part_free(k, k->parts[i]);
            k->parts[i] = k->parts[--k->n_parts];
            break;
        }
    k->last = NULL;
}

/* The window of size `si` starting at `start`, created if absent. Events mostly hit the
 * newest window, so look from the end. */
win *get_win(part *p, size_t si, int64_t start, int64_t watermark, int64_t size)
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
    if (!w)
        return NULL;
    w->start = start;
    w->si = (uint8_t)si;
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
    s->v[i] = w;
    s->n++;
    /* A late event in a window nobody had seen: born closed (its final record goes out as a
     * correction with revision 0). Only at the edge of the closed prefix or inside it, so
     * v[0..n_closed) stay exactly the closed windows; a window after an unsettled one is
     * closed by the next cycle instead. */
    if (i < s->n_closed || (i == s->n_closed && start + size <= watermark)) {
        w->closed = true;
        s->n_closed++;
    }
    return w;
}

static bool add_fix(part *p, win *w)
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

/* ---- counting an input ------------------------------------------------------------------ */

contrib *contrib_get(wkpi *k)
{
    if (!k->free_contribs) {
        contrib_chunk *ch = malloc(sizeof *ch);
        if (!ch)
            return NULL;
        ch->next = k->chunks;
        k->chunks = ch;
        for (size_t i = 0; i < sizeof ch->v / sizeof ch->v[0]; i++) {
            ch->v[i].next = k->free_contribs;
            k->free_contribs = &ch->v[i];
        }
    }
    contrib *c = k->free_contribs;
    k->free_contribs = c->next;
    memset(c, 0, sizeof *c);
    return c;
}

void contrib_put(wkpi *k, contrib *c)
{
    c->next = k->free_contribs;
    k->free_contribs = c;
}

/* Counts one input in every window size of c->sizes and moves the watermark's base; `ack`
 * (the input, or NULL) joins the partition's group, so it is finished only when the KPI
 * records of the partition's next cycle are durable. */
sl_err apply(wkpi *k, sl_ctx *ctx, part *p, const contrib *c, sl_ack *ack)
{
    if (!p->seen || c->ts > p->max_ts)
        p->max_ts = c->ts;
    p->seen = true;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t si = 0; si < k->n_sizes; si++) {
        if (!(c->sizes & (1u << si)))
            continue;
        int64_t start = floor_div(c->ts, k->size[si]) * k->size[si];
        win *w = get_win(p, si, start, wm, k->size[si]);
        if (!w)
            return SL_ENOMEM;
        w->events++;
        switch (c->kind) {
        case 1: w->page_views++; break;
        case 2: w->add_to_cart++; break;
        case 3: w->orders++, w->gmv_cents += c->cents; break;
        case 4: w->payment_failed++; break;
        case 5: w->refunds++, w->refund_cents += c->cents; break;
        }
        if (c->has_user)
            sl_hll_add(w->hll, c->user_hash);
        w->dirty = true;
        if (w->closed) {
            if (!add_fix(p, w))
                return SL_ENOMEM;
        } else {
            p->dirty_open = true;
        }
        if (c->offset > p->agg_off[si])
            p->agg_off[si] = c->offset;
    }
    if (ack) {
        if (!p->group && !(p->group = k->api->ack_group(ctx)))
            return SL_ENOMEM;
        k->api->ack_group_add(p->group, ack);
    }
    return SL_OK;
}

/* ---- emitting -------------------------------------------------------------------------------- */

static sl_err emit_window(wkpi *k, sl_ctx *ctx, part *p, win *w, bool final)
{
    size_t si = w->si;
    char start[32], end[32], key[160], val[1024 + 4 * (SL_HLL_M + 2) / 3 + 64];
    sl_ts_format(w->start, w->start % 1000 != 0, start);
    sl_ts_format(w->start + k->size[si], (w->start + k->size[si]) % 1000 != 0, end);
    int kn = snprintf(key, sizeof key, "%s|%s|%d", k->label[si], start, (int)p->partition);
    char topic_json[200] = "";
    if (p->topic && strlen(p->topic) < 150 && !strpbrk(p->topic, "\"\\"))
        snprintf(topic_json, sizeof topic_json, "\"source_topic\":\"%s\",", p->topic);
    char gmv[32], refund[32], aov[32], sr[32], cr[32];
    put_cents(gmv, sizeof gmv, w->gmv_cents);
    put_cents(refund, sizeof refund, w->refund_cents);
    if (w->orders) {
        /* gmv / orders in cents, rounded half away from zero */
        int64_t q = (w->gmv_cents + (int64_t)w->orders / 2) / (int64_t)w->orders;
        put_cents(aov, sizeof aov, q);
    } else {
        snprintf(aov, sizeof aov, "null");
    }
    put_ratio(sr, sizeof sr, w->orders, w->orders + w->payment_failed);
    put_ratio(cr, sizeof cr, w->orders, w->page_views);
    uint64_t users = sl_hll_estimate(w->hll);
    if (users < w->users_floor)
        users = w->users_floor;
    uint32_t revision = final ? w->finals : 0;
    int vn = snprintf(val, sizeof val,
                      "{\"window\":\"%s\",\"window_start\":\"%s\",\"window_end\":\"%s\",%s\"partition\":%d,"
                      "\"events\":%llu,\"page_views\":%llu,\"add_to_cart\":%llu,\"orders\":%llu,"
                      "\"payment_failed\":%llu,\"refunds\":%llu,\"gmv\":%s,\"refund_amount\":%s,"
                      "\"avg_order_value\":%s,\"success_rate\":%s,\"conversion_rate\":%s,"
                      "\"distinct_users\":%llu,\"final\":%s,\"revision\":%u,\"users_hll\":\"",
                      k->label[si], start, end, topic_json, (int)p->partition, (unsigned long long)w->events,
                      (unsigned long long)w->page_views, (unsigned long long)w->add_to_cart,
                      (unsigned long long)w->orders, (unsigned long long)w->payment_failed,
                      (unsigned long long)w->refunds, gmv, refund, aov, sr, cr,
                      (unsigned long long)users, final ? "true" : "false", revision);
    /* The sketch itself, so a restart merges into it instead of starting a new one. */
    if (vn > 0 && (size_t)vn + 4 * ((SL_HLL_M + 2) / 3) + 3 <= sizeof val) {
        vn += (int)sl_base64_encode(w->hll, SL_HLL_M, val + vn);
        val[vn++] = '"';
        val[vn++] = '}';
        val[vn] = 0;
    }
    sl_record rec = {
        .key = key,
        .key_len = (size_t)kn,
        .value = val,
        .value_len = (size_t)vn,
        .timestamp_ms = w->start,
        .topic = k->topic[si],
        .partition = p->partition,
        .offset = p->agg_off[si], /* the coverage this row represents */
        .ack = p->group,          /* NULL when no input is behind it (a restored window) */
    };
    sl_err e = k->api->emit(ctx, &rec);
    if (e != SL_OK)
        return e;
    w->dirty = false;
    if (final)
        w->finals++;
    return SL_OK;
}

/* Does partition p need a cycle now: a window the watermark passed, or a pending correction? */
bool cycle_due(const wkpi *k, const part *p)
{
    if (!p->seen)
        return false;
    if (p->n_fix)
        return true;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t si = 0; si < k->n_sizes; si++) {
        const series *s = &p->s[si];
        if (s->n_closed < s->n && s->v[s->n_closed]->start + k->size[si] <= wm)
            return true;
    }
    return false;
}

/* One emission cycle of partition p: corrections, windows the watermark closed (all open ones
 * with close_all), and every other changed open window, all anchored to the partition's group;
 * then the group is released and windows beyond retention are forgotten. */
sl_err cycle(wkpi *k, sl_ctx *ctx, part *p, bool close_all)
{
    sl_err e;
    int64_t wm = p->max_ts - k->conf->lateness_ms;
    for (size_t i = 0; i < p->n_fix; i++) {
        win *w = p->fix[i];
        w->in_fix = false;
        if (w->dirty && (e = emit_window(k, ctx, p, w, true)) != SL_OK)
            return e;
    }
    p->n_fix = 0;
    for (size_t si = 0; si < k->n_sizes; si++) {
        series *s = &p->s[si];
        while (s->n_closed < s->n && (close_all || (p->seen && s->v[s->n_closed]->start + k->size[si] <= wm))) {
            win *w = s->v[s->n_closed++];
            w->closed = true;
            if ((e = emit_window(k, ctx, p, w, true)) != SL_OK)
                return e;
        }
        for (size_t j = s->n_closed; j < s->n; j++)
            if (s->v[j]->dirty && (e = emit_window(k, ctx, p, s->v[j], false)) != SL_OK)
                return e;
        size_t drop = 0;
        while (p->seen && drop < s->n_closed && s->v[drop]->start + k->size[si] <= wm - k->conf->retention_ms)
            free(s->v[drop++]);
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

