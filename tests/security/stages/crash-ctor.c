/* crash-ctor — a broken plugin: its constructor raises SIGSEGV as soon as it is loaded. */
#include <signal.h>
#include <sluice/stage.h>

__attribute__((constructor)) static void boom(void)
{
    raise(SIGSEGV);
}

static sl_err init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx; (void)api; (void)config; (void)self;
    return SL_OK;
}

static sl_err process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    (void)self; (void)ctx; (void)batch;
    return SL_OK;
}

static const sl_stage_desc desc = {
    SL_STAGE_DESC_INIT,
    .name = "crash-ctor",
    .version = "0.0.1",
    .kind = SL_KIND_SINK,
    .description = "crashes when loaded",
    .init = init,
    .process = process,
};
SL_STAGE_DEFINE(desc)
