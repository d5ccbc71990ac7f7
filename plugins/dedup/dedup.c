/*
 * dedup — UC04: drop records whose key was already seen within `ttl` of event time.
 *
 * State is kept per source partition — (topic, partition): with several topics, partition 0 of
 * one is not partition 0 of another (a partition belongs to one task, so tasks never share it).
 * For each partition:
 *   - a clock: the highest record timestamp seen (event time, set upstream by the validator);
 *   - an open-addressing table (linear probing) of 64-bit key hashes, 0 = empty slot;
 *   - a FIFO ring of (hash, clock second at insertion), oldest first. Because the clock never
 *     goes back, the ring is ordered by insertion time too, so expiry and eviction both pop
 *     the ring's head.
 * That is 8 bytes per table slot (load <= 3/4) + 12 bytes per ring entry: ~25 bytes per key.
 *
 * A key is remembered until the clock has moved more than `ttl` (rounded up to whole
 * seconds) past the moment it was first seen; a duplicate does not extend that. When a
 * partition holds `max_keys` keys, the oldest is evicted (counted as "evicted" and logged).
 * Keys are compared by a 64-bit hash: two different keys collide with probability ~n^2/2^65
 * (about 3e-6 for 10 M keys), which would drop one record as a duplicate.
 *
 * Restart: on_assign/on_revoke drop a partition's state; on_restore takes state records a
 * later stage hands back (the events a sink stored up to the committed offset) and remembers
 * their keys as seen at their timestamps, so duplicates of events before the resume point are
 * still dropped after a crash.
 */
#include <sluice/stage.h>

#include "../common/sl_hash.h"
#include "../common/sl_partmap.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LOG_EVERY_MS 10000

typedef struct dconf {
    sl_list key;
    int64_t ttl_ms;
    int64_t max_keys;
    int scope; /* only "partition" */
    char *seen_field; /* NULL: first-seen times are not written into records */
} dconf;

typedef struct __attribute__((packed)) ring_ent {
    uint64_t h;
    uint32_t t; /* clock second when first seen */
} ring_ent;

typedef struct pstate {
    uint64_t *tab;
    size_t cap, n; /* cap: power of two */
    ring_ent *ring;
    size_t rcap, head, len;
    int64_t clock_ms;
} pstate;

typedef struct dedup {
    const sl_api *api;
    const dconf *conf;
    uint32_t ttl_s;
    sl_partmap parts; /* (topic, partition) -> pstate */
    uint64_t evicted, evicted_logged;
    int64_t last_log_ms;
    uint64_t *hashes; /* per batch: the key hash of each record (0: no key) */
    size_t cap_hashes;
    sl_json_key keys[8]; /* the first key fields, prepared on first use (hash + length) */
    bool keys_ready;
} dedup;

/* ---- the table --------------------------------------------------------------------------- */

static bool tab_has(const pstate *p, uint64_t h)
{
    size_t mask = p->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (p->tab[i] == h)
            return true;
        if (!p->tab[i])
            return false;
    }
}

static void tab_put(uint64_t *tab, size_t cap, uint64_t h)
{
    size_t mask = cap - 1, i = h & mask;
    while (tab[i])
        i = (i + 1) & mask;
    tab[i] = h;
}

/* Remove h, shifting later members of its probe run back (no tombstones). */
static void tab_del(pstate *p, uint64_t h)
{
    size_t mask = p->cap - 1, i = h & mask;
    while (p->tab[i] != h) {
        if (!p->tab[i])
            return;
        i = (i + 1) & mask;
    }
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!p->tab[j])
            break;
        size_t home = p->tab[j] & mask;
        /* tab[j] may move to i only if its home slot is not in (i, j] (cyclically). */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            p->tab[i] = p->tab[j];
            i = j;
        }
    }
    p->tab[i] = 0;
    p->n--;
}

static bool tab_grow(pstate *p)
{
    size_t cap = p->cap * 2;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < p->cap; i++)
        if (p->tab[i])
            tab_put(t, cap, p->tab[i]);
    free(p->tab);
    p->tab = t;
    p->cap = cap;
    return true;
}

