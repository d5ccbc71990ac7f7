/* json_api.c — lazy JSON access: a record's value is parsed on first use and the tree travels
 * with the record, so a chain parses it at most once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"
#include "runtime_int.h"

/* cJSON allocates through process-wide hooks. A task thread points them at its own arena, so
 * parsing a record costs bump allocations and a whole batch's trees go away with one arena
 * reset instead of ~35 free() calls per record; other threads keep using malloc. */
__thread sl_arena *json_arena;

void *json_malloc(size_t n) { return json_arena ? arena_alloc(json_arena, n) : malloc(n); }

void json_free(void *p)
{
    if (p && !(json_arena && arena_owns(json_arena, p))) free(p);
}

/* ---- JSON ------------------------------------------------------------------------------ */

sl_json *api_json(sl_ctx *ctx, const sl_record *rec, const char **err)
{
    task *t = ctx->task;
    hrec *h = as_hrec(t, rec);
    if (h && h->json_state == 1) return (sl_json *)h->json;
    if (h && h->json_state == 2) {
        if (err) *err = "value is not valid JSON";
        return NULL;
    }
    cJSON *j = NULL;
    /* Outside input: refuse what cJSON would not represent faithfully (host/jsoncheck.h). */
    const char *bad = rec->value_len ? sl_json_strict(rec->value, rec->value_len) : NULL;
    if (rec->value_len && !bad) j = cJSON_ParseWithLength(rec->value, rec->value_len);
    if (h) {
        h->json_state = j ? 1 : 2;
        h->json = j;
    }
    /* A stage-built record's tree lives in the arena until the wave ends, like any other. */
    if (!j && err) *err = bad ? bad : rec->value_len ? "value is not valid JSON" : "value is empty";
    return (sl_json *)j;
}

sl_json *api_json_get(const sl_json *obj, const char *key)
{
    const cJSON *o = (const cJSON *)obj;
    if (!o || !cJSON_IsObject(o)) return NULL;
    return (sl_json *)cJSON_GetObjectItemCaseSensitive(o, key);
}

sl_json_type api_json_type(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    if (!j) return SL_JSON_INVALID;
    switch (j->type & 0xff) {
    case cJSON_NULL: return SL_JSON_NULL;
    case cJSON_True:
    case cJSON_False: return SL_JSON_BOOL;
    case cJSON_Number: return SL_JSON_NUMBER;
    case cJSON_String: return SL_JSON_STRING;
    case cJSON_Array: return SL_JSON_ARRAY;
    case cJSON_Object: return SL_JSON_OBJECT;
    default: return SL_JSON_INVALID;
    }
}

const char *api_json_string(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j && cJSON_IsString(j) ? j->valuestring : NULL;
}

double api_json_number(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    if (j && cJSON_IsNumber(j)) return j->valuedouble;
    if (j && cJSON_IsBool(j)) return cJSON_IsTrue(j) ? 1 : 0;
    return NAN;
}

size_t api_json_size(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j && (cJSON_IsArray(j) || cJSON_IsObject(j)) ? (size_t)cJSON_GetArraySize(j) : 0;
}

sl_json *api_json_at(const sl_json *node, size_t i)
{
    const cJSON *j = (const cJSON *)node;
    if (!j || !(cJSON_IsArray(j) || cJSON_IsObject(j)) || i > INT32_MAX) return NULL;
    return (sl_json *)cJSON_GetArrayItem(j, (int)i);
}

sl_json *api_json_next(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j ? (sl_json *)j->next : NULL;
}

const char *api_json_key(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j ? j->string : NULL;
}

static sl_err json_set(sl_ctx *ctx, const sl_record *rec, const char *key, cJSON *item)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!item) return SL_ENOMEM;
    if (!h) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    if (!h->json_state) api_json(ctx, rec, NULL);
    if (h->json_state != 1 || !cJSON_IsObject(h->json)) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(h->json, key))
        cJSON_ReplaceItemInObjectCaseSensitive(h->json, key, item);
    else
        cJSON_AddItemToObject(h->json, key, item);
    h->dirty = 1;
    return SL_OK;
}

sl_err api_json_set_string(sl_ctx *ctx, const sl_record *rec, const char *key, const char *v)
{
    return json_set(ctx, rec, key, cJSON_CreateString(v));
}

sl_err api_json_set_number(sl_ctx *ctx, const sl_record *rec, const char *key, double v)
{
    if (!isfinite(v)) return SL_EINVAL;
    return json_set(ctx, rec, key, cJSON_CreateNumber(v));
}

sl_err api_json_set_bool(sl_ctx *ctx, const sl_record *rec, const char *key, int v)
{
    return json_set(ctx, rec, key, cJSON_CreateBool(v != 0));
}

sl_err api_json_set_null(sl_ctx *ctx, const sl_record *rec, const char *key)
{
    return json_set(ctx, rec, key, cJSON_CreateNull());
}

const void *api_value(sl_ctx *ctx, const sl_record *rec, size_t *len)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (h) materialize(h);
    if (len) *len = rec->value_len;
    return rec->value;
}

sl_err api_set_topic(sl_ctx *ctx, const sl_record *rec, const char *topic)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h) return SL_EINVAL;
    h->r.topic = arena_strdup(&ctx->task->arena, topic);
    return SL_OK;
}

/* ---- ABI 1.2 --------------------------------------------------------------------------- */

sl_err api_json_remove(sl_ctx *ctx, const sl_record *rec, const char *key)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h) return SL_EINVAL;
    if (!h->json_state) api_json(ctx, rec, NULL);
    if (h->json_state != 1 || !cJSON_IsObject(h->json)) return SL_EINVAL;
    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(h->json, key);
    if (it) {
        cJSON_Delete(it);
        h->dirty = 1;
    }
    return SL_OK;
}

sl_err api_json_set_json(sl_ctx *ctx, const sl_record *rec, const char *key, const sl_json *value)
{
    if (!value) return SL_EINVAL;
    /* Copied before the member is replaced: value may be that member or inside it. */
    return json_set(ctx, rec, key, cJSON_Duplicate((const cJSON *)value, 1));
}

sl_err api_set_key(sl_ctx *ctx, const sl_record *rec, const void *key, size_t len)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h || (len && !key)) return SL_EINVAL;
    h->r.key = len ? arena_memdup(&ctx->task->arena, key, len) : NULL;
    h->r.key_len = len;
    return SL_OK;
}
