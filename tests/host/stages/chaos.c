/* chaos — a test stage that misbehaves on purpose: returns RETRY for its first `fail_times`
 * batches, sleeps `delay` per batch, and calls abort() on a record containing `abort_on`.
 * Before failing it may also reject records containing `reject_on` (in every call) or hold the
 * first record of the batch (`hold_before_fail`), releasing that hold in its next call, or
 * api->watch it (`watch_before_fail`). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/stage.h>

typedef struct chaos_config {
    int64_t fail_times;
    int64_t delay;
    char *abort_on;
    char *reject_on;
    int hold_before_fail;
    int watch_before_fail;
} chaos_config;

typedef struct chaos_state {
    const sl_api *api;
    const chaos_config *cfg;
    int64_t failures;
    sl_ack *held;
} chaos_state;

static sl_err chaos_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    chaos_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = config;
    *self = s;
    return SL_OK;
}

static int contains(const sl_record *r, const char *what)
{
    return what && *what && r->value_len >= strlen(what) && memmem(r->value, r->value_len, what, strlen(what));
}

static sl_err chaos_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    chaos_state *s = self;
    if (s->cfg->delay) usleep((useconds_t)s->cfg->delay * 1000);
    if (s->held) { /* "durable" now */
        s->api->release(s->held);
        s->held = NULL;
    }
    /* api->watch (before the record is emitted) moves the input's reference into a new
     * token, which a retry cannot take back. */
    if (s->failures < s->cfg->fail_times && s->cfg->watch_before_fail && b->n &&
        s->api->watch(ctx, b->recs[0], NULL) != SL_OK)
        return SL_FATAL;
    /* Emit some records before failing, so the host's discarding of a failed call is tested. */
    for (size_t i = 0; i < b->n; i++) {
        const sl_record *r = b->recs[i];
        if (contains(r, s->cfg->abort_on)) abort();
        if (contains(r, s->cfg->reject_on)) s->api->reject(ctx, r, "chaos: rejected on purpose");
        else s->api->emit(ctx, r);
    }
    if (s->failures < s->cfg->fail_times && s->cfg->hold_before_fail && b->n && !s->held)
        s->held = s->api->hold(ctx, b->recs[0]);
    if (s->failures < s->cfg->fail_times) {
        s->failures++;
        s->api->count(ctx, "injected_failures", 1);
        return SL_RETRY;
    }
    return SL_OK;
}

static void chaos_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    chaos_state *s = self;
    if (s->held) s->api->release(s->held);
    free(s);
}

static const sl_config_entry chaos_table[] = {
    {"fail_times", SL_T_INT, SL_CFG_BOUNDED, "0", 0, 1000, NULL, offsetof(chaos_config, fail_times), "batches to fail with RETRY first"},
    {"delay", SL_T_DURATION, 0, "0ms", 0, 0, NULL, offsetof(chaos_config, delay), "sleep per batch"},
    {"abort_on", SL_T_STRING, 0, NULL, 0, 0, NULL, offsetof(chaos_config, abort_on), "abort() on a record containing this"},
    {"reject_on", SL_T_STRING, 0, NULL, 0, 0, NULL, offsetof(chaos_config, reject_on), "reject a record containing this"},
    {"hold_before_fail", SL_T_BOOL, 0, "false", 0, 0, NULL, offsetof(chaos_config, hold_before_fail), "hold a record in a call that returns RETRY"},
    {"watch_before_fail", SL_T_BOOL, 0, "false", 0, 0, NULL, offsetof(chaos_config, watch_before_fail),
     "api->watch the first record in a call that returns RETRY"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static sl_err chaos_on_finished(void *self, sl_ctx *ctx, void *cookie, int rejected)
{
    (void)self, (void)ctx, (void)cookie, (void)rejected;
    return SL_OK;
}

static const sl_stage_desc chaos_desc = {
    SL_STAGE_DESC_INIT,
    .name = "chaos",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "test stage: RETRY, delays and crashes on demand",
    .config = chaos_table,
    .config_size = sizeof(chaos_config),
    .init = chaos_init,
    .process = chaos_process,
    .close = chaos_close,
    .on_finished = chaos_on_finished,
};

SL_STAGE_DEFINE(chaos_desc)
