/*
 * window-kpi — UC05: event-time tumbling-window KPIs (1 m, 15 m, 1 h, 24 h by default).
 *
 * Windows are aligned to the epoch in UTC. State is per source partition — (topic, partition),
 * so partition 0 of two topics never mixes — and for each partition
 * and window size a "series" of windows sorted by start. The watermark of a partition is the
 * highest event time seen minus `allowed_lateness`.
 *
 *   - An event updates its window in every series (open or closed) and marks it changed.
 *   - A window closes when the watermark reaches its end: it emits a final record (revision 0).
 *   - A closed window that an event changes (a late event within `retention`) re-emits a final
 *     record with revision + 1: a correction.
 *   - An event older than watermark - retention is counted ("too_late") and rejected.
 *   - Every `emit_interval`, open windows that changed emit a non-final update.
 *   - Closed windows are forgotten once their end is older than watermark - retention.
 *
 * Emission cycles and acknowledgement: the inputs of a partition aggregated since its last
 * emission share one ack group. An emission for a partition ("cycle") sends every changed or
 * newly closed window of that partition, of all sizes, in the same callback, each KPI record
 * anchored to the group; then the group is released and the next input starts a new one. So an
 * input is finished only when every KPI record that contains it is durable downstream, it costs
 * one group add (not one per window size), and the records of a cycle reach the sink in one batch.
 *
 * Coverage and restart (exactly-once KPIs): every KPI record carries partition = p and offset =
 * the highest input offset of p aggregated into that window size so far. A sink that stores
 * KPI rows and that offset in one transaction can hand both back on partition assignment
 * (api->restore -> on_restore): the windows are rebuilt from the rows, and replayed inputs
 * with offset <= the restored offset are skipped (they are already counted), though still
 * passed through. Each KPI record carries its window's sketch (users_hll: the registers in
 * base64), so a restored window continues the same sketch and distinct_users after a restart
 * is what one uninterrupted run reports. A row without a sketch keeps its count as a floor.
 *
 * Money is kept in integer cents (amount rounded half away from zero), so sums are exact.
 * distinct_users is a HyperLogLog with 2^10 one-byte registers per window (1 KiB): standard
 * error 1.04/sqrt(1024) = 3.25 %, with linear counting (near exact) for small counts.
 */
#include <sluice/stage.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "../common/sl_hash.h"
#include "../common/sl_time.h"

#define MAX_WINDOWS 16
#define HLL_P 10
#define HLL_M (1u << HLL_P)

typedef struct wconf {
    char *time_field;
    sl_list windows;
    int64_t lateness_ms;
    int64_t retention_ms;
    int64_t emit_interval_ms;
    int passthrough;
    char *topic_prefix;
    int close_on_end;
} wconf;

typedef struct win {
    int64_t start;
    uint64_t events, page_views, add_to_cart, orders, payment_failed, refunds;
    int64_t gmv_cents, refund_cents;
    uint64_t users_floor; /* distinct_users restored from a row: the estimate never goes below */
    uint32_t finals;      /* final records emitted so far: the next one's revision */
    uint8_t si;           /* index of its window size */
    bool closed, dirty, in_fix;
    uint8_t hll[HLL_M];
} win;

typedef struct series {
    win **v; /* sorted by start; v[0..n_closed) are closed */
    size_t n, cap, n_closed;
} series;

typedef struct part {
    char *topic; /* the source topic; NULL when records carry none */
    int32_t partition;
    int64_t max_ts;
    bool seen;
    bool dirty_open;          /* some open window changed since the last cycle */
    sl_ack *group;              /* inputs aggregated since the last cycle */
    int64_t agg_off[MAX_WINDOWS]; /* highest input offset aggregated per size (-1: none) */
    int64_t cov[MAX_WINDOWS];   /* restored coverage: inputs at or below are already counted */
    int64_t cov_max;            /* max of cov[]: the fast "nothing to skip" test */
    series s[MAX_WINDOWS];
    win **fix; /* closed windows changed since their last final record */
    size_t n_fix, cap_fix;
} part;

