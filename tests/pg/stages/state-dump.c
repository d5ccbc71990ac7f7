/*
 * state-dump — a test transform: forwards every record unchanged and appends each state record
 * it receives in on_restore to a file, one line "topic partition offset timestamp_ms value".
 */
#include <sluice/stage.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct dump_config {
    char *path;
} dump_config;

typedef struct dump {
    const sl_api *api;
    const dump_config *cfg;
} dump;

static sl_err dump_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    dump *d = calloc(1, sizeof *d);
    if (!d) return SL_ENOMEM;
    d->api = api;
    d->cfg = config;
    *self = d;
    return SL_OK;
}

static sl_err dump_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    dump *d = self;
    for (size_t i = 0; i < batch->n; i++)
        if (d->api->emit(ctx, batch->recs[i]) != SL_OK) return SL_ENOMEM;
    return SL_OK;
}

static sl_err dump_restore(void *self, sl_ctx *ctx, const sl_batch *state)
{
    dump *d = self;
    FILE *f = fopen(d->cfg->path, "a");
    if (!f) {
        d->api->log(ctx, SL_LOG_ERROR, "cannot open %s", d->cfg->path);
        return SL_FATAL;
    }
    for (size_t i = 0; i < state->n; i++) {
        const sl_record *r = state->recs[i];
        fprintf(f, "%s %d %lld %lld %.*s\n", r->topic ? r->topic : "-", (int)r->partition,
                (long long)r->offset, (long long)r->timestamp_ms, (int)r->value_len,
                (const char *)r->value);
    }
    return fclose(f) == 0 ? SL_OK : SL_FATAL;
}

static void dump_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

static const sl_config_entry dump_config_table[] = {
    {.key = "path", .type = SL_T_STRING, .flags = SL_CFG_REQUIRED,
     .offset = offsetof(dump_config, path), .description = "file the state records go to"},
    {.key = NULL},
};

static const sl_stage_desc dump_desc = {
    SL_STAGE_DESC_INIT,
    .name = "state-dump",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "test: forwards records, writes state records from on_restore to a file",
    .config = dump_config_table,
    .config_size = sizeof(dump_config),
    .init = dump_init,
    .process = dump_process,
    .close = dump_close,
    .on_restore = dump_restore,
};

SL_STAGE_DEFINE(dump_desc)
