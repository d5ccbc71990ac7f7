#include "rest.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "jsoncheck.h"
#include "lag.h"
#include "loader.h"
#include "log.h"
#include "supervisor.h"
#include "web.h"
#include "yamltree.h"

/* ---- responses ------------------------------------------------------------------------------ */

/* Kafka Connect's error shape: {"error_code": N, "message": "…"}. */
static void error(http_resp *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error(http_resp *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_verror(r, status, fmt, ap);
    va_end(ap);
}

static void json_reply(http_resp *r, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    r->status = status;
    if (s) buf_puts(&r->body, s);
    free(s);
}

/* ---- JSON -> YAML --------------------------------------------------------------------------- */

static int plain_key(const char *k)
{
    if (!*k || !(isalpha((unsigned char)*k) || *k == '_')) return 0;
    for (; *k; k++)
        if (!(isalnum((unsigned char)*k) || *k == '_' || *k == '-' || *k == '.')) return 0;
    return 1;
}

static void yaml_scalar(const cJSON *j, sl_buf *out)
{
    if (cJSON_IsString(j)) buf_json_str(out, j->valuestring, strlen(j->valuestring)); /* JSON escapes are YAML's */
    else if (cJSON_IsBool(j)) buf_puts(out, cJSON_IsTrue(j) ? "true" : "false");
    else if (cJSON_IsNull(j)) buf_puts(out, "null");
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (!isfinite(v)) buf_puts(out, "null");
        else if (v == floor(v) && fabs(v) < 9e15) buf_printf(out, "%.0f", v);
        else buf_printf(out, "%.17g", v);
    } else if (cJSON_IsArray(j)) buf_puts(out, "[]");
    else buf_puts(out, "{}");
}

static int is_container(const cJSON *j) { return (cJSON_IsArray(j) || cJSON_IsObject(j)) && j->child; }

/* Block style; `inline_first`: the first line follows a "- " already written. */
static void yaml_node(const cJSON *j, int indent, int inline_first, sl_buf *out)
{
    int first = 1;
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        if (!(first && inline_first)) buf_printf(out, "%*s", indent, "");
        first = 0;
        if (cJSON_IsObject(j)) {
            if (plain_key(c->string)) buf_puts(out, c->string);
            else buf_json_str(out, c->string, strlen(c->string));
            buf_puts(out, ":");
            if (is_container(c)) {
                buf_puts(out, "\n");
                yaml_node(c, indent + 2, 0, out);
            } else {
                buf_puts(out, " ");
                yaml_scalar(c, out);
                buf_puts(out, "\n");
            }
        } else {
            buf_puts(out, "- ");
            if (cJSON_IsObject(c) && c->child) {
                yaml_node(c, indent + 2, 1, out);
            } else if (is_container(c)) {
                buf_puts(out, "\n");
                yaml_node(c, indent + 2, 0, out);
            } else {
                yaml_scalar(c, out);
                buf_puts(out, "\n");
            }
        }
    }
}

int rest_json_to_yaml(const char *json, sl_buf *out, char *err, size_t errlen)
{
    const char *bad = sl_json_strict(json, strlen(json));
    cJSON *j = bad ? NULL : cJSON_Parse(json);
    if (!j) {
        snprintf(err, errlen, "not valid JSON: %s", bad ? bad : "parse error");
        return -1;
    }
    if (is_container(j)) yaml_node(j, 0, 0, out);
    else {
        yaml_scalar(j, out);
        buf_puts(out, "\n");
    }
    cJSON_Delete(j);
    return 0;
}

