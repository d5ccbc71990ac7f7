/* json_api.c — lazy JSON access: a record's value is parsed on first use and the tree travels
 * with the record, so a chain parses it at most once. Trees are built by json_tree.c in the
 * task's arena (a whole wave's trees go away with one arena reset); cJSON's allocator hooks
 * are left alone, so stages that use cJSON themselves get plain malloc. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_tree.h"
#include "jsoncheck.h"
#include "runtime_int.h"

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
    /* Outside input: refuse what cJSON would not represent faithfully (host/jsoncheck.h). One
     * pass checks and parses; what it cannot decide gets the strict check, for its verdict and
     * reason, and then the plain parse. */
    const char *bad = NULL;
    cJSON *j = rec->value_len ? jt_parse_strict(&t->arena, rec->value, rec->value_len) : NULL;
    if (!j && rec->value_len && !(bad = sl_json_strict(rec->value, rec->value_len)))
        j = jt_parse(&t->arena, rec->value, rec->value_len);
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

/* The record's parsed object, or NULL (then the set is refused). */
static cJSON *set_target(sl_ctx *ctx, const sl_record *rec, hrec **hp)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h) return NULL;
    if (!h->json_state) api_json(ctx, rec, NULL);
    if (h->json_state != 1 || !cJSON_IsObject(h->json)) return NULL;
    *hp = h;
    return h->json;
}

#define JSON_SET(make)                                                                        \
    do {                                                                                      \
        hrec *h;                                                                              \
        cJSON *obj = set_target(ctx, rec, &h);                                                \
        if (!obj || !key) return SL_EINVAL;                                                   \
        jt_set(&ctx->task->arena, obj, key, (make));                                          \
        h->dirty = 1;                                                                         \
        return SL_OK;                                                                         \
    } while (0)

sl_err api_json_set_string(sl_ctx *ctx, const sl_record *rec, const char *key, const char *v)
{
    if (!v) return SL_EINVAL;
    JSON_SET(jt_string(&ctx->task->arena, v, strlen(v)));
}

sl_err api_json_set_number(sl_ctx *ctx, const sl_record *rec, const char *key, double v)
{
    if (!isfinite(v)) return SL_EINVAL;
    JSON_SET(jt_number(&ctx->task->arena, v));
}

sl_err api_json_set_bool(sl_ctx *ctx, const sl_record *rec, const char *key, int v)
{
    JSON_SET(jt_literal(&ctx->task->arena, v ? cJSON_True : cJSON_False));
}

sl_err api_json_set_null(sl_ctx *ctx, const sl_record *rec, const char *key)
{
    JSON_SET(jt_literal(&ctx->task->arena, cJSON_NULL));
}

/* ---- ABI 1.7: lengths, exact integers, printing, precomputed keys ----------------------- */

const char *api_json_string_len(const sl_json *node, size_t *len)
{
    const jnode *j = (const jnode *)node;
    if (!j || !cJSON_IsString(&j->c)) return NULL;
    if (len) *len = j->len;
    return j->c.valuestring;
}

sl_err api_json_int64(const sl_json *node, int64_t *out)
{
    const jnode *j = (const jnode *)node;
    if (!j || !cJSON_IsNumber(&j->c)) return SL_EINVAL;
    if (j->text) { /* an integer beyond what the double holds exactly: read its digits */
        char *end;
        errno = 0;
        long long v = strtoll(j->text, &end, 10);
        if (errno || *end) return SL_EINVAL;
        *out = v;
        return SL_OK;
    }
    double d = j->c.valuedouble;
    /* Below 2^53 in magnitude every integer is exact in a double; beyond, the parser kept the
     * digits (above), so a double here that large came from a fraction or exponent form. */
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != floor(d)) return SL_EINVAL;
    *out = (int64_t)d;
    return SL_OK;
}

const char *api_json_print(sl_ctx *ctx, const sl_json *node, size_t *len)
{
    if (!node) return NULL;
    return jt_print(&ctx->task->arena, (const cJSON *)node, 256, len);
}

void api_json_key_init(sl_json_key *k, const char *name)
{
    k->name = name;
    k->len = name ? strlen(name) : 0;
    k->hash = jt_hash(name ? name : "", k->len);
}

int api_json_key_is(const sl_json *node, const sl_json_key *k)
{
    const jnode *j = (const jnode *)node;
    return j && j->c.string && j->khash == k->hash && j->klen == k->len &&
           !memcmp(j->c.string, k->name, k->len);
}

sl_json *api_json_get_key(const sl_json *obj, const sl_json_key *k)
{
    const cJSON *o = (const cJSON *)obj;
    if (!o || !cJSON_IsObject(o)) return NULL;
    for (const cJSON *m = o->child; m; m = m->next)
        if (api_json_key_is((const sl_json *)m, k)) return (sl_json *)m;
    return NULL;
}

uint64_t api_json_key_hash(const sl_json *node, size_t *len)
{
    const jnode *j = (const jnode *)node;
    if (!j || !j->c.string) return 0;
    if (len) *len = j->klen;
    return j->khash;
}

const void *api_value(sl_ctx *ctx, const sl_record *rec, size_t *len)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (h) materialize(ctx->task, h);
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
    /* Unlinked only: the node is in the task arena, freed with it. */
    if (cJSON_DetachItemFromObjectCaseSensitive(h->json, key)) h->dirty = 1;
    return SL_OK;
}

sl_err api_json_set_json(sl_ctx *ctx, const sl_record *rec, const char *key, const sl_json *value)
{
    if (!value) return SL_EINVAL;
    /* Copied before the member is replaced: value may be that member or inside it. */
    JSON_SET(jt_copy(&ctx->task->arena, (const cJSON *)value));
}

sl_err api_set_key(sl_ctx *ctx, const sl_record *rec, const void *key, size_t len)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h || (len && !key)) return SL_EINVAL;
    h->r.key = len ? arena_memdup(&ctx->task->arena, key, len) : NULL;
    h->r.key_len = len;
    return SL_OK;
}