static bool ring_grow(pstate *p, size_t max)
{
    size_t cap = p->rcap * 2 > max ? max : p->rcap * 2;
    ring_ent *r = malloc(cap * sizeof *r);
    if (!r)
        return false;
    for (size_t i = 0; i < p->len; i++)
        r[i] = p->ring[(p->head + i) % p->rcap];
    free(p->ring);
    p->ring = r;
    p->rcap = cap;
    p->head = 0;
    return true;
}

static void pop_oldest(pstate *p)
{
    tab_del(p, p->ring[p->head].h);
    p->head = (p->head + 1) % p->rcap;
    p->len--;
}

/* ---- partitions ------------------------------------------------------------------------- */

static void pstate_free(pstate *p)
{
    if (p) {
        free(p->tab);
        free(p->ring);
        free(p);
    }
}

static pstate *partition_state(dedup *d, const char *topic, int32_t partition)
{
    pstate *p = sl_partmap_find(&d->parts, topic, partition);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cap = 1024;
    p->rcap = (size_t)d->conf->max_keys < 1024 ? (size_t)d->conf->max_keys : 1024;
    p->tab = calloc(p->cap, sizeof *p->tab);
    p->ring = malloc(p->rcap * sizeof *p->ring);
    p->clock_ms = INT64_MIN;
    if (!p->tab || !p->ring || sl_partmap_add(&d->parts, topic, partition, p) != 0) {
        pstate_free(p);
        return NULL;
    }
    return p;
}

/* Event time in whole seconds, clamped to what the ring's 32-bit times hold. */
static uint32_t to_seconds(int64_t ms)
{
    int64_t s = ms / 1000;
    return s < 0 ? 0 : s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* The key's hash, or 0 when a key field is missing (such records are not deduplicated). */
static uint64_t key_hash(dedup *d, const sl_json *root)
{
    const sl_api *api = d->api;
    const size_t nk = sizeof d->keys / sizeof d->keys[0];
    if (!d->keys_ready) {
        for (size_t i = 0; i < d->conf->key.n && i < nk; i++) api->json_key_init(&d->keys[i], d->conf->key.items[i]);
        d->keys_ready = true;
    }
    uint64_t h = 0x5EED;
    for (size_t i = 0; i < d->conf->key.n; i++) {
        const sl_json *n = i < nk ? api->json_get_key(root, &d->keys[i]) : api->json_get(root, d->conf->key.items[i]);
        switch (api->json_type(n)) {
        case SL_JSON_STRING: {
            size_t len = 0;
            const char *s = api->json_string_len(n, &len);
            h = sl_hash_bytes(h + 's', s, len);
            break;
        }
        case SL_JSON_NUMBER:
        case SL_JSON_BOOL: {
            double x = api->json_number(n);
            if (x == 0)
                x = 0; /* -0 == 0 */
            h = sl_hash_bytes(h + (api->json_type(n) == SL_JSON_BOOL ? 'b' : 'n'), &x, sizeof x);
            break;
        }
        default:
            return 0;
        }
    }
    return h ? h : 1;
}

/* Remember h as first seen at clock second t, evicting the oldest key when full. */
static sl_err insert(dedup *d, pstate *p, uint64_t h, uint32_t t, uint64_t *evicted)
{
    if (p->len == (size_t)d->conf->max_keys) {
        pop_oldest(p);
        if (evicted)
            (*evicted)++;
    }
    if ((p->n + 1) * 4 > p->cap * 3 && !tab_grow(p))
        return SL_ENOMEM;
    if (p->len == p->rcap && !ring_grow(p, (size_t)d->conf->max_keys))
        return SL_ENOMEM;
    tab_put(p->tab, p->cap, h);
    p->n++;
    p->ring[(p->head + p->len) % p->rcap] = (ring_ent){h, t};
    p->len++;
    return SL_OK;
}

static void log_evictions(dedup *d, sl_ctx *ctx)
{
    int64_t now = d->api->monotonic_ms(ctx);
    if (d->evicted_logged == 0 || now - d->last_log_ms >= LOG_EVERY_MS) {
        d->api->log(ctx, SL_LOG_WARN,
                    "max_keys %lld reached: evicted %llu oldest keys so far (they are no longer deduplicated)",
                    (long long)d->conf->max_keys, (unsigned long long)d->evicted);
        d->evicted_logged = d->evicted;
        d->last_log_ms = now;
    }
}

/* ---- callbacks -------------------------------------------------------------------------- */

static sl_err d_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const dconf *conf = config;
    if (conf->key.n == 0) {
        api->log(ctx, SL_LOG_ERROR, "key: at least one field");
        return SL_ECONFIG;
    }
    dedup *d = calloc(1, sizeof *d);
    if (!d)
        return SL_ENOMEM;
    d->api = api;
    d->conf = conf;
    int64_t s = (conf->ttl_ms + 999) / 1000; /* rounded up: "remembered at least ttl" */
    d->ttl_s = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    *self = d;
    return SL_OK;
}

