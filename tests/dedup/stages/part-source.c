/* part-source — a test source with partitions, for the dedup and window-kpi tests (a Kafka
 * stand-in without a broker: real host, real acks and commits, partition assignment).
 *
 * Input lines: "PARTITION OFFSET TIMESTAMP_MS<TAB>VALUE", offsets increasing per partition;
 * "TOPIC/PARTITION ..." gives a record another topic than `topic` (offsets and commits are
 * tracked for `topic` only; the others are for tests of state keyed by topic).
 * On the first poll it assigns partitions 0..partitions-1 through api->partitions_assigned,
 * with the committed offsets read from `offset_file` (-1 when none), and then skips every
 * record at or below the offset each partition resumes after — as a Kafka consumer does.
 * Commits are written to `offset_file` as "PARTITION OFFSET" lines (write, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/stage.h>

#define MAXP 64

typedef struct ps_config {
    char *path;
    char *topic;
    int64_t partitions;
    char *offset_file;
} ps_config;

typedef struct ps_state {
    const sl_api *api;
    const ps_config *cfg;
    FILE *in;
    char *line;
    size_t cap;
    int assigned;
    int64_t committed[MAXP]; /* last committed offset per partition, -1 none */
    int64_t resume[MAXP];    /* skip records at or below */
} ps_state;

static void read_offsets(ps_state *s)
{
    for (int p = 0; p < MAXP; p++) s->committed[p] = -1;
    FILE *f = s->cfg->offset_file[0] ? fopen(s->cfg->offset_file, "r") : NULL;
    if (!f) return;
    int p;
    long long o;
    while (fscanf(f, "%d %lld", &p, &o) == 2)
        if (p >= 0 && p < MAXP) s->committed[p] = o;
    fclose(f);
}

static int write_offsets(ps_state *s)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->cfg->offset_file);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    for (int p = 0; p < MAXP; p++)
        if (s->committed[p] >= 0) fprintf(f, "%d %" PRId64 "\n", p, s->committed[p]);
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, s->cfg->offset_file) == 0 ? 0 : -1;
}

static sl_err ps_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const ps_config *cfg = config;
    ps_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = cfg;
    if (cfg->partitions < 1 || cfg->partitions > MAXP || !(s->in = fopen(cfg->path, "r"))) {
        api->log(ctx, SL_LOG_ERROR, "cannot open %s or bad partitions", cfg->path);
        free(s);
        return SL_ECONFIG;
    }
    read_offsets(s);
    *self = s;
    return SL_OK;
}

static sl_err ps_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    (void)timeout_ms;
    ps_state *s = self;
    if (!s->assigned) {
        sl_position pos[MAXP];
        size_t n = (size_t)s->cfg->partitions;
        for (size_t p = 0; p < n; p++) pos[p] = (sl_position){s->cfg->topic, (int32_t)p, s->committed[p]};
        s->api->partitions_assigned(ctx, pos, n);
        for (size_t p = 0; p < n; p++) s->resume[p] = pos[p].offset; /* a stage may have moved it */
        s->assigned = 1;
    }
    for (size_t emitted = 0; emitted < max;) {
        ssize_t len = getline(&s->line, &s->cap, s->in);
        if (len < 0) return SL_DONE;
        if (len && s->line[len - 1] == '\n') s->line[--len] = 0;
        int p, used = 0;
        long long off, ts;
        char *tab = strchr(s->line, '\t'), *slash = strchr(s->line, '/'), *topic = s->cfg->topic, *nums = s->line;
        if (slash && tab && slash < tab && (s->line[0] < '0' || s->line[0] > '9')) {
            *slash = 0;
            topic = s->line;
            nums = slash + 1;
        }
        if (!tab || sscanf(nums, "%d %lld %lld%n", &p, &off, &ts, &used) != 3 || p < 0 ||
            p >= s->cfg->partitions) {
            s->api->log(ctx, SL_LOG_ERROR, "bad line: %s", s->line);
            return SL_FATAL;
        }
        if (topic == s->cfg->topic && off <= s->resume[p]) continue;
        sl_record r = {.value = tab + 1, .value_len = (size_t)(s->line + len - (tab + 1)), .timestamp_ms = ts,
                       .topic = topic, .partition = p, .offset = off};
        s->api->emit(ctx, &r);
        emitted++;
    }
    return SL_OK;
}

static sl_err ps_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    ps_state *s = self;
    for (size_t i = 0; i < n; i++)
        if (pos[i].topic && !strcmp(pos[i].topic, s->cfg->topic) && pos[i].partition >= 0 && pos[i].partition < MAXP &&
            pos[i].offset > s->committed[pos[i].partition])
            s->committed[pos[i].partition] = pos[i].offset;
    if (!s->cfg->offset_file[0]) return SL_OK;
    if (write_offsets(s) != 0) {
        s->api->log(ctx, SL_LOG_WARN, "cannot write %s: %s", s->cfg->offset_file, strerror(errno));
        return SL_RETRY;
    }
    return SL_OK;
}

static void ps_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    ps_state *s = self;
    fclose(s->in);
    free(s->line);
    free(s);
}

static const sl_config_entry ps_table[] = {
    {"path", SL_T_STRING, SL_CFG_REQUIRED, NULL, 0, 0, NULL, offsetof(ps_config, path), "input file"},
    {"topic", SL_T_STRING, 0, "events", 0, 0, NULL, offsetof(ps_config, topic), "topic of every record"},
    {"partitions", SL_T_INT, 0, "1", 0, 0, NULL, offsetof(ps_config, partitions), "partitions 0..N-1"},
    {"offset_file", SL_T_STRING, 0, "", 0, 0, NULL, offsetof(ps_config, offset_file),
     "committed offsets, \"PARTITION OFFSET\" per line; \"\" keeps none"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc ps_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_SINGLE_TASK,
    .name = "part-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "test source: partitioned records from a file, with assignment and commits",
    .config = ps_table,
    .config_size = sizeof(ps_config),
    .init = ps_init,
    .poll = ps_poll,
    .commit = ps_commit,
    .close = ps_close,
};

SL_STAGE_DEFINE(ps_desc)
