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
 * Counting only what is durable (count_after: durable, the default with passthrough): an input
 * is counted once its passed-through copy is finished downstream, and not at all when the sink
 * refused that copy and it went to the dead letter (a trigger, a check constraint) — so KPI rows
 * always equal SQL over the rows the sink kept. process() takes what the input adds (a
 * contrib), holds the input and watches it (api->watch); on_finished counts it. Contributions
 * are counted in offset order per partition (a FIFO), so "offset <= coverage" above still means
 * "counted" after a restart. The watermark used to reject too-late inputs is the highest event
 * time processed; the one that closes and forgets windows is the highest counted, which is never
 * ahead of it, so a window an accepted input needs is never forgotten before it is counted.
 *
 * Money is kept in integer cents (amount rounded half away from zero), so sums are exact.
 * distinct_users is a HyperLogLog with 2^10 one-byte registers per window (1 KiB): standard
 * error 1.04/sqrt(1024) = 3.25 %, with linear counting (near exact) for small counts.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_hash.h"
#include "../common/sl_time.h"
#include "wkpi.h"

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
    k->last_emit_ms = api->monotonic_ms(ctx);
    /* Counting at delivery needs the copies (passthrough) and a host with api->watch. */
    k->deferred = conf->passthrough && conf->count_after == 0 &&
                  api->struct_size >= offsetof(sl_api, watch) + sizeof api->watch;
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
        int64_t max_seen = !p->seen_any || ts > p->max_seen ? ts : p->max_seen;
        int64_t wm = max_seen - c->lateness_ms;
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
        p->max_seen = max_seen;
        p->seen_any = true;

        contrib in = {.ts = ts, .offset = rec->offset};
        const char *user = api->json_string(api->json_get(root, "user_id"));
        in.kind = (uint8_t)event_kind(api->json_string(api->json_get(root, "event_type")));
        if (user) {
            in.user_hash = sl_hash_bytes(0, user, strlen(user));
            in.has_user = true;
        }
        if (in.kind == 3 || in.kind == 5) {
            double a = api->json_number(api->json_get(root, "amount"));
            if (isfinite(a) && fabs(a) < 9e13)
                in.cents = llround(a * 100.0);
        }
        for (size_t si = 0; si < k->n_sizes; si++)
            if (!(replay && rec->offset <= p->cov[si]))
                in.sizes |= (uint16_t)(1u << si);
        skipped += !in.sizes;
        sl_err e = SL_OK;
        if (in.sizes && k->deferred && rec->ack) {
            /* Counted in on_finished, once the copy emitted below is durable (or never, if
             * it is dead-lettered); the hold keeps the input unfinished until then. */
            contrib *q = contrib_get(k);
            if (!q)
                return SL_ENOMEM;
            *q = in;
            q->p = p;
            q->held = api->hold(ctx, rec);
            if ((e = api->watch(ctx, rec, q)) != SL_OK) {
                api->log(ctx, SL_LOG_ERROR, "watch failed: %s", sl_strerror(e));
                api->release(q->held);
                contrib_put(k, q);
                return SL_FATAL;
            }
            if (p->tail)
                p->tail->next = q;
            else
                p->head = q;
            p->tail = q;
        } else if (in.sizes && (e = apply(k, ctx, p, &in, rec->ack)) != SL_OK) {
            return e;
        }
        if (c->passthrough && (e = api->emit(ctx, rec)) != SL_OK)
            return e;
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

/* A watched input's copies are finished: count it (unless a copy was dead-lettered), then
 * every contribution behind it in its partition whose note already came. */
static sl_err k_on_finished(void *self, sl_ctx *ctx, void *cookie, int rejected)
{
    wkpi *k = self;
    contrib *q = cookie;
    part *p = q->p;
    if (!p) { /* its partition was dropped meanwhile */
        contrib_put(k, q);
        return SL_OK;
    }
    q->finished = true;
    q->rejected = rejected != 0;
    uint64_t refused = 0;
    while (p->head && p->head->finished) {
        contrib *h = p->head;
        p->head = h->next;
        if (!p->head)
            p->tail = NULL;
        sl_err e = SL_OK;
        if (h->rejected)
            refused++;
        else
            e = apply(k, ctx, p, h, h->held);
        k->api->release(h->held);
        contrib_put(k, h);
        if (e != SL_OK)
            return e;
    }
    if (refused)
        k->api->count(ctx, "refused_downstream", refused);
    return SL_OK;
}

static sl_err k_flush(void *self, sl_ctx *ctx, int reason)
{
    wkpi *k = self;
    int64_t now = k->api->monotonic_ms(ctx);
    bool final = reason != SL_FLUSH_TICK;
    bool due = final || now - k->last_emit_ms >= k->conf->emit_interval_ms;
    if (due)
        k->last_emit_ms = now;
    for (size_t pi = 0; pi < k->n_parts; pi++) {
        part *p = k->parts[pi];
        /* Only at the end of the input (a rebalance's drain keeps windows open: the next owner
         * continues them), and not while inputs of the partition wait to be counted: the drain
         * counts them, then closes. */
        bool close_all = reason == SL_FLUSH_END && k->conf->close_on_end && !p->head;
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
    for (contrib_chunk *ch = k->chunks, *n; ch; ch = n) {
        n = ch->next;
        free(ch);
    }
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
    {.key = "count_after", .type = SL_T_ENUM, .default_value = "durable", .choices = "durable|process",
     .offset = offsetof(wconf, count_after),
     .description = "durable: an input counts once its passed-through copy is durable (never if it is dead-lettered); process: at once"},
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
    .on_finished = k_on_finished,
};

SL_STAGE_DEFINE(k_desc)