typedef struct wkpi {
    const sl_api *api;
    const wconf *conf;
    size_t n_sizes;
    int64_t size[MAX_WINDOWS];
    char label[MAX_WINDOWS][24];
    char topic[MAX_WINDOWS][96];
    part **parts;
    size_t n_parts;
    part *last;
    sl_position *assigned; /* (topic, partition) assigned: restored KPI rows without a topic */
    size_t n_assigned;
    int64_t last_emit_ms;
    double pow2neg[66]; /* 2^-k for the HLL estimate */
} wkpi;

/* ---- small helpers ------------------------------------------------------------------------ */

static void hll_add(uint8_t *reg, uint64_t h)
{
    unsigned idx = (unsigned)(h >> (64 - HLL_P));
    uint64_t rest = (h << HLL_P) | (1ULL << (HLL_P - 1)); /* the guard bit bounds the rank */
    uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
    if (rank > reg[idx])
        reg[idx] = rank;
}

static uint64_t hll_estimate(const wkpi *k, const uint8_t *reg)
{
    double sum = 0;
    unsigned zeros = 0;
    for (unsigned i = 0; i < HLL_M; i++) {
        sum += k->pow2neg[reg[i]];
        zeros += reg[i] == 0;
    }
    double m = HLL_M, e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros)
        e = m * log(m / zeros); /* linear counting for small cardinalities */
    return (uint64_t)llround(e);
}

/* "1m", "15m", "1h", "24h": whole hours, then minutes, seconds, milliseconds. */
static void duration_label(int64_t ms, char *buf, size_t n)
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

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0); }

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

