/* ticker — a test source that can pause, like a Kafka consumer: emits `count` records
 * {"n":1}..{"n":count} on partition 0 (offset = n) in batches, and counts the polls it gets while
 * paused (counter polls_paused, logged at close). With `ignore_pause` it keeps emitting while
 * paused and ignores max = 0 (a source that hands over records anyway). With `rebalance` it
 * has partition 0 revoked and assigned again at its first poll while paused (a Kafka rebalance
 * while a stage retries). With `revoke_at` N it revokes and reassigns partition 0 once, after
 * emitting record N (a rebalance with the chain running). Commits are appended to `commit_file`
 * ("OFFSET" lines). With
 * `ends_behind` N >= 0 it owns partition 0 (assigned at its first poll), reports the partition's
 * end as count + 1 + N on every poll (api->report_end_offsets: N records it never reads) and
 * keeps running idle once its records are out. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <sluice/stage.h>

typedef struct ticker_config {
    int64_t count;
    int ignore_pause;
    int rebalance;
    char *commit_file;
    int64_t revoke_at;
    int64_t ends_behind;
} ticker_config;

typedef struct ticker {
    const sl_api *api;
    const ticker_config *cfg;
    int64_t next;
    int paused;
    int revoked;
    uint64_t polls_paused;
} ticker;

static sl_err tk_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    ticker *t = calloc(1, sizeof *t);
    if (!t) return SL_ENOMEM;
    t->api = api;
    t->cfg = config;
    t->next = 1;
    *self = t;
    return SL_OK;
}

static sl_err tk_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    (void)timeout_ms;
    ticker *t = self;
    if (t->cfg->ends_behind >= 0) {
        sl_position end = {"ticks", 0, t->cfg->count + 1 + t->cfg->ends_behind};
        if (t->next == 1) {
            sl_position assign = {"ticks", 0, -1};
            t->api->partitions_assigned(ctx, &assign, 1);
        }
        if (SL_HAS(t->api, report_end_offsets))
            t->api->report_end_offsets(ctx, &end, 1);
    }
    if (t->paused && t->cfg->rebalance && !t->polls_paused) {
        sl_position pos = {"ticks", 0, -1};
        t->api->partitions_revoked(ctx, &pos, 1);
        t->api->partitions_assigned(ctx, &pos, 1);
    }
    if (t->paused) {
        t->polls_paused++;
        t->api->count(ctx, "polls_paused", 1);
        if (!t->cfg->ignore_pause) return SL_OK;
        max = 3;
    }
    if (t->cfg->revoke_at && !t->revoked && t->next > t->cfg->revoke_at) {
        sl_position pos = {"ticks", 0, -1};
        t->revoked = 1;
        t->api->partitions_revoked(ctx, &pos, 1);
        t->api->partitions_assigned(ctx, &pos, 1);
    }
    for (size_t i = 0; i < max && t->next <= t->cfg->count; i++, t->next++) {
        char v[32];
        int n = snprintf(v, sizeof v, "{\"n\":%lld}", (long long)t->next);
        sl_record r = {.value = v, .value_len = (size_t)n, .topic = "ticks", .partition = 0, .offset = t->next};
        t->api->emit(ctx, &r);
    }
    return t->next > t->cfg->count && t->cfg->ends_behind < 0 ? SL_DONE : SL_OK;
}

static sl_err tk_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    (void)ctx;
    ticker *t = self;
    FILE *f = t->cfg->commit_file ? fopen(t->cfg->commit_file, "a") : NULL;
    for (size_t i = 0; f && i < n; i++) fprintf(f, "%lld\n", (long long)pos[i].offset);
    if (f) fclose(f);
    return SL_OK;
}

static sl_err tk_pause(void *self, sl_ctx *ctx) { (void)ctx; ((ticker *)self)->paused = 1; return SL_OK; }
static sl_err tk_resume(void *self, sl_ctx *ctx) { (void)ctx; ((ticker *)self)->paused = 0; return SL_OK; }

static void tk_close(void *self, sl_ctx *ctx)
{
    ticker *t = self;
    t->api->log(ctx, SL_LOG_INFO, "polled %llu times while paused", (unsigned long long)t->polls_paused);
    free(t);
}

static const sl_config_entry tk_table[] = {
    {"count", SL_T_INT, SL_CFG_BOUNDED, "100", 1, 10000000, NULL, offsetof(ticker_config, count), "records to emit"},
    {"ignore_pause", SL_T_BOOL, 0, "false", 0, 0, NULL, offsetof(ticker_config, ignore_pause), "emit while paused"},
    {"rebalance", SL_T_BOOL, 0, "false", 0, 0, NULL, offsetof(ticker_config, rebalance), "revoke and reassign partition 0 while paused"},
    {"commit_file", SL_T_STRING, 0, NULL, 0, 0, NULL, offsetof(ticker_config, commit_file), "append committed offsets here"},
    {"revoke_at", SL_T_INT, 0, "0", 0, 0, NULL, offsetof(ticker_config, revoke_at), "revoke and reassign partition 0 once after record N"},
    {"ends_behind", SL_T_INT, SL_CFG_BOUNDED, "-1", -1, 1000000, NULL, offsetof(ticker_config, ends_behind), "report the partition end this far past the last record (-1: no report)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc tk_desc = {
    SL_STAGE_DESC_INIT,
    .name = "ticker",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "test source: numbered records, pausable, counts polls while paused",
    .config = tk_table,
    .config_size = sizeof(ticker_config),
    .init = tk_init,
    .poll = tk_poll,
    .commit = tk_commit,
    .close = tk_close,
    .pause = tk_pause,
    .resume = tk_resume,
};

SL_STAGE_DEFINE(tk_desc)