/* Parses a request body that must be a JSON object; answers 400 itself when it is not. */
static cJSON *body_object(const http_req *q, http_resp *r)
{
    if (!q->body_len) {
        error(r, 400, "a JSON object body is required");
        return NULL;
    }
    const char *end = NULL, *bad = sl_json_strict(q->body, q->body_len); /* host/jsoncheck.h */
    if (bad) { error(r, 400, "malformed JSON: %s", bad); return NULL; }
    cJSON *j = cJSON_ParseWithLengthOpts(q->body, q->body_len, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - q->body) : 0;
        error(r, 400, "malformed JSON at byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- connectors ------------------------------------------------------------------------------- */

/* The definition as JSON (what GET .../config answers). */
static cJSON *definition_json(const sup_pipeline *p)
{
    char err[1024];
    ytree *t = ytree_load_opts(p->file, p->def, YT_NO_ENV, err, sizeof err); /* as written: no secrets */
    if (!t) return cJSON_CreateObject();
    sl_buf b = {0};
    ynode_to_json(t->root, &b);
    cJSON *j = cJSON_Parse(buf_cstr(&b));
    buf_free(&b);
    ytree_free(t);
    return j ? j : cJSON_CreateObject();
}

/* Kafka Connect's connector types are source (into Kafka) and sink (out of Kafka). */
static const char *connector_type(const sup_pipeline *p)
{
    return p->def && strstr(p->def, "kafka-source") ? "sink" : "source";
}

static cJSON *parse_status(const sup_pipeline *p)
{
    return p->last_status ? cJSON_Parse(p->last_status) : NULL;
}

static cJSON *info_json(const sup_pipeline *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON_AddItemToObject(j, "config", definition_json(p));
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    for (int k = 0; k < p->tasks; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "connector", p->name);
        cJSON_AddNumberToObject(t, "task", k);
        cJSON_AddItemToArray(tasks, t);
    }
    cJSON_AddStringToObject(j, "type", connector_type(p));
    return j;
}

static const char *task_state(const sup_pipeline *p, const cJSON *st, int k)
{
    const char *ps = sup_state_name(p);
    if (p->state != SUP_RUNNING || p->restart_pending || p->paused) return ps;
    const cJSON *ts = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "task_states"), k);
    if (!cJSON_IsString(ts)) return ps;
    if (!strcmp(ts->valuestring, "DONE")) return "FINISHED";
    return ts->valuestring;
}

static cJSON *task_status(const sup_pipeline *p, const cJSON *st, int k, int show_trace)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", k);
    const char *s = task_state(p, st, k);
    cJSON_AddStringToObject(t, "state", s);
    cJSON_AddStringToObject(t, "worker_id", sup_worker_id());
    if (show_trace && (!strcmp(s, "FAILED") || !strcmp(s, "RESTARTING"))) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "error");
        if (p->trace) cJSON_AddStringToObject(t, "trace", p->trace);
        else if (cJSON_IsString(e)) cJSON_AddStringToObject(t, "trace", e->valuestring);
    }
    /* The partitions this task owns now (a consumer group splits them among tasks and hosts). */
    cJSON *parts = cJSON_AddArrayToObject(t, "partitions");
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(st, "assigned"))
    {
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(a, "task");
        if (cJSON_IsNumber(tk) && tk->valueint == k) cJSON_AddItemToArray(parts, cJSON_Duplicate(a, 1));
    }
    return t;
}

static int ntasks_shown(const sup_pipeline *p, const cJSON *st)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(st, "tasks");
    return p->state == SUP_RUNNING && cJSON_IsNumber(n) && !p->restart_pending ? n->valueint : p->tasks;
}

static cJSON *status_json(const sup_pipeline *p, int show_trace)
{
    cJSON *st = parse_status(p);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON *c = cJSON_AddObjectToObject(j, "connector");
    const char *state = sup_state_name(p);
    /* A child that reported FAILED is on its way out: show it failed until it is restarted. */
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, "state");
    if (p->state == SUP_RUNNING && !p->restart_pending && cJSON_IsString(cs) && !strcmp(cs->valuestring, "FAILED"))
        state = "FAILED";
    cJSON_AddStringToObject(c, "state", state);
    cJSON_AddStringToObject(c, "worker_id", sup_worker_id());
    if (show_trace && (!strcmp(state, "FAILED") || !strcmp(state, "RESTARTING"))) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "error");
        if (p->trace) cJSON_AddStringToObject(c, "trace", p->trace);
        else if (cJSON_IsString(e)) cJSON_AddStringToObject(c, "trace", e->valuestring);
    }
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    int nt = ntasks_shown(p, st);
    for (int k = 0; k < nt; k++) cJSON_AddItemToArray(tasks, task_status(p, st, k, show_trace));
    cJSON_AddStringToObject(j, "type", connector_type(p));
    /* sluice's additions */
    cJSON_AddNumberToObject(j, "pid", p->pid);
    cJSON_AddNumberToObject(j, "restarts", (double)p->restarts);
    cJSON_AddNumberToObject(j, "tasks_min", p->tasks_min);
    cJSON_AddNumberToObject(j, "tasks_max", p->tasks_max);
    cJSON_AddStringToObject(j, "file", p->file);
    if (p->reload_error) cJSON_AddStringToObject(j, "reload_error", p->reload_error);
    char *lag = lag_json(p->name);
    if (lag) {
        cJSON_AddItemToObject(j, "lag", cJSON_Parse(lag));
        free(lag);
    }
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(st, "stages");
    if (stages) {
        cJSON *out = cJSON_AddArrayToObject(j, "stages");
        const cJSON *s;
        cJSON_ArrayForEach(s, stages)
        {
            cJSON *o = cJSON_CreateObject();
            static const char *const keys[] = {"name", "use", "in", "out", "rejected", "dropped", "retries"};
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, keys[i]);
                if (v) cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
            }
            cJSON_AddItemToArray(out, o);
        }
    }
    cJSON_Delete(st);
    return j;
}

