/* keeper — a test transform that uses cJSON on its own, as a third-party stage may: at its first
 * batch it parses a document with cJSON_Parse and keeps the tree; at every later batch it prints
 * the tree again and fails the pipeline (SL_FATAL) if the text changed. A host that points
 * cJSON's process-wide allocator at its per-batch arena hands this tree memory that the next
 * batch reuses. Records pass through unchanged. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/stage.h>

static const char doc[] = "{\"kept\":\"a tree this stage owns until close, across every batch\","
                          "\"list\":[1,2,3,\"four\",{\"five\":5}]}";

typedef struct keeper {
    const sl_api *api;
    cJSON *tree;
    char *text;
} keeper;

static sl_err kp_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx;
    (void)config;
    keeper *k = calloc(1, sizeof *k);
    if (!k) return SL_ENOMEM;
    k->api = api;
    *self = k;
    return SL_OK;
}

static sl_err kp_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    keeper *k = self;
    for (size_t i = 0; i < b->n; i++) /* the host parses these records in this batch's memory */
        k->api->json(ctx, b->recs[i], NULL);
    if (!k->tree) {
        k->tree = cJSON_Parse(doc);
        k->text = cJSON_PrintUnformatted(k->tree);
        if (!k->tree || !k->text || strcmp(k->text, doc)) return SL_FATAL;
    } else {
        char *now = cJSON_PrintUnformatted(k->tree);
        int same = now && !strcmp(now, k->text);
        cJSON_free(now);
        if (!same) {
            k->api->log(ctx, SL_LOG_ERROR, "the tree kept since the first batch changed");
            return SL_FATAL;
        }
    }
    for (size_t i = 0; i < b->n; i++)
        if (k->api->emit(ctx, b->recs[i]) != SL_OK) return SL_ENOMEM;
    return SL_OK;
}

static void kp_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    keeper *k = self;
    cJSON_Delete(k->tree);
    cJSON_free(k->text);
    free(k);
}

static const sl_stage_desc desc = {
    SL_STAGE_DESC_INIT,
    .name = "keeper",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "test: keeps its own cJSON tree across batches",
    .init = kp_init,
    .process = kp_process,
    .close = kp_close,
};
SL_STAGE_DEFINE(desc)
