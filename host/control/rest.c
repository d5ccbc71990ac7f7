/* rest.c — the REST API's route table and dispatch, with /, /health and /metrics; the
 * Kafka Connect connector routes are in rest_connectors.c, the plugin routes in
 * rest_plugins.c, the token and origin checks in auth.c. */
#include "rest.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jsoncheck.h"
#include "log.h"
#include "rest_int.h"
#include "sse_live.h"
#include "supervisor.h"
#include "tap.h"
#include "web.h"

/* ---- responses ------------------------------------------------------------------------------ */

/* Kafka Connect's error shape: {"error_code": N, "message": "…"}. */
void rest_error(http_resp *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_verror(r, status, fmt, ap);
    va_end(ap);
}

void rest_json_reply(http_resp *r, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    r->status = status;
    if (s) buf_puts(&r->body, s);
    free(s);
}

/* ---- JSON -> YAML --------------------------------------------------------------------------- */

/* JSON is YAML's flow style, so a definition that arrived as JSON is stored as that JSON,
 * indented. cJSON escapes every tab inside strings, so the tabs it indents with are the only
 * ones in its output: they become spaces (YAML does not indent with tabs). */
void rest_yaml_of(const cJSON *j, sl_buf *out)
{
    char *s = cJSON_Print(j);
    if (!s) abort(); /* out of memory */
    for (const char *c = s; *c; c++) {
        if (*c != '\t') buf_put(out, c, 1);
        else buf_puts(out, c > s && c[-1] == ':' ? " " : "  "); /* after "key": one space */
    }
    buf_puts(out, "\n");
    free(s);
}

int rest_json_to_yaml(const char *json, sl_buf *out, char *err, size_t errlen)
{
    const char *bad = sl_json_strict(json, strlen(json));
    cJSON *j = bad ? NULL : cJSON_Parse(json);
    if (!j) {
        snprintf(err, errlen, "not valid JSON: %s", bad ? bad : "parse error");
        return -1;
    }
    rest_yaml_of(j, out);
    cJSON_Delete(j);
    return 0;
}

/* Parses a request body that must be a JSON object; answers 400 itself when it is not. */
cJSON *rest_body_object(const http_req *q, http_resp *r)
{
    if (!q->body_len) {
        rest_error(r, 400, "a JSON object body is required");
        return NULL;
    }
    const char *end = NULL, *bad = sl_json_strict(q->body, q->body_len); /* host/jsoncheck.h */
    if (bad) { rest_error(r, 400, "malformed JSON: %s", bad); return NULL; }
    cJSON *j = cJSON_ParseWithLengthOpts(q->body, q->body_len, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - q->body) : 0;
        rest_error(r, 400, "malformed JSON at byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rest_error(r, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
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
            if (p->state == SUP_RUNNING && !p->restarts && !p->status.valid) {
                status = "starting", msg = "Worker is still starting up.";
                break;
            }
        }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", status);
    cJSON_AddStringToObject(j, "message", msg);
    rest_json_reply(r, strcmp(status, "healthy") ? 503 : 200, j);
}

static void root(const http_req *q, http_resp *r, const char *rest)
{
    (void)rest;
    if (strcmp(q->method, "GET")) {
        rest_error(r, 405, "use GET");
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
    rest_json_reply(r, 200, j);
}

static void health_route(const http_req *q, http_resp *r, const char *rest)
{
    (void)rest;
    if (strcmp(q->method, "GET")) rest_error(r, 405, "use GET");
    else health(r);
}

static void metrics_route(const http_req *q, http_resp *r, const char *rest)
{
    (void)rest;
    if (strcmp(q->method, "GET")) {
        rest_error(r, 405, "use GET");
        return;
    }
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    sup_metrics(&r->body);
}

/* The API's resources: `exact` ones answer only their path; the others also every path below
 * theirs (prefix + "/…"), and get that remainder ("" or "/…"). Anything else goes to the web
 * dashboard's files, then 404. */
static const struct route {
    const char *path;
    int exact;
    void (*fn)(const http_req *q, http_resp *r, const char *rest);
} routes[] = {
    {"/", 1, root},
    {"", 1, root},
    {"/health", 1, health_route},
    {"/metrics", 1, metrics_route},
    {"/connector-plugins", 0, rest_plugins_route},
    {"/connectors", 0, rest_connectors_route},
};

static void route(const http_req *q, http_resp *r)
{
    const char *path = q->path;
    if (!auth_check(q, r)) return;
    if (tap_route(q, r) || live_route(q, r)) return; /* event streams: tap.c, sse_live.c */
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t l = strlen(routes[i].path);
        if (strncmp(path, routes[i].path, l) || (routes[i].exact ? path[l] != 0 : path[l] != 0 && path[l] != '/'))
            continue;
        routes[i].fn(q, r, path + l);
        return;
    }
    if (web_handle(q, r)) return;
    rest_error(r, 404, "no such resource: %s", path);
}

void rest_handle(void *arg, const http_req *q, http_resp *r)
{
    (void)arg;
    route(q, r);
    sup_count_request(r->status);
    log_debug("http %s %s -> %d", q->method, q->path, r->status);
}