static sl_err d_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    dedup *d = self;
    const sl_api *api = d->api;
    uint64_t dups = 0, no_key = 0, evicted = 0;
    sl_err err = SL_OK;
    /* Pass 1: hash every key and prefetch its table slot, and the slots of the keys about to
     * expire. With millions of keys each probe is a cache miss; this overlaps them. */
    if (batch->n > d->cap_hashes) {
        uint64_t *hs = realloc(d->hashes, batch->n * sizeof *hs);
        if (!hs)
            return SL_ENOMEM;
        d->hashes = hs;
        d->cap_hashes = batch->n;
    }
    for (size_t i = 0; i < batch->n; i++) {
        const sl_json *root = api->json(ctx, batch->recs[i], NULL);
        uint64_t h = d->hashes[i] = root ? key_hash(d, root) : 0;
        pstate *p = h ? partition_state(d, batch->recs[i]->topic, batch->recs[i]->partition) : NULL;
        if (p) {
            __builtin_prefetch(&p->tab[h & (p->cap - 1)]);
            if (i < p->len)
                __builtin_prefetch(&p->tab[p->ring[(p->head + i) % p->rcap].h & (p->cap - 1)]);
        }
    }
    for (size_t i = 0; i < batch->n && err == SL_OK; i++) {
        const sl_record *rec = batch->recs[i];
        uint64_t h = d->hashes[i];
        if (!h) {
            no_key++;
            err = api->emit(ctx, rec);
            continue;
        }
        pstate *p = partition_state(d, rec->topic, rec->partition);
        if (!p)
            return SL_ENOMEM;
        if (rec->timestamp_ms > p->clock_ms)
            p->clock_ms = rec->timestamp_ms;
        uint32_t now_s = to_seconds(p->clock_ms);
        while (p->len && now_s - p->ring[p->head].t > d->ttl_s)
            pop_oldest(p);
        if (tab_has(p, h)) {
            dups++;
            continue; /* not emitted: the host counts it dropped and it is finished */
        }
        if ((err = insert(d, p, h, now_s, &evicted)) != SL_OK)
            break;
        /* The first-seen time travels with the record, so a sink that stores it can hand it
         * back on restore (a late event is remembered from when it arrived, not its ts). */
        if (d->conf->seen_field && (err = api->json_set_number(ctx, rec, d->conf->seen_field, (double)p->clock_ms)) != SL_OK &&
            err != SL_EINVAL)
            break;
        err = api->emit(ctx, rec);
    }
    if (dups)
        api->count(ctx, "duplicates", dups);
    if (no_key)
        api->count(ctx, "no_key", no_key);
    if (evicted) {
        d->evicted += evicted;
        api->count(ctx, "evicted", evicted);
        log_evictions(d, ctx);
    }
    return err;
}

static void drop_partition(dedup *d, const char *topic, int32_t partition)
{
    pstate_free(sl_partmap_take(&d->parts, topic, partition));
}

/* Assigned: start from nothing; what was seen before comes back through on_restore. */
static sl_err d_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    (void)ctx;
    for (size_t k = 0; k < n; k++)
        drop_partition(self, parts[k].topic, parts[k].partition);
    return SL_OK;
}

static sl_err d_on_revoke(void *self, sl_ctx *ctx, const sl_position *parts, size_t n)
{
    (void)ctx;
    for (size_t k = 0; k < n; k++)
        drop_partition(self, parts[k].topic, parts[k].partition);
    return SL_OK;
}

