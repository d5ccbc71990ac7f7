/*
 * window — event-time windowed aggregation declared in YAML (docs/stages/window.md).
 *
 * Per source partition — (topic, partition) — and window size, a series of windows sorted by
 * start; each window holds its groups (group_by values), each group its aggregate state. The
 * watermark of a partition is the highest event time seen minus `allowed_lateness`; a window
 * closes when it passes the end (final row, revision 0); a late event within `retention`
 * updates a closed window, which re-emits its changed groups as corrections (revision + 1);
 * older events are dead letters. Every `emit_interval` open windows that changed emit updates.
 *
 * Acknowledgement: the inputs of a partition aggregated since its last emission cycle share one
 * ack group; every row of the next cycle is anchored to it, so an input is finished only when
 * every row containing it is durable downstream (the design of window-kpi, kept).
 *
 * Coverage and restart: rows carry partition = p and offset = the highest input offset of p
 * aggregated into that window size; on_restore rebuilds windows from rows a sink hands back and
 * skips replayed inputs at or below that offset. Distinct columns with a `sketch` column, first/
 * last and avg carry the state a restored window continues from.
 *
 * Quiet partitions: with `idle_timeout`, a partition without input for that long (wall clock)
 * takes the highest event time of the stage's other partitions, so its windows close with the
 * rest of the stream. Future events: with `future_limit`, an event stamped more than that ahead
 * of the wall clock is a dead letter and does not move the watermark.
 */
#include "window.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "../common/sl_hll.h"
#include "../common/sl_time.h"

/* The event time of a record: an RFC 3339 string or a number of ms. */
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

static void k_close(void *self, sl_ctx *ctx);

static sl_err k_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    wstage *k = calloc(1, sizeof *k);
    if (!k)
        return SL_ENOMEM;
    k->api = api;
    k->conf = config;
    char why[600] = "", where[200] = "";
    k->why = why, k->why_len = sizeof why, k->where = where, k->where_len = sizeof where;
    sl_err e = w_spec_compile(k);
    if (e == SL_ECONFIG)
        api->log(ctx, SL_LOG_ERROR, "%s", why);
    if (e == SL_OK && !(k->scratch = calloc(1, k->contrib_size)))
        e = SL_ENOMEM;
    k->why = k->where = NULL;
    if (e != SL_OK) {
        k_close(k, ctx);
        return e;
    }
    /* Counting once the copy is durable needs the copies (passthrough) and api->watch. */
    k->delivered = k->conf->passthrough && k->conf->count_after == 0 &&
                   api->struct_size >= offsetof(sl_api, watch) + sizeof api->watch && api->watch;
    k->last_emit_ms = api->monotonic_ms(ctx);
    *self = k;
    return SL_OK;
}

/* count_after: durable — queue the contribution, hold the input and watch its passthrough copy;
 * on_finished applies it (delivered.c). */
static sl_err watch(wstage *k, sl_ctx *ctx, contrib *q, uint64_t cookie, const sl_record *rec)
{
    q->held = k->api->hold(ctx, rec);
    sl_err e = k->api->watch(ctx, rec, (void *)(uintptr_t)cookie);
    if (e != SL_OK) {
        k->api->log(ctx, SL_LOG_ERROR, "watch failed: %s", sl_strerror(e));
        return SL_FATAL;
    }
    return SL_OK;
}

static sl_err k_on_finished(void *self, sl_ctx *ctx, void *cookie, int rejected)
{
    return w_finished(self, ctx, (uint64_t)(uintptr_t)cookie, rejected);
}