/* {"name": …, "config": {…}} or, for PUT …/config, the config alone; builds the YAML text. */
static int config_to_yaml(const char *name, cJSON *config, sl_buf *yaml, http_resp *r)
{
    if (!cJSON_IsObject(config)) {
        error(r, 400, "'config' must be a JSON object: the pipeline (tasks, stages, dead_letter, ...)");
        return -1;
    }
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(config, "pipeline");
    if (pn && (!cJSON_IsString(pn) || strcmp(pn->valuestring, name))) {
        error(r, 400, "config.pipeline must equal the connector name '%s'", name);
        return -1;
    }
    /* Kafka Connect clients send "name" inside config too; accept it when it matches. */
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(config, "name");
    if (cn && (!cJSON_IsString(cn) || strcmp(cn->valuestring, name))) {
        error(r, 400, "config.name must equal the connector name '%s'", name);
        return -1;
    }
    cJSON *copy = cJSON_Duplicate(config, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "name");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "pipeline");
    /* The name goes first, as in a hand-written file. */
    cJSON *ordered = cJSON_CreateObject();
    cJSON_AddStringToObject(ordered, "pipeline", name);
    for (cJSON *c = copy->child; c;) {
        cJSON *next = c->next;
        cJSON_AddItemToObject(ordered, c->string, cJSON_DetachItemViaPointer(copy, c));
        c = next;
    }
    cJSON_Delete(copy);
    buf_puts(yaml, SUP_REST_MARKER "; edits here are picked up on reload\n");
    yaml_node(ordered, 0, 0, yaml);
    cJSON_Delete(ordered);
    return 0;
}

static void put_config(const char *name, cJSON *config, int created_status, http_resp *r)
{
    sl_buf yaml = {0};
    if (config_to_yaml(name, config, &yaml, r)) return;
    char err[4096];
    int rc = sup_put(name, buf_cstr(&yaml), err, sizeof err);
    buf_free(&yaml);
    if (rc == 200 || rc == 201) {
        sup_pipeline *p = sup_find(name);
        json_reply(r, rc == 201 ? created_status : 200, info_json(p));
        if (rc == 201) r->location = xasprintf("/connectors/%s", name);
        return;
    }
    error(r, rc, "%s", err);
}

static void list_connectors(const http_req *q, http_resp *r)
{
    int want_status = http_query_has(q, "expand", "status"), want_info = http_query_has(q, "expand", "info");
    if (!want_status && !want_info) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < sup_count(); i++)
            if (!sup_at(i)->deleting) cJSON_AddItemToArray(a, cJSON_CreateString(sup_at(i)->name));
        json_reply(r, 200, a);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < sup_count(); i++) {
        sup_pipeline *p = sup_at(i);
        if (p->deleting) continue;
        cJSON *c = cJSON_AddObjectToObject(o, p->name);
        if (want_status) cJSON_AddItemToObject(c, "status", status_json(p, auth_has_token(q)));
        if (want_info) cJSON_AddItemToObject(c, "info", info_json(p));
    }
    json_reply(r, 200, o);
}

