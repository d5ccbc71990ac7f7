/*
 * validator — UC03 parse & validate, plus normalisation ("clean").
 *
 * Each record must be a JSON object that satisfies a schema file written in YAML:
 *
 *   fields:
 *     amount: {type: number, min: 0, required_when: {event_type: [purchase]}, normalize: [round2]}
 *
 * Valid records are normalised in place (only when a value actually changes, so the host
 * re-serialises as little as possible), get their timestamp from the first timestamp field,
 * and are forwarded. Invalid ones are rejected to the dead letter with "<field>: <rule>"
 * (or dropped and counted, with on_invalid: drop). Unknown fields are kept.
 *
 * The record is checked and normalised in two steps — validate() collects the changes, then
 * they are applied — so a rejected record reaches the dead letter exactly as it arrived.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validator.h"

/* ---- callbacks ------------------------------------------------------------------------- */

static sl_err v_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const vconf *conf = config;
    validator *v = calloc(1, sizeof *v);
    if (!v)
        return SL_ENOMEM;
    v->api = api;
    v->conf = conf;
    char path[4096], err[8192];
    const char *dir = api->config_dir(ctx);
    if (conf->schema[0] == '/' || !dir || !*dir)
        snprintf(path, sizeof path, "%s", conf->schema);
    else
        snprintf(path, sizeof path, "%s/%s", dir, conf->schema);
    if (!schema_load(&v->sc, path, err, sizeof err)) {
        api->log(ctx, SL_LOG_ERROR, "schema: %s", err);
        free(v);
        return SL_ECONFIG;
    }
    validator_keys_init(v);
    for (size_t i = 0; i < v->sc.n; i++)
        if (v->sc.f[i].has_default && v->sc.f[i].type == FT_BOOLEAN &&
            api->struct_size < offsetof(sl_api, json_set_bool) + sizeof api->json_set_bool) {
            api->log(ctx, SL_LOG_ERROR, "schema: %s: a boolean default needs a newer host (json_set_bool)",
                     v->sc.f[i].name);
            schema_free(&v->sc);
            free(v);
            return SL_ECONFIG;
        }
    /* Normalised strings are never longer than the record; timestamps take 32 bytes each. */
    v->arena_size = (size_t)conf->max_record_bytes + 32 * MAX_FIELDS + 64;
    v->arena = malloc(v->arena_size);
    if (!v->arena) {
        schema_free(&v->sc);
        free(v);
        return SL_ENOMEM;
    }
    api->log(ctx, SL_LOG_INFO, "schema %s: %zu fields", path, v->sc.n);
    *self = v;
    return SL_OK;
}

static sl_err v_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    validator *v = self;
    const sl_api *api = v->api;
    uint64_t invalid = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        if (!validate(v, ctx, rec)) {
            invalid++;
            if (v->conf->on_invalid == 0)
                api->reject(ctx, rec, v->reason);
            else
                api->log(ctx, SL_LOG_DEBUG, "dropped: %s", v->reason);
            continue;
        }
        sl_err e = apply_mutations(v, ctx, rec);
        if (e != SL_OK)
            return e;
        if (v->has_ts && (e = api->set_timestamp(ctx, rec, v->ts_ms)) != SL_OK)
            return e;
        if ((e = api->emit(ctx, rec)) != SL_OK)
            return e;
    }
    if (invalid)
        api->count(ctx, "invalid", invalid);
    return SL_OK;
}

static void v_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    validator *v = self;
    schema_free(&v->sc);
    free(v->arena);
    free(v);
}

/* ---- config table and descriptor ------------------------------------------------------- */

static const sl_config_entry v_config[] = {
    SL_CFG_PATH("schema", vconf, schema, .flags = SL_CFG_REQUIRED,
        .description = "schema YAML file; relative paths are relative to the pipeline file"),
    SL_CFG_SIZE("max_record_bytes", vconf, max_record_bytes, .flags = SL_CFG_BOUNDED,
        .default_value = "64KiB", .min = 16, .max = 1073741824.0,
        .description = "larger records are rejected"),
    SL_CFG_ENUM("on_invalid", vconf, on_invalid, .default_value = "reject", .choices = "reject|drop",
        .description = "reject: to the dead letter with the reason; drop: count and drop"),
    SL_CFG_END,
};

/* Before start (`sluice validate`, REST, hot reload): the schema file must load. */
static sl_err v_check(const void *config, sl_check *c)
{
    const vconf *conf = config;
    if (conf->schema[0] != '/' && !c->config_dir)
        return SL_OK; /* no pipeline file to resolve it against: init will tell */
    char path[4096], err[8192];
    if (conf->schema[0] == '/' || !*c->config_dir)
        snprintf(path, sizeof path, "%s", conf->schema);
    else
        snprintf(path, sizeof path, "%s/%s", c->config_dir, conf->schema);
    schema sc;
    memset(&sc, 0, sizeof sc);
    if (!schema_load(&sc, path, err, sizeof err)) {
        snprintf(c->why, c->why_len, "schema: %s", err);
        snprintf(c->where, c->where_len, "/schema");
        return SL_ECONFIG;
    }
    schema_free(&sc);
    return SL_OK;
}

static const sl_stage_desc v_desc = {
    SL_STAGE_DESC_INIT,
    .name = "validator",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "validates JSON records against a YAML schema, normalises fields, rejects the rest",
    .config = v_config,
    .config_size = sizeof(vconf),
    .init = v_init,
    .process = v_process,
    .close = v_close,
    .check = v_check,
};

SL_STAGE_DEFINE(v_desc)
