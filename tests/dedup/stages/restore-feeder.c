/* restore-feeder — a test transform that plays the part of a sink holding durable state (as
 * pg-sink does with KPI rows and events): on partition assignment it reads `path` and hands
 * the records of the assigned partitions to api->restore, so every earlier stage's on_restore
 * sees them. Records pass through unchanged.
 * State lines: "TOPIC PARTITION OFFSET TIMESTAMP_MS<TAB>VALUE". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/stage.h>

typedef struct rf_config {
    char *path;
} rf_config;

typedef struct rf_state {
    const sl_api *api;
    const rf_config *cfg;
} rf_state;

static sl_err rf_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    rf_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = config;
    *self = s;
    return SL_OK;
}

static sl_err rf_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    rf_state *s = self;
    for (size_t i = 0; i < b->n; i++)
        if (s->api->emit(ctx, b->recs[i]) != SL_OK) return SL_ENOMEM;
    return SL_OK;
}

static sl_err rf_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t nparts)
{
    rf_state *s = self;
    FILE *f = fopen(s->cfg->path, "r");
    if (!f) {
        s->api->log(ctx, SL_LOG_ERROR, "cannot open %s", s->cfg->path);
        return SL_FATAL;
    }
    sl_record *recs = NULL;
    char **lines = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        char topic[128];
        int p;
        long long off, ts;
        char *tab = strchr(line, '\t');
        if (!tab || sscanf(line, "%127s %d %lld %lld", topic, &p, &off, &ts) != 4) continue;
        int mine = 0;
        for (size_t i = 0; i < nparts; i++) mine |= parts[i].partition == p;
        if (!mine) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            recs = realloc(recs, cap * sizeof *recs);
            lines = realloc(lines, cap * sizeof *lines);
            if (!recs || !lines) abort(); /* a test stage */
        }
        lines[n] = strdup(line);
        if (!lines[n]) abort();
        lines[n][strcspn(lines[n], " ")] = 0; /* the topic, NUL-terminated in place */
        recs[n] = (sl_record){.value = lines[n] + (tab - line) + 1, .value_len = (size_t)(line + len - tab - 1),
                              .topic = lines[n], .partition = p, .offset = off, .timestamp_ms = ts};
        n++;
    }
    free(line);
    fclose(f);
    s->api->log(ctx, SL_LOG_INFO, "restoring %zu state records", n);
    s->api->restore(ctx, recs, n);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(recs);
    return SL_OK;
}

static void rf_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

static const sl_config_entry rf_table[] = {
    {"path", SL_T_STRING, SL_CFG_REQUIRED, NULL, 0, 0, NULL, offsetof(rf_config, path), "state records file"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc rf_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "restore-feeder",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "test stage: hands state records from a file to api->restore on assignment",
    .config = rf_table,
    .config_size = sizeof(rf_config),
    .init = rf_init,
    .process = rf_process,
    .close = rf_close,
    .on_assign = rf_on_assign,
};

SL_STAGE_DEFINE(rf_desc)