static void offsets_json(const sup_pipeline *p, http_resp *r)
{
    cJSON *st = parse_status(p);
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "offsets");
    const cJSON *o;
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(st, "offsets"); /* NULL-safe */
    cJSON_ArrayForEach(o, offsets)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "topic"), *pa = cJSON_GetObjectItemCaseSensitive(o, "partition"),
                    *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
        if (!cJSON_IsString(t) || !cJSON_IsNumber(pa) || !cJSON_IsNumber(off)) continue;
        /* A partition may appear under two tasks after a rebalance: keep the furthest. */
        cJSON *e, *found = NULL;
        cJSON_ArrayForEach(e, arr)
        {
            cJSON *ep = cJSON_GetObjectItemCaseSensitive(e, "partition");
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(ep, "topic")->valuestring, t->valuestring) &&
                cJSON_GetObjectItemCaseSensitive(ep, "partition")->valueint == pa->valueint)
                found = e;
        }
        if (found) {
            cJSON *fo = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(found, "offset"), "offset");
            if (off->valuedouble > fo->valuedouble) cJSON_SetNumberValue(fo, off->valuedouble);
            continue;
        }
        cJSON *e2 = cJSON_CreateObject();
        cJSON *part = cJSON_AddObjectToObject(e2, "partition");
        cJSON_AddStringToObject(part, "topic", t->valuestring);
        cJSON_AddNumberToObject(part, "partition", pa->valueint);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(e2, "offset"), "offset", off->valuedouble);
        cJSON_AddItemToArray(arr, e2);
    }
    cJSON_Delete(st);
    json_reply(r, 200, out);
}

