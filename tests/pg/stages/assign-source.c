/*
 * assign-source — a test source: on its first poll it announces the configured partitions with
 * their committed offsets (api->partitions_assigned); then, with `events: N`, it emits N events
 * per partition (offsets after the committed one), waits for the file `gate` if one is set and
 * emits N more, waits for the file `revoke_gate` if one is set and revokes every partition,
 * waits for the file `end_gate` if one is set; then it ends (SL_DONE).
 * `partitions: ["0=10", "b/3=-1"]` — [TOPIC/]PARTITION=COMMITTED_OFFSET (TOPIC: `topic`).
 * Events: {"event_id": "<prefix><topic>-<p>-<offset>", "event_type": "page_view",
 * "user_id": "u1", "ts": <2024-05-01T12:00:00Z + offset seconds>}.
 */
#include <sluice/stage.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct assign_config {
    char *topic;
    sl_list partitions;
    int64_t events;
    char *prefix;
    char *gate;
    char *revoke_gate;
    char *end_gate;
} assign_config;

typedef struct assign {
    const sl_api *api;
    const assign_config *cfg;
    sl_position *pos;   /* the assigned partitions; offset: the last one emitted */
    char (*topics)[64];
    size_t n;
    int phase;          /* 0 assign, 1 first events, 2 after the gate, 3 revoke, 4 end, 5 done */
} assign;

static int parse(const char *s, const char *deftopic, char *topic, int *p, long long *off)
{
    const char *slash = strchr(s, '/');
    if (slash) {
        size_t n = (size_t)(slash - s);
        if (n == 0 || n >= 64) return 0;
        memcpy(topic, s, n);
        topic[n] = '\0';
        s = slash + 1;
    } else {
        snprintf(topic, 64, "%s", deftopic);
    }
    return sscanf(s, "%d=%lld", p, off) == 2;
}

static sl_err assign_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const assign_config *cfg = config;
    assign *a = calloc(1, sizeof *a);
    size_t n = cfg->partitions.n;
    if (!a || !(a->pos = calloc(n ? n : 1, sizeof *a->pos)) ||
        !(a->topics = calloc(n ? n : 1, sizeof *a->topics))) {
        if (a) free(a->pos);
        free(a);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int p;
        long long off;
        if (!parse(cfg->partitions.items[i], cfg->topic, a->topics[i], &p, &off)) {
            api->log(ctx, SL_LOG_ERROR, "partitions: expected [TOPIC/]P=OFFSET, got '%s'",
                     cfg->partitions.items[i]);
            free(a->pos);
            free(a->topics);
            free(a);
            return SL_ECONFIG;
        }
        a->pos[i] = (sl_position){a->topics[i], p, off};
    }
    a->n = n;
    a->api = api;
    a->cfg = cfg;
    *self = a;
    return SL_OK;
}

static void emit_events(assign *a, sl_ctx *ctx)
{
    for (size_t i = 0; i < a->n; i++) {
        for (int64_t k = 0; k < a->cfg->events; k++) {
            int64_t off = ++a->pos[i].offset;
            char v[256];
            time_t t = (time_t)(1714564800 + off); /* 2024-05-01T12:00:00Z + off s */
            struct tm tm;
            gmtime_r(&t, &tm);
            int len = snprintf(v, sizeof v,
                               "{\"event_id\":\"%s%s-%d-%lld\",\"event_type\":\"page_view\","
                               "\"user_id\":\"u1\",\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\"}",
                               a->cfg->prefix ? a->cfg->prefix : "", a->topics[i], (int)a->pos[i].partition,
                               (long long)off, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                               tm.tm_hour, tm.tm_min, tm.tm_sec);
            sl_record r = {.value = v, .value_len = (size_t)len, .timestamp_ms = (int64_t)t * 1000,
                           .topic = a->topics[i], .partition = a->pos[i].partition, .offset = off};
            a->api->emit(ctx, &r);
        }
    }
}