static void part_free(wkpi *k, part *p)
{
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

static bool same_topic(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static part *find_part(wkpi *k, const char *topic, int32_t partition)
{
    if (k->last && k->last->partition == partition && same_topic(k->last->topic, topic))
        return k->last;
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->partition == partition && same_topic(k->parts[i]->topic, topic))
            return k->last = k->parts[i];
    return NULL;
}

static part *get_part(wkpi *k, const char *topic, int32_t partition)
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

static void drop_part(wkpi *k, const char *topic, int32_t partition)
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
static win *get_win(part *p, size_t si, int64_t start, int64_t watermark, int64_t size)
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

/* ---- emitting -------------------------------------------------------------------------------- */

static sl_err emit_window(wkpi *k, sl_ctx *ctx, part *p, win *w, bool final)
{
    size_t si = w->si;
    char start[32], end[32], key[160], val[1024 + 4 * (HLL_M + 2) / 3 + 64];
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
    uint64_t users = hll_estimate(k, w->hll);
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
    if (vn > 0 && (size_t)vn + 4 * ((HLL_M + 2) / 3) + 3 <= sizeof val) {
        vn += (int)sl_base64_encode(w->hll, HLL_M, val + vn);
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
static bool cycle_due(const wkpi *k, const part *p)
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
static sl_err cycle(wkpi *k, sl_ctx *ctx, part *p, bool close_all)
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

/* ---- callbacks --------------------------------------------------------------------------- */

static sl_err k_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const wconf *conf = config;
    if (conf->windows.n == 0 || conf->windows.n > MAX_WINDOWS) {
        api->log(ctx, SL_LOG_ERROR, "windows: between 1 and %d durations", MAX_WINDOWS);
        return SL_ECONFIG;
    }
    wkpi *k = calloc(1, sizeof *k);
    if (!k)
        return SL_ENOMEM;
    k->api = api;
    k->conf = conf;
    k->n_sizes = conf->windows.n;
    for (size_t i = 0; i < k->n_sizes; i++) {
        int64_t ms;
        if (api->parse_duration(conf->windows.items[i], &ms) != SL_OK || ms <= 0) {
            api->log(ctx, SL_LOG_ERROR, "windows: '%s' is not a positive duration", conf->windows.items[i]);
            free(k);
            return SL_ECONFIG;
        }
        for (size_t j = 0; j < i; j++)
            if (k->size[j] == ms) {
                api->log(ctx, SL_LOG_ERROR, "windows: '%s' is listed twice", conf->windows.items[i]);
                free(k);
                return SL_ECONFIG;
            }
        k->size[i] = ms;
        duration_label(ms, k->label[i], sizeof k->label[i]);
        snprintf(k->topic[i], sizeof k->topic[i], "%s%s", conf->topic_prefix, k->label[i]);
    }
    for (int i = 0; i < 66; i++)
        k->pow2neg[i] = ldexp(1.0, -i);
    k->last_emit_ms = api->monotonic_ms(ctx);
    *self = k;
    return SL_OK;
}

/* The event time of a record: an RFC 3339 string or a number of ms in `time_field`. */
static bool event_time(const sl_api *api, const sl_json *n, int64_t *ts)
{
    switch (api->json_type(n)) {
    case SL_JSON_STRING:
        return sl_ts_parse(api->json_string(n), ts) == SL_TS_OK;
    case SL_JSON_NUMBER: {
        double x = api->json_number(n);
        if (!(x >= 0 && x < (double)SL_TS_MAX_MS))
            return false;
        *ts = (int64_t)x;
        return true;
    }
    default:
        return false;
    }
}

/* 1 page_view, 2 add_to_cart, 3 purchase, 4 payment_failed, 5 refund, 0 other. Switch on the
 * first letter so a known type costs one strcmp. */
static int event_kind(const char *t)
{
    if (!t)
        return 0;
    switch (t[0]) {
    case 'p':
        return !strcmp(t, "page_view") ? 1 : !strcmp(t, "purchase") ? 3 : !strcmp(t, "payment_failed") ? 4 : 0;
    case 'a': return !strcmp(t, "add_to_cart") ? 2 : 0;
    case 'r': return !strcmp(t, "refund") ? 5 : 0;
    default: return 0;
    }
}

static sl_err k_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    wkpi *k = self;
    const sl_api *api = k->api;
    const wconf *c = k->conf;
    uint64_t too_late = 0, no_time = 0, skipped = 0;
    char reason[160];
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        const sl_json *root = api->json(ctx, rec, NULL);
        int64_t ts;
        if (!root || !event_time(api, api->json_get(root, c->time_field), &ts)) {
            no_time++;
            snprintf(reason, sizeof reason, "%s: missing or not a timestamp", c->time_field);
            api->reject(ctx, rec, reason);
            continue;
        }
        part *p = get_part(k, rec->topic, rec->partition);
        if (!p)
            return SL_ENOMEM;
        int64_t max_ts = !p->seen || ts > p->max_ts ? ts : p->max_ts;
        int64_t wm = max_ts - c->lateness_ms;
        bool replay = rec->offset <= p->cov_max; /* some size already counts this input */
        if (ts < wm - c->retention_ms) {
            if (replay) {
                skipped++; /* dead-lettered before the restart already */
                continue;
            }
            char a[32], b[32];
            sl_ts_format(ts, 1, a);
            sl_ts_format(wm > 0 ? wm : 0, 1, b);
            snprintf(reason, sizeof reason, "%s: %s is older than retention (watermark %s)", c->time_field, a, b);
            too_late++;
            api->reject(ctx, rec, reason);
            continue;
        }
        p->max_ts = max_ts;
        p->seen = true;

        const char *user = api->json_string(api->json_get(root, "user_id"));
        int kind = event_kind(api->json_string(api->json_get(root, "event_type")));
        uint64_t uh = user ? sl_hash_bytes(0, user, strlen(user)) : 0;
        int64_t cents = 0;
        if (kind == 3 || kind == 5) {
            double a = api->json_number(api->json_get(root, "amount"));
            if (isfinite(a) && fabs(a) < 9e13)
                cents = llround(a * 100.0);
        }
        bool added = false;
        for (size_t si = 0; si < k->n_sizes; si++) {
            if (replay && rec->offset <= p->cov[si])
                continue;
            int64_t start = floor_div(ts, k->size[si]) * k->size[si];
            win *w = get_win(p, si, start, wm, k->size[si]);
            if (!w)
                return SL_ENOMEM;
            w->events++;
            switch (kind) {
            case 1: w->page_views++; break;
            case 2: w->add_to_cart++; break;
            case 3: w->orders++, w->gmv_cents += cents; break;
            case 4: w->payment_failed++; break;
            case 5: w->refunds++, w->refund_cents += cents; break;
            }
            if (user)
                hll_add(w->hll, uh);
            w->dirty = true;
            if (w->closed) {
                if (!add_fix(p, w))
                    return SL_ENOMEM;
            } else {
                p->dirty_open = true;
            }
            if (rec->offset > p->agg_off[si])
                p->agg_off[si] = rec->offset;
            added = true;
        }
        skipped += !added;
        if (added && rec->ack) {
            /* One group per partition and cycle: the input stays unfinished until every KPI
             * record of the next cycle of its partition is durable. */
            if (!p->group && !(p->group = api->ack_group(ctx)))
                return SL_ENOMEM;
            api->ack_group_add(p->group, rec->ack);
        }
        if (c->passthrough) {
            sl_err e = api->emit(ctx, rec);
            if (e != SL_OK)
                return e;
        }
    }
    if (too_late)
        api->count(ctx, "too_late", too_late);
    if (no_time)
        api->count(ctx, "no_time", no_time);
    if (skipped)
        api->count(ctx, "replayed", skipped);
    for (size_t pi = 0; pi < k->n_parts; pi++) {
        part *p = k->parts[pi];
        if (cycle_due(k, p)) {
            sl_err e = cycle(k, ctx, p, false);
            if (e != SL_OK)
                return e;
        }
    }
    return SL_OK;
}

