/* restore.c — window-kpi rebuilds its windows from the KPI rows a sink hands back on
 * partition assignment (api->restore -> on_restore). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "wkpi.h"

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
sl_err k_on_restore(void *self, sl_ctx *ctx, const sl_batch *state)
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
        if (hll && sl_base64_decode(hll, w->hll, SL_HLL_M) == 0) {
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
            if (!p->seen_any || t > p->max_seen)
                p->max_seen = t;
            p->seen = p->seen_any = true;
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

