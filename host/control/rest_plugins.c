/* rest_plugins.c — /connector-plugins: the loaded stages, their config tables, and checking a
 * config against one (PUT …/config/validate). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "loader.h"
#include "rest_int.h"
#include "supervisor.h"
#include "yamltree.h"

/* ---- plugins ---------------------------------------------------------------------------------- */

static void upper(char *dst, const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) dst[i] = (char)toupper((unsigned char)s[i]);
    dst[i] = 0;
}

static cJSON *definition_of(const sl_config_entry *e, int order)
{
    cJSON *d = cJSON_CreateObject();
    char type[32];
    upper(type, type_name(e->type), sizeof type);
    cJSON_AddStringToObject(d, "name", e->key);
    cJSON_AddStringToObject(d, "type", type);
    cJSON_AddBoolToObject(d, "required", (e->flags & SL_CFG_REQUIRED) != 0);
    if (e->default_value && !(e->flags & SL_CFG_REQUIRED)) cJSON_AddStringToObject(d, "default_value", e->default_value);
    else cJSON_AddNullToObject(d, "default_value");
    cJSON_AddStringToObject(d, "importance", (e->flags & SL_CFG_REQUIRED) ? "HIGH" : "MEDIUM");
    cJSON_AddStringToObject(d, "documentation", e->description ? e->description : "");
    cJSON_AddStringToObject(d, "group", "Common");
    cJSON_AddStringToObject(d, "width", "NONE");
    cJSON_AddStringToObject(d, "display_name", e->key);
    cJSON_AddArrayToObject(d, "dependents");
    cJSON_AddNumberToObject(d, "order", order);
    if (e->flags & SL_CFG_BOUNDED) {
        cJSON_AddNumberToObject(d, "min", e->min);
        cJSON_AddNumberToObject(d, "max", e->max);
    }
    if (e->type == SL_T_ENUM && e->choices) {
        cJSON *ch = cJSON_AddArrayToObject(d, "choices");
        for (const char *c = e->choices; *c;) {
            size_t l = strcspn(c, "|");
            char *v = xstrndup(c, l);
            cJSON_AddItemToArray(ch, cJSON_CreateString(v));
            free(v);
            c += l;
            if (*c) c++;
        }
    }
    return d;
}

/* Strips "file:line:col: " from a config error: the client sent JSON, not a file. */
static const char *without_location(const char *err)
{
    const char *p = strstr(err, ": ");
    return p ? p + 2 : err;
}

/* Checks one key with the host's own config checker, using a one-row table. */
static void validate_key(const sl_stage_desc *d, const sl_config_entry *row, const char *key, const cJSON *value,
                         cJSON *errors)
{
    sl_stage_desc one = *d;
    sl_config_entry tbl[2] = {{0}, {0}};
    if (row) {
        tbl[0] = *row;
        one.config = tbl;
    }
    sl_buf text = {0};
    if (value) {
        cJSON *wrap = cJSON_CreateObject();
        cJSON_AddItemToObject(wrap, key, cJSON_Duplicate(value, 1));
        rest_yaml_of(wrap, &text);
        cJSON_Delete(wrap);
    } else {
        buf_puts(&text, "{}\n");
    }
    char err[2048];
    ytree *t = ytree_load_opts("request", buf_cstr(&text), YT_NO_ENV, err, sizeof err);
    if (t) {
        sl_arena a = {0};
        void *out;
        char who[160];
        snprintf(who, sizeof who, "%s", d->name);
        if (stage_config_build_ex(&one, t->root, t->root, who, sup_rest_policy(), NULL, &a, &out, err, sizeof err) == 0)
            err[0] = 0;
        arena_free(&a);
        ytree_free(t);
    }
    if (err[0]) {
        const char *msg = without_location(err);
        size_t wl = strlen(d->name);
        if (!strncmp(msg, d->name, wl) && !strncmp(msg + wl, ": ", 2)) msg += wl + 2;
        cJSON_AddItemToArray(errors, cJSON_CreateString(msg));
    }
    buf_free(&text);
}

static const sl_config_entry *validate_row(const sl_stage_desc *d, const char *key)
{
    for (const sl_config_entry *e = d->config; e && e->key; e++)
        if (!strcmp(e->key, key)) return e;
    return NULL;
}

#define VALIDATE_MAX_KEYS 1000