/* State records that carry every key field (the events a sink stored) are remembered as
 * seen at their timestamp; others (KPI rows, say) are not ours. */
static sl_err d_on_restore(void *self, sl_ctx *ctx, const sl_batch *state)
{
    dedup *d = self;
    size_t added = 0;
    for (size_t i = 0; i < state->n; i++) {
        const sl_record *rec = state->recs[i];
        const sl_json *root = d->api->json(ctx, rec, NULL);
        uint64_t h = root ? key_hash(d, root) : 0;
        if (!h)
            continue;
        pstate *p = partition_state(d, rec->topic, rec->partition);
        if (!p)
            return SL_ENOMEM;
        /* First seen: the time stored with it (seen_field), else its own timestamp — which the
         * ring order below raises to the clock of the records restored before it (offset
         * order), i.e. the clock it met when it arrived, if the records before it are there. */
        int64_t seen = rec->timestamp_ms;
        if (d->conf->seen_field) {
            const sl_json *sf = d->api->json_get(root, d->conf->seen_field);
            if (d->api->json_type(sf) == SL_JSON_NUMBER && d->api->json_number(sf) >= (double)seen)
                seen = (int64_t)d->api->json_number(sf);
        }
        if (seen > p->clock_ms)
            p->clock_ms = seen;
        uint32_t t = to_seconds(seen);
        /* The ring must stay in time order (expiry pops its head): a record older than the
         * newest entry takes that entry's time, i.e. it is remembered a little longer. */
        if (p->len && t < p->ring[(p->head + p->len - 1) % p->rcap].t)
            t = p->ring[(p->head + p->len - 1) % p->rcap].t;
        if (tab_has(p, h))
            continue;
        sl_err e = insert(d, p, h, t, NULL);
        if (e != SL_OK)
            return e;
        added++;
    }
    if (added)
        d->api->log(ctx, SL_LOG_INFO, "restored %zu keys from %zu state records", added, state->n);
    return SL_OK;
}

static void d_close(void *self, sl_ctx *ctx)
{
    dedup *d = self;
    size_t keys = 0, bytes = 0;
    for (size_t i = 0; i < d->parts.n; i++) {
        pstate *p = d->parts.v[i].val;
        keys += p->len;
        bytes += p->cap * sizeof(uint64_t) + p->rcap * sizeof(ring_ent);
        pstate_free(p);
    }
    d->api->log(ctx, SL_LOG_INFO, "closing with %zu keys in %zu partitions, %zu bytes", keys,
                d->parts.n, bytes);
    sl_partmap_free(&d->parts);
    free(d->hashes);
    free(d);
}

/* ---- config table and descriptor ------------------------------------------------------- */

static const sl_config_entry d_config[] = {
    SL_CFG_LIST("key", dconf, key, .flags = SL_CFG_BOUNDED, .default_value = "event_id", .min = 1, .max = 16,
        .description = "field (or list of fields) whose value identifies a record"),
    SL_CFG_DURATION("ttl", dconf, ttl_ms, .flags = SL_CFG_BOUNDED, .default_value = "10m", .min = 1,
        .max = 4294967295000.0, .description = "a key is remembered at least this long, in event time"),
    SL_CFG_INT("max_keys", dconf, max_keys, .flags = SL_CFG_BOUNDED, .default_value = "1000000", .min = 1,
        .max = 2147483647.0,
        .description = "keys remembered per partition; when full the oldest are evicted (counted, logged)"),
    SL_CFG_ENUM("scope", dconf, scope, .default_value = "partition", .choices = "partition",
        .description = "state is kept per source partition"),
    SL_CFG_STRING("seen_field", dconf, seen_field,
        .description = "JSON member that receives a forwarded record's first-seen time (ms, event time); " "restored records carrying it are remembered from then (store it for an exact restore)"),
    SL_CFG_END,
};

static const sl_stage_desc d_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "dedup",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "drops records whose key was seen within a time bound (per partition)",
    .config = d_config,
    .config_size = sizeof(dconf),
    .init = d_init,
    .process = d_process,
    .close = d_close,
    .on_assign = d_on_assign,
    .on_revoke = d_on_revoke,
    .on_restore = d_on_restore,
};

SL_STAGE_DEFINE(d_desc)