static sl_err k_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    wstage *k = self;
    const sl_api *api = k->api;
    const wconf *c = k->conf;
    uint64_t too_late = 0, no_time = 0, future = 0, skipped = 0, bad = 0;
    char reason[200];
    int64_t mono = api->monotonic_ms(ctx), now = c->future_limit_ms ? api->now_ms(ctx) : 0;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        const sl_json *root = api->json(ctx, rec, NULL);
        int64_t ts;
        const sl_json *tnode = root ? w_path_get(k, root, &k->paths[0]) : NULL;
        if (!root || !event_time(api, tnode, &ts)) {
            no_time++;
            snprintf(reason, sizeof reason, "%s: missing or not a timestamp", c->time_field);
            api->reject(ctx, rec, reason);
            continue;
        }
        if (c->future_limit_ms && ts > now + c->future_limit_ms) {
            /* Quarantined: it must not move the watermark and make every honest event late. */
            char a[32], b[32];
            sl_ts_format(ts, 1, a);
            sl_ts_format(now, 1, b);
            snprintf(reason, sizeof reason, "%s: %s is more than future_limit ahead of the wall clock (%s)",
                     c->time_field, a, b);
            future++;
            api->reject(ctx, rec, reason);
            continue;
        }
        part *p = w_get_part(k, rec->topic, rec->partition);
        if (!p)
            return SL_ENOMEM;
        p->last_input_ms = mono;
        /* Lateness is judged by the event time accepted so far (seen_ts); the windows' clock
         * (max_ts) moves with what is applied — the same thing unless count_after: durable. */
        int64_t seen = !p->seen_in || ts > p->seen_ts ? ts : p->seen_ts;
        int64_t wm = seen - c->lateness_ms;
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
        bool added = false;
        for (size_t si = 0; si < k->n_sizes && !added; si++)
            added = rec->offset > p->cov[si];
        /* Deferred: extracted straight into the partition's queue (no copy). */
        bool defer = added && k->delivered && rec->ack;
        uint64_t cookie = 0;
        contrib *cb = defer ? w_queue_push(k, p, &cookie) : k->scratch;
        if (!cb)
            return SL_ENOMEM;
        const char *why = w_extract(k, root, tnode, ts, cb);
        if (why) {
            if (defer)
                p->q_n--; /* not watched yet: take the entry back */
            bad++;
            api->reject(ctx, rec, why);
            continue;
        }
        cb->offset = rec->offset;
        p->seen_ts = seen;
        p->seen_in = true;
        if (!added) {
            skipped++;
        } else if (defer) {
            sl_err e = watch(k, ctx, cb, cookie, rec);
            if (e != SL_OK)
                return e;
        } else {
            if (!w_apply(k, p, cb))
                return SL_ENOMEM;
            if (rec->ack) {
                /* One group per partition and cycle: the input stays unfinished until every
                 * row of the next cycle of its partition is durable. */
                if (!p->group && !(p->group = api->ack_group(ctx)))
                    return SL_ENOMEM;
                api->ack_group_add(p->group, rec->ack);
            }
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
    if (future)
        api->count(ctx, "future", future);
    if (bad)
        api->count(ctx, "bad_key", bad);
    if (skipped)
        api->count(ctx, "replayed", skipped);
    for (size_t pi = 0; pi < k->n_parts; pi++) {
        part *p = k->parts[pi];
        if (w_cycle_due(k, p)) {
            sl_err e = w_cycle(k, ctx, p, false);
            if (e != SL_OK)
                return e;
        }
    }
    return SL_OK;
}

/* A partition quiet for idle_timeout takes the highest event time of the others. */
static void idle_advance(wstage *k, int64_t mono)
{
    if (!k->conf->idle_timeout_ms || k->n_parts < 2)
        return;
    int64_t top = INT64_MIN;
    for (size_t i = 0; i < k->n_parts; i++)
        if (k->parts[i]->seen && k->parts[i]->max_ts > top)
            top = k->parts[i]->max_ts;
    for (size_t i = 0; i < k->n_parts; i++) {
        part *p = k->parts[i];
        if (p->seen && p->max_ts < top && mono - p->last_input_ms >= k->conf->idle_timeout_ms && !p->q_n) {
            p->max_ts = top;
            if (top > p->seen_ts)
                p->seen_ts = top;
        }
    }
}

static sl_err k_flush(void *self, sl_ctx *ctx, int final)
{
    wstage *k = self;
    int64_t now = k->api->monotonic_ms(ctx);
    bool due = final || now - k->last_emit_ms >= k->conf->emit_interval_ms;
    if (due)
        k->last_emit_ms = now;
    idle_advance(k, now);
    size_t pending = 0;
    for (size_t pi = 0; pi < k->n_parts; pi++)
        pending += k->parts[pi]->q_n;
    for (size_t pi = 0; pi < k->n_parts; pi++) {
        part *p = k->parts[pi];
        /* Not while inputs wait to be counted: the drain counts them, then closes. */
        bool close_all = final == SL_FLUSH_END && k->conf->close_on_end && !pending;
        if ((due && (p->dirty_open || p->n_fix)) || close_all || w_cycle_due(k, p)) {
            sl_err e = w_cycle(k, ctx, p, close_all);
            if (e != SL_OK)
                return e;
        }
    }
    return SL_OK;
}

static void forget_assigned(wstage *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->n_assigned; i++)
        if (k->assigned[i].partition == partition && w_same_topic(k->assigned[i].topic, topic)) {
            free((char *)k->assigned[i].topic);
            k->assigned[i] = k->assigned[--k->n_assigned];
            return;
        }
}

static sl_err k_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    (void)ctx;
    wstage *k = self;
    for (size_t j = 0; j < n; j++) {
        w_drop_part(k, parts[j].topic, parts[j].partition); /* state comes back through on_restore */
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
    wstage *k = self;
    for (size_t j = 0; j < n; j++) {
        w_drop_part(k, parts[j].topic, parts[j].partition);
        forget_assigned(k, parts[j].topic, parts[j].partition);
    }
    return SL_OK;
}

