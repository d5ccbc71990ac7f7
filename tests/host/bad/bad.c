/* Deliberately broken stages for the loader's refusal tests. BAD_KIND selects the fault. */
#include <sluice/stage.h>

static sl_err b_init(sl_ctx *c, const sl_api *a, const void *cfg, void **self)
{
    (void)c; (void)a; (void)cfg; *self = 0;
    return SL_OK;
}
static sl_err b_process(void *self, sl_ctx *c, const sl_batch *b)
{
    (void)self; (void)c; (void)b;
    return SL_OK;
}

#ifndef BAD_NAME
#define BAD_NAME "bad-stage"
#endif

static const sl_stage_desc desc = {
#if BAD_KIND == 1 /* wrong magic */
    .magic = 0xDEADBEEF, .abi_major = SL_ABI_MAJOR, .abi_minor = SL_ABI_MINOR,
#elif BAD_KIND == 2 /* another major */
    .magic = SL_STAGE_MAGIC, .abi_major = SL_ABI_MAJOR + 1, .abi_minor = 0,
#elif BAD_KIND == 3 /* a newer minor */
    .magic = SL_STAGE_MAGIC, .abi_major = SL_ABI_MAJOR, .abi_minor = SL_ABI_MINOR + 7,
#else /* valid (used twice for the duplicate-name test, and once without an entry point) */
    .magic = SL_STAGE_MAGIC, .abi_major = SL_ABI_MAJOR, .abi_minor = SL_ABI_MINOR,
#endif
    .struct_size = sizeof(sl_stage_desc),
    .name = BAD_NAME, .version = "0.0.1", .kind = SL_KIND_SINK, .description = "broken on purpose",
    .init = b_init, .process = b_process,
};

#if BAD_KIND == 4 /* no entry point: export something else */
SL_EXPORT const sl_stage_desc *not_the_entry(void);
SL_EXPORT const sl_stage_desc *not_the_entry(void) { return &desc; }
#else
SL_STAGE_DEFINE(desc)
#endif