static int query_true(const http_req *q, const char *name)
{
    const char *v = http_query(q, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static int is_failed(const sup_pipeline *p)
{
    cJSON *st = parse_status(p);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, "state");
    int failed = p->state == SUP_FAILED || p->state == SUP_WAITING ||
                 (cJSON_IsString(cs) && !strcmp(cs->valuestring, "FAILED"));
    cJSON_Delete(st);
    return failed;
}

/* /connectors/{name}[/rest...] */
static void connector_route(const http_req *q, http_resp *r, const char *name, const char *rest)
{
    const char *m = q->method;
    sup_pipeline *p = sup_find(name);
    int is_put = !strcmp(m, "PUT"), is_get = !strcmp(m, "GET"), is_post = !strcmp(m, "POST"),
        is_del = !strcmp(m, "DELETE");
    if (!strcmp(rest, "/config") && is_put) {
        cJSON *body = body_object(q, r);
        if (!body) return;
        put_config(name, body, 201, r);
        cJSON_Delete(body);
        return;
    }
    if (!p) {
        error(r, 404, "Connector %s not found", name);
        return;
    }
    if (!*rest) {
        if (is_get) json_reply(r, 200, info_json(p));
        else if (is_del) {
            char err[1024];
            int rc = sup_delete(p, err, sizeof err);
            if (rc == 204) r->status = 204;
            else error(r, rc, "%s", err);
        } else error(r, 405, "method %s not allowed on /connectors/{name}", m);
        return;
    }
    if (!strcmp(rest, "/config")) {
        if (is_get) json_reply(r, 200, definition_json(p));
        else error(r, 405, "method %s not allowed on /connectors/{name}/config", m);
        return;
    }
    if (!strcmp(rest, "/status")) {
        if (is_get) json_reply(r, 200, status_json(p, auth_has_token(q)));
        else error(r, 405, "method %s not allowed", m);
        return;
    }
    if (!strcmp(rest, "/offsets")) {
        if (is_get) offsets_json(p, r);
        else error(r, 405, "method %s not allowed (offsets are read-only here)", m);
        return;
    }
    if (!strcmp(rest, "/pause") || !strcmp(rest, "/resume") || !strcmp(rest, "/stop")) {
        if (!is_put) {
            error(r, 405, "use PUT %s", rest);
            return;
        }
        if (rest[1] == 'p') sup_pause(p);
        else if (rest[1] == 'r') sup_resume(p);
        else sup_stop(p);
        r->status = rest[1] == 's' ? 204 : 202;
        return;
    }
    if (!strcmp(rest, "/restart")) {
        if (!is_post) {
            error(r, 405, "use POST %s", rest);
            return;
        }
        int include = query_true(q, "includeTasks"), only = query_true(q, "onlyFailed");
        if (!only || is_failed(p)) sup_restart(p);
        if (!include && !only) {
            r->status = 204;
            return;
        }
        json_reply(r, 202, status_json(p, auth_has_token(q)));
        return;
    }
    if (!strcmp(rest, "/tasks")) {
        if (!is_get) {
            error(r, 405, "method %s not allowed", m);
            return;
        }
        cJSON *a = cJSON_CreateArray();
        for (int k = 0; k < p->tasks; k++) {
            cJSON *t = cJSON_CreateObject(), *id = cJSON_AddObjectToObject(t, "id"), *c = cJSON_AddObjectToObject(t, "config");
            cJSON_AddStringToObject(id, "connector", p->name);
            cJSON_AddNumberToObject(id, "task", k);
            char v[32];
            cJSON_AddStringToObject(c, "pipeline", p->name);
            snprintf(v, sizeof v, "%d", k);
            cJSON_AddStringToObject(c, "task.index", v);
            snprintf(v, sizeof v, "%d", p->tasks);
            cJSON_AddStringToObject(c, "tasks.total", v);
            cJSON_AddItemToArray(a, t);
        }
        json_reply(r, 200, a);
        return;
    }
    if (!strncmp(rest, "/tasks/", 7)) {
        char *end;
        long id = strtol(rest + 7, &end, 10);
        if (end == rest + 7 || id < 0 || id >= p->tasks || (strcmp(end, "/status") && strcmp(end, "/restart"))) {
            if (end != rest + 7 && (!strcmp(end, "/status") || !strcmp(end, "/restart")))
                error(r, 404, "Task %s-%ld not found", p->name, id);
            else error(r, 404, "no such resource: %s", q->path);
            return;
        }
        if (!strcmp(end, "/status")) {
            if (!is_get) {
                error(r, 405, "method %s not allowed", m);
                return;
            }
            cJSON *st = parse_status(p);
            json_reply(r, 200, task_status(p, st, (int)id, auth_has_token(q)));
            cJSON_Delete(st);
            return;
        }
        if (!is_post) {
            error(r, 405, "use POST");
            return;
        }
        /* Tasks are threads of one process: restarting one restarts the pipeline's process. */
        sup_restart(p);
        r->status = 204;
        return;
    }
    error(r, 404, "no such resource: %s", q->path);
}

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
        yaml_node(wrap, 0, 0, &text);
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
    cJSON *body = body_object(q, r);
    if (!body) return;
    /* Each key is checked on its own (and an unknown one against every known key): bound the
     * work the supervisor's thread does for one request. */
    if (cJSON_GetArraySize(body) > VALIDATE_MAX_KEYS) {
        cJSON_Delete(body);
        error(r, 400, "more than %d keys to validate", VALIDATE_MAX_KEYS);
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
    json_reply(r, 200, out);
}

static void plugins_route(const http_req *q, http_resp *r, const char *rest)
{
    if (!*rest || !strcmp(rest, "/")) {
        if (strcmp(q->method, "GET")) {
            error(r, 405, "use GET");
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
        json_reply(r, 200, a);
        return;
    }
    char name[128];
    const char *slash = strchr(rest + 1, '/');
    size_t l = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
    if (l == 0 || l >= sizeof name) {
        error(r, 404, "no such resource: %s", q->path);
        return;
    }
    memcpy(name, rest + 1, l);
    name[l] = 0;
    const sl_plugin *pl = NULL;
    for (size_t i = 0; i < loader_count() && !pl; i++)
        if (!strcmp(loader_at(i)->desc->name, name)) pl = loader_at(i);
    const char *sub = slash ? slash : "";
    if (!pl) {
        error(r, 404, "Plugin %s not found (see GET /connector-plugins)", name);
        return;
    }
    if (!strcmp(sub, "/config")) {
        if (strcmp(q->method, "GET")) {
            error(r, 405, "use GET");
            return;
        }
        cJSON *a = cJSON_CreateArray();
        int order = 1;
        for (const sl_config_entry *e = pl->desc->config; e && e->key; e++) cJSON_AddItemToArray(a, definition_of(e, order++));
        json_reply(r, 200, a);
        return;
    }
    if (!strcmp(sub, "/config/validate")) {
        if (strcmp(q->method, "PUT")) {
            error(r, 405, "use PUT");
            return;
        }
        validate_plugin(pl, q, r);
        return;
    }
    error(r, 404, "no such resource: %s", q->path);
}

/* ---- dispatch --------------------------------------------------------------------------------- */

/* KIP-1017's GET /health: 200 once every pipeline started at launch has reported from its
 * process, 503 before that and while shutting down. A failed pipeline is the pipeline's
 * problem (see its status), not the worker's. */
static void health(http_resp *r)
{
    const char *status = "healthy", *msg = "Worker has completed startup and is ready to handle requests.";
    if (sup_stopping()) status = "unhealthy", msg = "Worker is shutting down.";
    else
        for (size_t i = 0; i < sup_count(); i++) {
            const sup_pipeline *p = sup_at(i);
            if (p->state == SUP_RUNNING && !p->restarts && !p->last_status) {
                status = "starting", msg = "Worker is still starting up.";
                break;
            }
        }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", status);
    cJSON_AddStringToObject(j, "message", msg);
    json_reply(r, strcmp(status, "healthy") ? 503 : 200, j);
}

static void route(const http_req *q, http_resp *r)
{
    const char *path = q->path;
    if (!auth_check(q, r)) return;
    if (!strcmp(path, "/health")) {
        if (strcmp(q->method, "GET")) error(r, 405, "use GET");
        else health(r);
        return;
    }
    if (!strcmp(path, "/") || !*path) {
        if (strcmp(q->method, "GET")) {
            error(r, 405, "use GET");
            return;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "version", SLUICE_VERSION);
        cJSON_AddStringToObject(j, "commit", "");
        cJSON_AddStringToObject(j, "kafka_cluster_id", "");
        char abi[16];
        snprintf(abi, sizeof abi, "%d.%d", SL_ABI_MAJOR, SL_ABI_MINOR);
        cJSON_AddStringToObject(j, "stage_abi", abi);
        cJSON_AddStringToObject(j, "worker_id", sup_worker_id());
        json_reply(r, 200, j);
        return;
    }
    if (!strcmp(path, "/metrics")) {
        if (strcmp(q->method, "GET")) {
            error(r, 405, "use GET");
            return;
        }
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        sup_metrics(&r->body);
        return;
    }
    if (!strncmp(path, "/connector-plugins", 18) && (path[18] == 0 || path[18] == '/')) {
        plugins_route(q, r, path + 18);
        return;
    }
    if (!strcmp(path, "/connectors") || !strcmp(path, "/connectors/")) {
        if (!strcmp(q->method, "GET")) {
            list_connectors(q, r);
        } else if (!strcmp(q->method, "POST")) {
            cJSON *body = body_object(q, r);
            if (!body) return;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
            cJSON *config = cJSON_GetObjectItemCaseSensitive(body, "config");
            if (!cJSON_IsString(name) || !*name->valuestring) error(r, 400, "'name' (a string) is required");
            else if (!config) error(r, 400, "'config' (the pipeline as a JSON object) is required");
            else if (sup_find(name->valuestring)) error(r, 409, "Connector %s already exists", name->valuestring);
            else put_config(name->valuestring, config, 201, r);
            cJSON_Delete(body);
        } else {
            error(r, 405, "method %s not allowed on /connectors", q->method);
        }
        return;
    }
    if (!strncmp(path, "/connectors/", 12)) {
        const char *name = path + 12;
        const char *slash = strchr(name, '/');
        size_t l = slash ? (size_t)(slash - name) : strlen(name);
        char nm[256];
        if (!l || l >= sizeof nm) {
            error(r, 404, "no such resource: %s", path);
            return;
        }
        memcpy(nm, name, l);
        nm[l] = 0;
        connector_route(q, r, nm, slash ? slash : "");
        return;
    }
    if (web_handle(q, r)) return;
    error(r, 404, "no such resource: %s", path);
}

void rest_handle(void *arg, const http_req *q, http_resp *r)
{
    (void)arg;
    route(q, r);
    sup_count_request(r->status);
    log_debug("http %s %s -> %d", q->method, q->path, r->status);
}
