/* stamp — a test transform built twice: against tests/host/abi10/stage.h (a copy of the ABI 1.0
 * header; -DABI10, stage "stamp10") and against the current header (stage "stampnow"). It sets
 * every record's timestamp to `ts` (in place under 1.0, through api->set_timestamp now) and logs
 * each distinct nonzero flush reason it is given ("flush reason N"), so the test sees what a
 * stage of each minor is handed. The 1.0 build's descriptor is followed in memory by a trap
 * where later minors' fields (on_finished, check) would be: a host that read past struct_size
 * would call it. */
#include <stdio.h>
#include <stdlib.h>

#ifdef ABI10
#include "stage.h"
#define STAGE_NAME "stamp10"
#else
#include <sluice/stage.h>
#define STAGE_NAME "stampnow"
#endif

typedef struct stamp_config {
    int64_t ts;
} stamp_config;

typedef struct stamp {
    const sl_api *api;
    const stamp_config *cfg;
    int last_reason;
} stamp;

static sl_err st_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    stamp *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = config;
    api->log(ctx, SL_LOG_INFO, "built for ABI %d.%d; host API struct_size %u, minor %u", SL_ABI_MAJOR, SL_ABI_MINOR,
             api->struct_size, api->abi_minor);
    *self = s;
    return SL_OK;
}

static sl_err st_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    stamp *s = self;
    for (size_t i = 0; i < b->n; i++) {
#ifdef ABI10
        b->recs[i]->timestamp_ms = s->cfg->ts; /* the 1.0 way: in place */
#else
        if (!SL_HAS(s->api, set_timestamp)) return SL_FATAL;
        if (s->api->set_timestamp(ctx, b->recs[i], s->cfg->ts) != SL_OK) return SL_FATAL;
#endif
        sl_err e = s->api->emit(ctx, b->recs[i]);
        if (e != SL_OK) return e;
    }
    return SL_OK;
}

static sl_err st_flush(void *self, sl_ctx *ctx, int final)
{
    stamp *s = self;
    if (final && final != s->last_reason) s->api->log(ctx, SL_LOG_INFO, "flush reason %d", final);
    if (final) s->last_reason = final;
    return SL_OK;
}

static void st_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

static const sl_config_entry st_table[] = {
    {"ts", SL_T_INT, 0, "1234567", 0, 0, NULL, offsetof(stamp_config, ts), "timestamp to set"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

#define DESC_BODY                                                                             \
    SL_STAGE_DESC_INIT, .name = STAGE_NAME, .version = "1.0.0", .kind = SL_KIND_TRANSFORM,   \
    .description = "test transform: sets timestamps, logs flush reasons", .config = st_table, \
    .config_size = sizeof(stamp_config), .init = st_init, .process = st_process,             \
    .flush = st_flush, .close = st_close

#ifdef ABI10
static sl_err trap(const void *config, void *c)
{
    (void)config;
    (void)c;
    fprintf(stderr, "stamp10: the host called past the 1.0 descriptor\n");
    abort();
}

static const struct {
    sl_stage_desc d;
    sl_err (*after)(const void *, void *);
} laid_out = {{DESC_BODY}, trap};
SL_STAGE_DEFINE(laid_out.d)
#else
static const sl_stage_desc desc = {DESC_BODY};
SL_STAGE_DEFINE(desc)
#endif