static sl_err k_flush(void *self, sl_ctx *ctx, int final)
{
    wkpi *k = self;
    int64_t now = k->api->monotonic_ms(ctx);
    bool due = final || now - k->last_emit_ms >= k->conf->emit_interval_ms;
    if (due)
        k->last_emit_ms = now;
    for (size_t pi = 0; pi < k->n_parts; pi++) {
        part *p = k->parts[pi];
        bool close_all = final && k->conf->close_on_end;
        if ((due && (p->dirty_open || p->n_fix)) || close_all || cycle_due(k, p)) {
            sl_err e = cycle(k, ctx, p, close_all);
            if (e != SL_OK)
                return e;
        }
    }
    return SL_OK;
}

static void forget_assigned(wkpi *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->n_assigned; i++)
        if (k->assigned[i].partition == partition && same_topic(k->assigned[i].topic, topic)) {
            free((char *)k->assigned[i].topic);
            k->assigned[i] = k->assigned[--k->n_assigned];
            return;
        }
}

static sl_err k_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    (void)ctx;
    wkpi *k = self;
    for (size_t j = 0; j < n; j++) {
        drop_part(k, parts[j].topic, parts[j].partition); /* state comes back through on_restore, if any */
        forget_assigned(k, parts[j].topic, parts[j].partition);
        sl_position *v = realloc(k->assigned, (k->n_assigned + 1) * sizeof *v);
        if (!v)
            return SL_ENOMEM;
        k->assigned = v;
        v[k->n_assigned].topic = parts[j].topic ? strdup(parts[j].topic) : NULL;
        v[k->n_assigned].partition = parts[j].partition;
        v[k->n_assigned++].offset = parts[j].offset;
    }
    return SL_OK;
}

static sl_err k_on_revoke(void *self, sl_ctx *ctx, const sl_position *parts, size_t n)
{
    (void)ctx;
    wkpi *k = self;
    for (size_t j = 0; j < n; j++) {
        drop_part(k, parts[j].topic, parts[j].partition);
        forget_assigned(k, parts[j].topic, parts[j].partition);
    }
    return SL_OK;
}

