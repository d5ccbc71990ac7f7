/* null-sink — bench-only sink that does nothing: records are finished when process returns,
 * and SL_STAGE_JSON_ONLY spares the host re-serialising changed records for it. So a figure
 * measured with it is the chain before it plus the host, not output formatting or I/O.
 * With `heap_file`, at the final flush (every other stage still holds its state) it writes the
 * process's heap in use (mallinfo2) there, for the dedup memory figure. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <sluice/stage.h>

typedef struct ns_config {
    char *heap_file;
} ns_config;

static sl_err ns_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx, (void)api;
    *self = (void *)config;
    return SL_OK;
}

static sl_err ns_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    (void)self, (void)ctx, (void)b;
    return SL_OK;
}

static sl_err ns_flush(void *self, sl_ctx *ctx, int final)
{
    (void)ctx;
    const ns_config *c = self;
    if (final && c->heap_file && *c->heap_file) {
        struct mallinfo2 mi = mallinfo2();
        FILE *f = fopen(c->heap_file, "w");
        if (f) {
            fprintf(f, "%zu\n", mi.uordblks + mi.hblkhd);
            fclose(f);
        }
    }
    return SL_OK;
}

static const sl_config_entry ns_table[] = {
    {"heap_file", SL_T_STRING, 0, NULL, 0, 0, NULL, offsetof(ns_config, heap_file),
     "write the heap in use at the final flush here"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc ns_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "null-sink",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "bench only: discards records",
    .config = ns_table,
    .config_size = sizeof(ns_config),
    .init = ns_init,
    .process = ns_process,
    .flush = ns_flush,
};

SL_STAGE_DEFINE(ns_desc)