static sl_err assign_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    assign *a = self;
    (void)max;
    switch (a->phase) {
    case 0: {
        sl_position *pos = calloc(a->n ? a->n : 1, sizeof *pos);
        if (!pos) return SL_ENOMEM;
        memcpy(pos, a->pos, a->n * sizeof *pos);
        a->api->partitions_assigned(ctx, pos, a->n);
        for (size_t i = 0; i < a->n; i++) /* a stage may not move them any more: the test checks */
            a->api->log(ctx, SL_LOG_INFO, "resume position %d=%lld", (int)pos[i].partition,
                        (long long)pos[i].offset);
        free(pos);
        a->phase = a->cfg->events ? 1 : 5;
        return a->phase == 5 ? SL_DONE : SL_OK;
    }
    case 1:
        emit_events(a, ctx);
        a->api->log(ctx, SL_LOG_INFO, "emitted the first events");
        a->phase = 2;
        return SL_OK;
    case 2:
        if (a->cfg->gate && a->cfg->gate[0] && access(a->cfg->gate, F_OK) != 0) {
            usleep((useconds_t)timeout_ms * 1000);
            return SL_OK;
        }
        if (a->cfg->gate && a->cfg->gate[0]) {
            emit_events(a, ctx);
            a->api->log(ctx, SL_LOG_INFO, "emitted the events after the gate");
        }
        a->phase = 3;
        return SL_OK;
    case 3:
        if (a->cfg->revoke_gate && a->cfg->revoke_gate[0]) {
            if (access(a->cfg->revoke_gate, F_OK) != 0) {
                usleep((useconds_t)timeout_ms * 1000);
                return SL_OK;
            }
            a->api->partitions_revoked(ctx, a->pos, a->n);
            a->api->log(ctx, SL_LOG_INFO, "revoked every partition");
        }
        a->phase = 4;
        return SL_OK;
    case 4:
        if (a->cfg->end_gate && a->cfg->end_gate[0] && access(a->cfg->end_gate, F_OK) != 0) {
            usleep((useconds_t)timeout_ms * 1000);
            return SL_OK;
        }
        a->phase = 5;
        return SL_DONE;
    default: return SL_DONE;
    }
}

static void assign_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    assign *a = self;
    free(a->pos);
    free(a->topics);
    free(a);
}

static const sl_config_entry assign_config_table[] = {
    {.key = "topic", .type = SL_T_STRING, .default_value = "events_raw",
     .offset = offsetof(assign_config, topic), .description = "topic of the positions"},
    {.key = "partitions", .type = SL_T_LIST, .flags = SL_CFG_REQUIRED,
     .offset = offsetof(assign_config, partitions),
     .description = "[TOPIC/]P=COMMITTED_OFFSET per assigned partition"},
    {.key = "events", .type = SL_T_INT, .default_value = "0",
     .offset = offsetof(assign_config, events), .description = "events per partition and phase"},
    {.key = "prefix", .type = SL_T_STRING,
     .offset = offsetof(assign_config, prefix), .description = "event_id prefix"},
    {.key = "gate", .type = SL_T_STRING, .offset = offsetof(assign_config, gate),
     .description = "a file to wait for before the second events"},
    {.key = "revoke_gate", .type = SL_T_STRING, .offset = offsetof(assign_config, revoke_gate),
     .description = "a file to wait for before revoking every partition"},
    {.key = "end_gate", .type = SL_T_STRING, .offset = offsetof(assign_config, end_gate),
     .description = "a file to wait for before ending"},
    {.key = NULL},
};

static const sl_stage_desc assign_desc = {
    SL_STAGE_DESC_INIT,
    .name = "assign-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "test: announces partitions with committed offsets, emits events, ends",
    .config = assign_config_table,
    .config_size = sizeof(assign_config),
    .init = assign_init,
    .poll = assign_poll,
    .close = assign_close,
};

SL_STAGE_DEFINE(assign_desc)
