/* refuse — a test sink that rejects every record containing `refuse_on` (as a dead-letter sink
 * refusing a record PostgreSQL cannot store would) and appends the others to `path`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/stage.h>

typedef struct refuse_config {
    char *refuse_on;
    char *path;
} refuse_config;

typedef struct refuse_state {
    const sl_api *api;
    const refuse_config *cfg;
    FILE *out;
} refuse_state;

static sl_err refuse_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const refuse_config *cfg = config;
    refuse_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = cfg;
    if (!(s->out = fopen(cfg->path, "a"))) {
        api->log(ctx, SL_LOG_ERROR, "cannot open %s", cfg->path);
        free(s);
        return SL_ECONFIG;
    }
    *self = s;
    return SL_OK;
}

static sl_err refuse_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    refuse_state *s = self;
    size_t n = strlen(s->cfg->refuse_on);
    for (size_t i = 0; i < b->n; i++) {
        const sl_record *r = b->recs[i];
        if (n && r->value_len >= n && memmem(r->value, r->value_len, s->cfg->refuse_on, n)) {
            s->api->reject(ctx, r, "refuse: cannot store this record");
            continue;
        }
        fwrite(r->value, 1, r->value_len, s->out);
        fputc('\n', s->out);
    }
    return fflush(s->out) == 0 ? SL_OK : SL_FATAL;
}

static void refuse_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    refuse_state *s = self;
    fclose(s->out);
    free(s);
}

static const sl_config_entry refuse_table[] = {
    {"refuse_on", SL_T_STRING, SL_CFG_REQUIRED, NULL, 0, 0, NULL, offsetof(refuse_config, refuse_on), "reject records containing this"},
    {"path", SL_T_STRING, SL_CFG_REQUIRED, NULL, 0, 0, NULL, offsetof(refuse_config, path), "where accepted values go"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc refuse_desc = {
    SL_STAGE_DESC_INIT,
    .name = "refuse",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "test sink: rejects records containing a string, writes the rest",
    .config = refuse_table,
    .config_size = sizeof(refuse_config),
    .init = refuse_init,
    .process = refuse_process,
    .close = refuse_close,
};

SL_STAGE_DEFINE(refuse_desc)