static void validate_plugin(const sl_plugin *pl, const http_req *q, http_resp *r)
{
    cJSON *body = rest_body_object(q, r);
    if (!body) return;
    /* Each key is checked on its own (and an unknown one against every known key): bound the
     * work the supervisor's thread does for one request. */
    if (cJSON_GetArraySize(body) > VALIDATE_MAX_KEYS) {
        cJSON_Delete(body);
        rest_error(r, 400, "more than %d keys to validate", VALIDATE_MAX_KEYS);
        return;
    }
    const sl_stage_desc *d = pl->desc;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "name", d->name);
    cJSON *count = cJSON_AddNumberToObject(out, "error_count", 0);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(out, "groups"), cJSON_CreateString("Common"));
    cJSON *configs = cJSON_AddArrayToObject(out, "configs");
    int nerr = 0, order = 1;
    for (const sl_config_entry *e = d->config; e && e->key; e++, order++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, e->key);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToObject(c, "definition", definition_of(e, order));
        cJSON *val = cJSON_AddObjectToObject(c, "value");
        cJSON_AddStringToObject(val, "name", e->key);
        if (v && cJSON_IsString(v)) cJSON_AddStringToObject(val, "value", v->valuestring);
        else if (v) {
            char *s = cJSON_PrintUnformatted(v);
            cJSON_AddStringToObject(val, "value", s ? s : "");
            free(s);
        } else cJSON_AddNullToObject(val, "value");
        cJSON_AddArrayToObject(val, "recommended_values");
        cJSON *errors = cJSON_AddArrayToObject(val, "errors");
        validate_key(d, e, e->key, v, errors);
        nerr += cJSON_GetArraySize(errors);
        cJSON_AddBoolToObject(val, "visible", 1);
        cJSON_AddItemToArray(configs, c);
    }
    /* Keys the stage does not know (Kafka Connect's connector.class / name are ignored). */
    const cJSON *k;
    cJSON_ArrayForEach(k, body)
    {
        const sl_config_entry *e = d->config;
        while (e && e->key && strcmp(e->key, k->string)) e++;
        if ((e && e->key) || !strcmp(k->string, "connector.class") || !strcmp(k->string, "name")) continue;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNullToObject(c, "definition");
        cJSON *val = cJSON_AddObjectToObject(c, "value");
        cJSON_AddStringToObject(val, "name", k->string);
        cJSON_AddNullToObject(val, "value");
        cJSON_AddArrayToObject(val, "recommended_values");
        cJSON *errors = cJSON_AddArrayToObject(val, "errors");
        validate_key(d, NULL, k->string, k, errors);
        if (!cJSON_GetArraySize(errors)) cJSON_AddItemToArray(errors, cJSON_CreateString("unknown key"));
        nerr += cJSON_GetArraySize(errors);
        cJSON_AddBoolToObject(val, "visible", 1);
        cJSON_AddItemToArray(configs, c);
    }
    /* The stage's own check (ABI 1.4) of the whole config, once each key passes alone; its
     * error goes to the key it blames (else the first). */
    char key[128], cerr[2048];
    cJSON *whole = nerr || !d->check ? NULL : cJSON_Duplicate(body, 1);
    if (whole && !validate_row(d, "connector.class")) cJSON_DeleteItemFromObjectCaseSensitive(whole, "connector.class");
    if (whole && !validate_row(d, "name")) cJSON_DeleteItemFromObjectCaseSensitive(whole, "name");
    char *text = whole ? cJSON_PrintUnformatted(whole) : NULL;
    if (text && stage_config_check_text(d, text, sup_rest_policy(), key, sizeof key, cerr, sizeof cerr)) {
        cJSON *c = cJSON_GetArrayItem(configs, 0), *it;
        cJSON_ArrayForEach(it, configs) {
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(it, "value"), "name"));
            if (nm && !strcmp(nm, key)) c = it;
        }
        const char *msg = without_location(cerr);
        if (!strncmp(msg, d->name, strlen(d->name)) && !strncmp(msg + strlen(d->name), ": ", 2)) msg += strlen(d->name) + 2;
        if (c) cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "value"), "errors"), cJSON_CreateString(msg));
        nerr++;
    }
    free(text);
    cJSON_Delete(whole);
    cJSON_SetNumberValue(count, nerr);
    cJSON_Delete(body);
    rest_json_reply(r, 200, out);
}

void rest_plugins_route(const http_req *q, http_resp *r, const char *rest)
{
    if (!*rest || !strcmp(rest, "/")) {
        if (strcmp(q->method, "GET")) {
            rest_error(r, 405, "use GET");
            return;
        }
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < loader_count(); i++) {
            const sl_stage_desc *d = loader_at(i)->desc;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "class", d->name);
            cJSON_AddStringToObject(o, "type", kind_name(d->kind));
            cJSON_AddStringToObject(o, "version", d->version ? d->version : "");
            cJSON_AddStringToObject(o, "description", d->description ? d->description : "");
            cJSON_AddItemToArray(a, o);
        }
        rest_json_reply(r, 200, a);
        return;
    }
    char name[128];
    const char *slash = strchr(rest + 1, '/');
    size_t l = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
    if (l == 0 || l >= sizeof name) {
        rest_error(r, 404, "no such resource: %s", q->path);
        return;
    }
    memcpy(name, rest + 1, l);
    name[l] = 0;
    const sl_plugin *pl = NULL;
    for (size_t i = 0; i < loader_count() && !pl; i++)
        if (!strcmp(loader_at(i)->desc->name, name)) pl = loader_at(i);
    const char *sub = slash ? slash : "";
    if (!pl) {
        rest_error(r, 404, "Plugin %s not found (see GET /connector-plugins)", name);
        return;
    }
    if (!strcmp(sub, "/config")) {
        if (strcmp(q->method, "GET")) {
            rest_error(r, 405, "use GET");
            return;
        }
        cJSON *a = cJSON_CreateArray();
        int order = 1;
        for (const sl_config_entry *e = pl->desc->config; e && e->key; e++) cJSON_AddItemToArray(a, definition_of(e, order++));
        rest_json_reply(r, 200, a);
        return;
    }
    if (!strcmp(sub, "/config/validate")) {
        if (strcmp(q->method, "PUT")) {
            rest_error(r, 405, "use PUT");
            return;
        }
        validate_plugin(pl, q, r);
        return;
    }
    rest_error(r, 404, "no such resource: %s", q->path);
}