/* The source topic of a restored KPI row: its source_topic member, else (rows stored before
 * source_topic existed, or with it empty) the one assigned topic with that partition number. */
static const char *restored_topic(const wkpi *k, const sl_api *api, const sl_json *root, int32_t partition)
{
    const char *t = api->json_string(api->json_get(root, "source_topic"));
    if (t && *t) /* '' is the KPI tables' default: no topic */
        return t;
    for (size_t i = 0; i < k->n_assigned; i++)
        if (k->assigned[i].partition == partition)
            return k->assigned[i].topic;
    return NULL;
}

/* A number member, also accepted as a numeric string (a database may render NUMERIC so). */
static double member_number(const sl_api *api, const sl_json *root, const char *key)
{
    const sl_json *n = api->json_get(root, key);
    if (api->json_type(n) == SL_JSON_STRING) {
        char *end;
        double x = strtod(api->json_string(n), &end);
        return *end ? NAN : x;
    }
    return api->json_number(n);
}

static uint64_t member_count(const sl_api *api, const sl_json *root, const char *key)
{
    double x = member_number(api, root, key);
    return isfinite(x) && x > 0 ? (uint64_t)llround(x) : 0;
}

static int64_t member_cents(const sl_api *api, const sl_json *root, const char *key)
{
    double x = member_number(api, root, key);
    return isfinite(x) && fabs(x) < 9e13 ? llround(x * 100.0) : 0;
}

/* Rebuild windows from KPI rows (topic <prefix><window>, timestamp = window_start, offset =
 * the coverage stored with them). Other records (events) are not ours. */
static sl_err k_on_restore(void *self, sl_ctx *ctx, const sl_batch *state)
{
    wkpi *k = self;
    const sl_api *api = k->api;
    size_t restored = 0;
    for (size_t i = 0; i < state->n; i++) {
        const sl_record *rec = state->recs[i];
        size_t si = 0;
        while (si < k->n_sizes && !(rec->topic && !strcmp(rec->topic, k->topic[si])))
            si++;
        const sl_json *root = si < k->n_sizes ? api->json(ctx, rec, NULL) : NULL;
        if (!root || floor_div(rec->timestamp_ms, k->size[si]) * k->size[si] != rec->timestamp_ms)
            continue;
        part *p = get_part(k, restored_topic(k, api, root, rec->partition), rec->partition);
        if (!p)
            return SL_ENOMEM;
        const sl_json *fin = api->json_get(root, "final");
        bool final = api->json_type(fin) == SL_JSON_BOOL ? api->json_number(fin) != 0
                     : api->json_type(fin) == SL_JSON_STRING && strchr("tT1", api->json_string(fin)[0]);
        /* Insert it where it belongs; v[0..n_closed) must stay the closed windows. */
        win *w = get_win(p, si, rec->timestamp_ms, INT64_MIN, k->size[si]);
        if (!w)
            return SL_ENOMEM;
        w->events = member_count(api, root, "events");
        w->page_views = member_count(api, root, "page_views");
        w->add_to_cart = member_count(api, root, "add_to_cart");
        w->orders = member_count(api, root, "orders");
        w->payment_failed = member_count(api, root, "payment_failed");
        w->refunds = member_count(api, root, "refunds");
        w->gmv_cents = member_cents(api, root, "gmv");
        w->refund_cents = member_cents(api, root, "refund_amount");
        /* The row's sketch (users_hll, base64 of the registers) is the crashed process's own:
         * merging new users into it is exact HLL arithmetic. A row without one (stored before
         * sketches were) leaves its count as a floor under a new sketch's estimate. */
        const char *hll = api->json_string(api->json_get(root, "users_hll"));
        if (hll && sl_base64_decode(hll, w->hll, HLL_M) == 0) {
            w->users_floor = 0;
        } else {
            memset(w->hll, 0, sizeof w->hll);
            w->users_floor = member_count(api, root, "distinct_users");
        }
        w->dirty = false;
        w->finals = final ? (uint32_t)member_count(api, root, "revision") + 1 : 0;
        w->closed = final;
        if (final) {
            /* The watermark had passed its end: restore at least that much event time. */
            int64_t t = rec->timestamp_ms + k->size[si] + k->conf->lateness_ms;
            if (!p->seen || t > p->max_ts)
                p->max_ts = t;
            p->seen = true;
        }
        if (rec->offset > p->cov[si])
            p->cov[si] = p->agg_off[si] = rec->offset;
        if (rec->offset > p->cov_max)
            p->cov_max = rec->offset;
        restored++;
    }
    /* Recount the closed prefix of every series touched (rows arrive in any order). */
    for (size_t pi = 0; pi < k->n_parts; pi++)
        for (size_t si = 0; si < k->n_sizes; si++) {
            series *s = &k->parts[pi]->s[si];
            s->n_closed = 0;
            while (s->n_closed < s->n && s->v[s->n_closed]->closed)
                s->n_closed++;
            for (size_t j = s->n_closed; j < s->n; j++)
                s->v[j]->closed = false; /* an open one before it: both close in order again */
        }
    if (restored)
        api->log(ctx, SL_LOG_INFO, "restored %zu windows from %zu state records", restored, state->n);
    return SL_OK;
}

