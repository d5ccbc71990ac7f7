/* restore.c — rebuild windows from the rows a sink hands back (api->restore -> on_restore).
 *
 * A row is ours when its topic is <topic_prefix><label> of a configured window and its timestamp
 * (window_start) is aligned to that window's slide. Its group columns give the group, its
 * aggregate columns (numbers, or numeric strings as a database may render NUMERIC) the state,
 * its offset the coverage: replayed inputs at or below it are not aggregated again. A distinct
 * column continues from its `sketch` column (the HLL registers, or "x" + the exact values'
 * hashes); without one the restored count is a floor under the new estimate. */
#include "window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_base64.h"
#include "../common/sl_hash.h"
#include "../common/sl_hll.h"
#include "../common/sl_time.h"

static double member_number(const sl_api *api, const sl_json *root, const char *key, bool *has)
{
    const sl_json *n = api->json_get(root, key);
    *has = true;
    if (api->json_type(n) == SL_JSON_STRING) {
        char *end;
        const char *s = api->json_string(n);
        double x = strtod(s, &end);
        if (end != s && !*end)
            return x;
    } else if (api->json_type(n) == SL_JSON_NUMBER || api->json_type(n) == SL_JSON_BOOL) {
        return api->json_number(n);
    }
    *has = false;
    return 0;
}

static int64_t member_scaled(const sl_api *api, const sl_json *root, const char *key, int64_t pow10, bool *has)
{
    double x = member_number(api, root, key, has) * (double)pow10;
    if (!*has || !isfinite(x) || fabs(x) >= 9e15) {
        *has = false;
        return 0;
    }
    return llround(x);
}

static const char *restored_topic(const wstage *k, const sl_api *api, const sl_json *root, int32_t partition)
{
    const char *t = api->json_string(api->json_get(root, "source_topic"));
    if (t && *t) /* '' is a table's default: no topic */
        return t;
    for (size_t i = 0; i < k->n_assigned; i++)
        if (k->assigned[i].partition == partition)
            return k->assigned[i].topic;
    return NULL;
}

/* The group key of a row, encoded as w_extract encodes a record's (state.c). */
static bool row_key(const wstage *k, const sl_json *root, char *key, size_t *len)
{
    const sl_api *api = k->api;
    size_t n = 0;
    for (size_t i = 0; i < k->n_group; i++) {
        const sl_json *v = api->json_get(root, k->group_name[i]);
        switch (api->json_type(v)) {
        case SL_JSON_STRING: {
            const char *s = api->json_string(v);
            size_t l = strlen(s);
            if (n + l + 2 > W_KEY_MAX)
                return false;
            key[n++] = 's';
            memcpy(key + n, s, l + 1);
            n += l + 1;
            break;
        }
        case SL_JSON_NUMBER: {
            double d = api->json_number(v);
            if (n + 9 > W_KEY_MAX)
                return false;
            key[n++] = 'n';
            memcpy(key + n, &d, 8);
            n += 8;
            break;
        }
        case SL_JSON_BOOL:
            if (n + 1 > W_KEY_MAX)
                return false;
            key[n++] = api->json_number(v) != 0 ? 't' : 'f';
            break;
        default:
            if (n + 1 > W_KEY_MAX)
                return false;
            key[n++] = 'z';
            break;
        }
    }
    *len = n;
    return true;
}

static bool restore_distinct(const wstage *k, const sl_json *root, const wagg *a, int64_t *slot)
{
    const sl_api *api = k->api;
    wdist *d = (wdist *)(intptr_t)*slot;
    if (d) {
        free(d->hll);
        free(d);
        *slot = 0;
        d = NULL;
    }
    const char *st = a->sketch ? api->json_string(api->json_get(root, a->sketch)) : NULL;
    if (st && st[0] == 'x') {
        size_t l = strlen(st + 1), bytes = l / 4 * 3;
        if (l % 4 == 0 && l && st[l] == '=')
            bytes -= st[l - 1] == '=' ? 2 : 1;
        uint8_t *raw = bytes % 8 == 0 ? malloc(bytes ? bytes : 1) : NULL;
        if (raw && (bytes == 0 || sl_base64_decode(st + 1, raw, bytes) == 0)) {
            bool ok = true;
            for (size_t i = 0; ok && i < bytes; i += 8) {
                uint64_t h;
                memcpy(&h, raw + i, 8);
                ok = w_distinct_add(&d, h ? h : 1, a->exact);
            }
            free(raw);
            *slot = (int64_t)(intptr_t)d;
            return ok;
        }
        free(raw);
    } else if (st) {
        uint8_t reg[SL_HLL_M];
        if (sl_base64_decode(st, reg, SL_HLL_M) == 0) {
            if (!(d = calloc(1, sizeof *d)) || !(d->hll = malloc(SL_HLL_M))) {
                free(d);
                return false;
            }
            memcpy(d->hll, reg, SL_HLL_M);
            *slot = (int64_t)(intptr_t)d;
            return true;
        }
    }
    /* No usable state: the count is a floor under what new values give. */
    bool has;
    double n = member_number(api, root, a->name, &has);
    if (has && n > 0) {
        if (!(d = calloc(1, sizeof *d + 16 * sizeof(uint64_t))))
            return false;
        d->cap = a->exact ? 16 : 0;
        if (!a->exact && !(d->hll = calloc(1, SL_HLL_M))) {
            free(d);
            return false;
        }
        d->floor = (uint64_t)llround(n);
        *slot = (int64_t)(intptr_t)d;
    }
    return true;
}

