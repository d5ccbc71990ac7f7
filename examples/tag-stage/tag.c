/* tag — an example sluice stage: sets one field on every JSON record.
 *
 *   stages:
 *     - {name: tag, use: tag, with: {field: source, value: web}}
 *
 * It shows the whole shape of a stage: a config struct and its table, init/process/close,
 * reading and changing a record's JSON through the host API, forwarding with emit and sending
 * what it cannot handle to the dead letter with reject. Build it out of tree with
 *   cc -shared -fPIC $(pkg-config --cflags sluice) -o tag.so tag.c
 */
#include <stddef.h>
#include <stdlib.h>

#include <sluice/stage.h>

/* 1. The config: the host fills this struct from the YAML `with:` map, checked against the
 *    table below, before init is called. */
typedef struct tag_config {
    char *field;
    char *value;
} tag_config;

typedef struct tag_state {
    const sl_api *api;
    const tag_config *cfg;
} tag_state;

/* 2. Callbacks. */
static sl_err tag_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    tag_state *s = malloc(sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = config; /* borrowed until close */
    *self = s;
    return SL_OK;
}

static sl_err tag_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    tag_state *s = self;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        const char *why = NULL;
        sl_json *root = s->api->json(ctx, rec, &why); /* parsed once per chain, cached */
        if (!root || s->api->json_type(root) != SL_JSON_OBJECT) {
            s->api->reject(ctx, rec, why ? why : "value is not a JSON object");
            continue;
        }
        if (s->api->json_set_string(ctx, rec, s->cfg->field, s->cfg->value) != SL_OK)
            return SL_ENOMEM;
        s->api->emit(ctx, rec); /* forward the same record: no copy */
    }
    return SL_OK;
}

static void tag_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

/* 3. The config table: one typed row per setting (the field's C type is checked when it compiles). */
static const sl_config_entry tag_config_table[] = {
    SL_CFG_STRING("field", tag_config, field, .default_value = "tag", .description = "field to set"),
    SL_CFG_STRING("value", tag_config, value, .flags = SL_CFG_REQUIRED, .description = "value to set it to"),
    SL_CFG_END,
};

/* 4. The descriptor, returned by the one exported entry point. */
static const sl_stage_desc tag_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "tag",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "example: sets one field on every JSON record",
    .config = tag_config_table,
    .config_size = sizeof(tag_config),
    .init = tag_init,
    .process = tag_process,
    .close = tag_close,
};

SL_STAGE_DEFINE(tag_desc)
