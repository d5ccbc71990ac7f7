/* gap-source — a test source with partitions and wall-clock gaps, for the window stage's idle
 * timeout: input lines "PARTITION OFFSET TIMESTAMP_MS<TAB>VALUE" (topic `events`), or
 * "sleep MS": no record until MS milliseconds have passed (the host keeps calling flush). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/stage.h>

typedef struct gs_config {
    char *path;
    int64_t partitions;
} gs_config;

typedef struct gs_state {
    const sl_api *api;
    FILE *in;
    char *line;
    size_t cap;
    int assigned;
    int64_t partitions;
    int64_t wake; /* monotonic ms before which nothing is emitted */
} gs_state;

static sl_err gs_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const gs_config *cfg = config;
    gs_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->partitions = cfg->partitions;
    if (cfg->partitions < 1 || cfg->partitions > 64 || !(s->in = fopen(cfg->path, "r"))) {
        api->log(ctx, SL_LOG_ERROR, "cannot open %s or bad partitions", cfg->path);
        free(s);
        return SL_ECONFIG;
    }
    *self = s;
    return SL_OK;
}

static sl_err gs_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    gs_state *s = self;
    if (!s->assigned) {
        sl_position pos[64];
        for (int64_t p = 0; p < s->partitions; p++) pos[p] = (sl_position){"events", (int32_t)p, -1};
        s->api->partitions_assigned(ctx, pos, (size_t)s->partitions);
        s->assigned = 1;
    }
    for (size_t emitted = 0; emitted < max;) {
        if (s->api->monotonic_ms(ctx) < s->wake) {
            struct timespec ts = {0, (timeout_ms > 5 ? 5 : timeout_ms) * 1000000L};
            nanosleep(&ts, NULL);
            return SL_OK;
        }
        ssize_t len = getline(&s->line, &s->cap, s->in);
        if (len < 0) return SL_DONE;
        if (len && s->line[len - 1] == '\n') s->line[--len] = 0;
        long long ms;
        if (sscanf(s->line, "sleep %lld", &ms) == 1) {
            s->wake = s->api->monotonic_ms(ctx) + ms;
            return SL_OK;
        }
        int p;
        long long off, t;
        char *tab = strchr(s->line, '\t');
        if (!tab || sscanf(s->line, "%d %lld %lld", &p, &off, &t) != 3 || p < 0 || p >= s->partitions) {
            s->api->log(ctx, SL_LOG_ERROR, "bad line: %s", s->line);
            return SL_FATAL;
        }
        sl_record r = {.value = tab + 1, .value_len = (size_t)(s->line + len - (tab + 1)), .timestamp_ms = t,
                       .topic = "events", .partition = p, .offset = off};
        s->api->emit(ctx, &r);
        emitted++;
    }
    return SL_OK;
}

static void gs_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    gs_state *s = self;
    fclose(s->in);
    free(s->line);
    free(s);
}

static const sl_config_entry gs_table[] = {
    {"path", SL_T_STRING, SL_CFG_REQUIRED, NULL, 0, 0, NULL, offsetof(gs_config, path), "input file"},
    {"partitions", SL_T_INT, 0, "1", 0, 0, NULL, offsetof(gs_config, partitions), "partitions 0..N-1"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc gs_desc = {
    SL_STAGE_DESC_INIT,
    .name = "gap-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "test source: partitions and wall-clock gaps",
    .config = gs_table,
    .config_size = sizeof(gs_config),
    .init = gs_init,
    .poll = gs_poll,
    .close = gs_close,
};

SL_STAGE_DEFINE(gs_desc)
