/*
 * assign-source — a test source: on its first poll it announces the configured partitions of
 * `topic` with their committed offsets (api->partitions_assigned), then ends (SL_DONE).
 * `partitions: ["0=10", "3=-1"]` — partition=committed offset.
 */
#include <sluice/stage.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct assign_config {
    char *topic;
    sl_list partitions;
} assign_config;

typedef struct assign {
    const sl_api *api;
    const assign_config *cfg;
} assign;

static sl_err assign_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const assign_config *cfg = config;
    for (size_t i = 0; i < cfg->partitions.n; i++) {
        int p;
        long long off;
        if (sscanf(cfg->partitions.items[i], "%d=%lld", &p, &off) != 2) {
            api->log(ctx, SL_LOG_ERROR, "partitions: expected P=OFFSET, got '%s'",
                     cfg->partitions.items[i]);
            return SL_ECONFIG;
        }
    }
    assign *a = calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    a->api = api;
    a->cfg = cfg;
    *self = a;
    return SL_OK;
}

static sl_err assign_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    assign *a = self;
    (void)max;
    (void)timeout_ms;
    size_t n = a->cfg->partitions.n;
    sl_position *pos = calloc(n ? n : 1, sizeof *pos);
    if (!pos) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int p = 0;
        long long off = -1;
        sscanf(a->cfg->partitions.items[i], "%d=%lld", &p, &off);
        pos[i] = (sl_position){a->cfg->topic, p, off};
    }
    a->api->partitions_assigned(ctx, pos, n);
    for (size_t i = 0; i < n; i++) /* a stage may not move them any more: the test checks */
        a->api->log(ctx, SL_LOG_INFO, "resume position %d=%lld", (int)pos[i].partition,
                    (long long)pos[i].offset);
    free(pos);
    return SL_DONE;
}

static void assign_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

static const sl_config_entry assign_config_table[] = {
    {.key = "topic", .type = SL_T_STRING, .default_value = "events_raw",
     .offset = offsetof(assign_config, topic), .description = "topic of the positions"},
    {.key = "partitions", .type = SL_T_LIST, .flags = SL_CFG_REQUIRED,
     .offset = offsetof(assign_config, partitions),
     .description = "P=COMMITTED_OFFSET per assigned partition"},
    {.key = NULL},
};

static const sl_stage_desc assign_desc = {
    SL_STAGE_DESC_INIT,
    .name = "assign-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "test: announces partitions with committed offsets, then ends",
    .config = assign_config_table,
    .config_size = sizeof(assign_config),
    .init = assign_init,
    .poll = assign_poll,
    .close = assign_close,
};

SL_STAGE_DEFINE(assign_desc)