static void k_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    wkpi *k = self;
    for (size_t i = 0; i < k->n_parts; i++)
        part_free(k, k->parts[i]);
    for (size_t i = 0; i < k->n_assigned; i++)
        free((char *)k->assigned[i].topic);
    free(k->assigned);
    free(k->parts);
    free(k);
}

/* ---- config table and descriptor ---------------------------------------------------------- */

static const sl_config_entry k_config[] = {
    {.key = "time_field", .type = SL_T_STRING, .default_value = "ts", .offset = offsetof(wconf, time_field),
     .description = "event-time field: RFC 3339 string or ms since the epoch"},
    {.key = "windows", .type = SL_T_LIST, .flags = SL_CFG_BOUNDED, .default_value = "[1m, 15m, 1h, 24h]",
     .min = 1, .max = MAX_WINDOWS, .offset = offsetof(wconf, windows),
     .description = "tumbling window sizes, aligned to the epoch (UTC)"},
    {.key = "allowed_lateness", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "30s",
     .min = 0, .max = 31536000000.0, .offset = offsetof(wconf, lateness_ms),
     .description = "watermark = max event time - allowed_lateness; a window closes when it passes the end"},
    {.key = "retention", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "48h", .min = 0,
     .max = 31536000000.0, .offset = offsetof(wconf, retention_ms),
     .description = "closed windows stay correctable this long; older events are rejected"},
    {.key = "emit_interval", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "1s", .min = 0,
     .max = 86400000.0, .offset = offsetof(wconf, emit_interval_ms),
     .description = "how often open windows that changed emit a non-final update"},
    {.key = "passthrough", .type = SL_T_BOOL, .default_value = "true", .offset = offsetof(wconf, passthrough),
     .description = "forward the input records too"},
    {.key = "topic_prefix", .type = SL_T_STRING, .default_value = "kpi_", .offset = offsetof(wconf, topic_prefix),
     .description = "KPI records go to topic <prefix><window>, e.g. kpi_1m"},
    {.key = "close_on_end", .type = SL_T_BOOL, .default_value = "false", .offset = offsetof(wconf, close_on_end),
     .description = "at the end of the input (final flush) close open windows too (batch replays)"},
    {.key = NULL},
};

static const sl_stage_desc k_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "window-kpi",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "event-time tumbling-window e-commerce KPIs with late corrections",
    .config = k_config,
    .config_size = sizeof(wconf),
    .init = k_init,
    .process = k_process,
    .flush = k_flush,
    .close = k_close,
    .on_assign = k_on_assign,
    .on_revoke = k_on_revoke,
    .on_restore = k_on_restore,
};

SL_STAGE_DEFINE(k_desc)