static sl_err k_on_restore(void *self, sl_ctx *ctx, const sl_batch *state) { return w_restore(self, ctx, state); }

/* Config checks without an instance (sluice validate, REST, before init): the host turns
 * c->where into file:line:column. */
static sl_err k_check(const void *config, sl_check *c)
{
    wstage *k = calloc(1, sizeof *k);
    if (!k)
        return SL_ENOMEM;
    k->api = c->api;
    k->conf = config;
    k->why = c->why, k->why_len = c->why_len, k->where = c->where, k->where_len = c->where_len;
    sl_err e = w_spec_compile(k);
    w_spec_free(k);
    free(k);
    return e;
}

static void k_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    wstage *k = self;
    for (size_t i = 0; i < k->n_parts; i++)
        w_part_free(k, k->parts[i]);
    for (size_t i = 0; i < k->n_assigned; i++)
        free((char *)k->assigned[i].topic);
    free(k->assigned);
    free(k->parts);
    w_spec_free(k);
    free(k->scratch);
    free(k->row);
    free(k);
}

/* ---- config table and descriptor ---------------------------------------------------------- */

static const sl_config_entry k_config[] = {
    {.key = "time_field", .type = SL_T_STRING, .default_value = "ts", .offset = offsetof(wconf, time_field),
     .description = "event-time field (a path): RFC 3339 string or ms since the epoch"},
    {.key = "windows", .type = SL_T_LIST, .flags = SL_CFG_BOUNDED, .default_value = "[1m]", .min = 1,
     .max = W_MAX_SIZES, .offset = offsetof(wconf, windows),
     .description = "windows: 'SIZE' (tumbling), 'SIZE every SLIDE' (hopping), 'session GAP', optionally 'as LABEL'"},
    {.key = "group_by", .type = SL_T_LIST, .flags = SL_CFG_BOUNDED, .default_value = "[]", .min = 0,
     .max = W_MAX_GROUP, .offset = offsetof(wconf, group_by),
     .description = "fields (paths) the rows are grouped by: 'path' or 'path as column'"},
    {.key = "aggregates", .type = SL_T_MAP, .flags = SL_CFG_REQUIRED, .offset = offsetof(wconf, aggregates),
     .description = "output columns: name -> count | sum(path) | min | max | avg | first | last | distinct | = expr"},
    {.key = "allowed_lateness", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "30s",
     .min = 0, .max = 31536000000.0, .offset = offsetof(wconf, lateness_ms),
     .description = "watermark = max event time - allowed_lateness; a window closes when it passes the end"},
    {.key = "retention", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "48h", .min = 0,
     .max = 31536000000.0, .offset = offsetof(wconf, retention_ms),
     .description = "closed windows stay correctable this long; older events are dead letters"},
    {.key = "emit_interval", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "1s", .min = 0,
     .max = 86400000.0, .offset = offsetof(wconf, emit_interval_ms),
     .description = "how often open windows that changed emit a non-final update"},
    {.key = "idle_timeout", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "0s", .min = 0,
     .max = 31536000000.0, .offset = offsetof(wconf, idle_timeout_ms),
     .description = "a partition without input this long takes the highest event time of the others (0: off)"},
    {.key = "future_limit", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "0s", .min = 0,
     .max = 315360000000.0, .offset = offsetof(wconf, future_limit_ms),
     .description = "events stamped more than this ahead of the wall clock are dead letters (0: off)"},
    {.key = "passthrough", .type = SL_T_BOOL, .default_value = "true", .offset = offsetof(wconf, passthrough),
     .description = "forward the input records too"},
    {.key = "topic_prefix", .type = SL_T_STRING, .default_value = "window_", .offset = offsetof(wconf, topic_prefix),
     .description = "rows go to topic <prefix><window label>, e.g. window_1m"},
    {.key = "count_after", .type = SL_T_ENUM, .default_value = "durable", .choices = "durable|process",
     .offset = offsetof(wconf, count_after),
     .description = "durable: a record counts once its passthrough copy is durable downstream (never if refused); process: as it passes"},
    {.key = "close_on_end", .type = SL_T_BOOL, .default_value = "false", .offset = offsetof(wconf, close_on_end),
     .description = "at the end of the input (final flush) close open windows too (batch replays)"},
    {.key = NULL},
};

static const sl_stage_desc k_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "window",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "event-time windowed aggregation (tumbling, hopping, session) declared in YAML",
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
    .check = k_check,
};

SL_STAGE_DEFINE(k_desc)
