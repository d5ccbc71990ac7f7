/* kafka-ts — a bench-only transform for bench/e2e-pg.sh: copies the record's timestamp, as the
 * source set it, into a JSON field (epoch milliseconds), so that it survives the validator
 * (which sets the record timestamp to the event time) and pg-sink can store it in a column.
 * Right after kafka-source the timestamp is the Kafka message timestamp.
 *
 *   - {name: stamp, use: /path/to/kafka-ts.so, with: {field: _kafka_ts}}
 *
 * Built by the benchmark itself: cc -O2 -shared -fPIC -Iinclude -o kafka-ts.so kafka-ts.c
 * A record that is not a JSON object is forwarded unchanged (the validator rejects it).
 */
#include <stddef.h>
#include <stdlib.h>

#include <sluice/stage.h>

typedef struct kts_config {
    char *field;
} kts_config;

typedef struct kts_state {
    const sl_api *api;
    const kts_config *cfg;
} kts_state;

static sl_err kts_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    kts_state *s = malloc(sizeof *s);
    if (!s)
        return SL_ENOMEM;
    s->api = api;
    s->cfg = config;
    *self = s;
    return SL_OK;
}

static sl_err kts_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    kts_state *s = self;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        sl_json *root = s->api->json(ctx, rec, NULL);
        if (root && s->api->json_type(root) == SL_JSON_OBJECT &&
            s->api->json_set_number(ctx, rec, s->cfg->field, (double)rec->timestamp_ms) != SL_OK)
            return SL_ENOMEM;
        if (s->api->emit(ctx, rec) != SL_OK)
            return SL_ENOMEM;
    }
    return SL_OK;
}

static void kts_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    free(self);
}

static const sl_config_entry kts_config_table[] = {
    {"field", SL_T_STRING, 0, "_kafka_ts", 0, 0, NULL, offsetof(kts_config, field),
     "JSON field to set to the record timestamp (epoch ms)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL},
};

static const sl_stage_desc kts_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "kafka-ts",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "bench: copies the record timestamp into a JSON field",
    .config = kts_config_table,
    .config_size = sizeof(kts_config),
    .init = kts_init,
    .process = kts_process,
    .close = kts_close,
};

SL_STAGE_DEFINE(kts_desc)