static bool restore_group(const wstage *k, const sl_json *root, wgroup *g)
{
    const sl_api *api = k->api;
    for (size_t ai = 0; ai < k->n_aggs; ai++) {
        const wagg *a = &k->aggs[ai];
        int64_t *s = &g->slots[a->slot];
        bool has;
        char col[200];
        switch (a->op) {
        case A_COUNT:
            s[0] = llround(member_number(api, root, a->name, &has));
            break;
        case A_SUM:
            s[0] = member_scaled(api, root, a->name, a->pow10, &has);
            break;
        case A_MIN:
        case A_MAX:
            s[0] = member_scaled(api, root, a->name, a->pow10, &has);
            s[1] = has;
            break;
        case A_FIRST:
        case A_LAST:
            s[0] = member_scaled(api, root, a->name, a->pow10, &has);
            s[2] = has;
            snprintf(col, sizeof col, "%s_at", a->name);
            s[1] = llround(member_number(api, root, col, &has));
            break;
        case A_AVG:
            snprintf(col, sizeof col, "%s_sum", a->name);
            s[0] = member_scaled(api, root, col, a->pow10, &has);
            snprintf(col, sizeof col, "%s_n", a->name);
            s[1] = llround(member_number(api, root, col, &has));
            if (!has)
                s[0] = s[1] = 0;
            break;
        case A_DISTINCT:
            if (!restore_distinct(k, root, a, s))
                return false;
            break;
        case A_DERIVED:
            break;
        }
    }
    return true;
}

sl_err w_restore(wstage *k, sl_ctx *ctx, const sl_batch *state)
{
    const sl_api *api = k->api;
    size_t restored = 0;
    for (size_t i = 0; i < state->n; i++) {
        const sl_record *rec = state->recs[i];
        size_t si = 0;
        while (si < k->n_sizes && !(rec->topic && !strcmp(rec->topic, k->sz[si].topic)))
            si++;
        const sl_json *root = si < k->n_sizes ? api->json(ctx, rec, NULL) : NULL;
        bool session = root && k->sz[si].kind == WK_SESSION;
        int64_t last = 0;
        if (!root || (!session && w_floor_div(rec->timestamp_ms, k->sz[si].slide) * k->sz[si].slide != rec->timestamp_ms))
            continue;
        if (session) { /* a session's end is its last event + GAP; a retracted one is gone */
            const char *end = api->json_string(api->json_get(root, "window_end"));
            if (!end || sl_ts_parse(end, &last) != SL_TS_OK || api->json_get(root, "merged_into"))
                continue;
            last -= k->sz[si].size;
        }
        char key[W_KEY_MAX];
        size_t keylen;
        if (!row_key(k, root, key, &keylen))
            continue;
        part *p = w_get_part(k, restored_topic(k, api, root, rec->partition), rec->partition);
        if (!p)
            return SL_ENOMEM;
        const sl_json *fin = api->json_get(root, "final");
        bool final = api->json_type(fin) == SL_JSON_BOOL ? api->json_number(fin) != 0
                     : api->json_type(fin) == SL_JSON_STRING && strchr("tT1", api->json_string(fin)[0]);
        uint64_t hash = keylen ? sl_hash_bytes(0x9, key, keylen) : 0;
        win *w = session ? w_session_restore(k, p, si, rec->timestamp_ms, last, hash, key, keylen)
                         : w_get_win(k, p, si, rec->timestamp_ms, INT64_MIN);
        wgroup *g = w ? w_get_group(k, w, hash, key, keylen) : NULL;
        if (!g || !restore_group(k, root, g))
            return SL_ENOMEM;
        bool has;
        double rev = member_number(api, root, "revision", &has);
        g->finals = final ? (uint32_t)(has && rev > 0 ? llround(rev) : 0) + 1 : 0;
        g->dirty = false;
        if (final) {
            w->closed = true;
            /* The watermark had passed its end: restore at least that much event time. */
            int64_t t = w_end(k, w) + k->conf->lateness_ms;
            if (!p->seen || t > p->max_ts)
                p->max_ts = t;
            if (!p->seen_in || t > p->seen_ts)
                p->seen_ts = t;
            p->seen = p->seen_in = true;
        }
        if (rec->offset > p->cov[si])
            p->cov[si] = p->agg_off[si] = rec->offset;
        if (rec->offset > p->cov_max)
            p->cov_max = rec->offset;
        restored++;
    }
    /* Recount the closed prefix of every series (rows arrive in any order). */
    for (size_t pi = 0; pi < k->n_parts; pi++)
        for (size_t si = 0; si < k->n_sizes; si++) {
            series *s = &k->parts[pi]->s[si];
            if (k->sz[si].kind == WK_SESSION)
                continue; /* sessions close one by one, in no order */
            s->n_closed = 0;
            while (s->n_closed < s->n && s->v[s->n_closed]->closed)
                s->n_closed++;
            for (size_t j = s->n_closed; j < s->n; j++)
                s->v[j]->closed = false; /* an open one before it: both close in order again */
        }
    if (restored)
        api->log(ctx, SL_LOG_INFO, "restored %zu rows from %zu state records", restored, state->n);
    return SL_OK;
}
