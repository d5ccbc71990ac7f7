/* rest_connectors.c — /connectors: pipelines in Kafka Connect's shapes (a pipeline is a
 * connector, its tasks are the pipeline's tasks). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "rest_int.h"
#include "supervisor.h"
#include "yamltree.h"

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

static const char *task_state(const sup_pipeline *p, int k)
{
    const char *ps = sup_state_name(p);
    if (p->state != SUP_RUNNING || p->restart_pending || p->paused) return ps;
    if (k < 0 || (size_t)k >= p->status.ntask_states) return ps;
    const char *ts = p->status.task_states[k];
    return !strcmp(ts, "DONE") ? "FINISHED" : ts;
}

static cJSON *task_status(const sup_pipeline *p, int k, int show_trace)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", k);
    const char *s = task_state(p, k);
    cJSON_AddStringToObject(t, "state", s);
    cJSON_AddStringToObject(t, "worker_id", sup_worker_id());
    if (show_trace && (!strcmp(s, "FAILED") || !strcmp(s, "RESTARTING"))) {
        if (p->trace) cJSON_AddStringToObject(t, "trace", p->trace);
        else if (p->status.error) cJSON_AddStringToObject(t, "trace", p->status.error);
    }
    /* The partitions this task owns now (a consumer group splits them among tasks and hosts). */
    cJSON *parts = cJSON_AddArrayToObject(t, "partitions");
    for (int i = 0; i < p->status.nassigned; i++) {
        const sup_part *a = &p->status.assigned[i];
        if (a->task != k) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "task", a->task);
        cJSON_AddStringToObject(e, "topic", a->topic);
        cJSON_AddNumberToObject(e, "partition", a->partition);
        cJSON_AddItemToArray(parts, e);
    }
    return t;
}

static int ntasks_shown(const sup_pipeline *p)
{
    return p->state == SUP_RUNNING && p->status.tasks >= 0 && !p->restart_pending ? p->status.tasks : p->tasks;
}

/* The child reported FAILED: it is on its way out. */
static int child_failed(const sup_pipeline *p) { return p->status.state && !strcmp(p->status.state, "FAILED"); }

static cJSON *status_json(const sup_pipeline *p, int show_trace)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON *c = cJSON_AddObjectToObject(j, "connector");
    const char *state = sup_state_name(p);
    /* A child that reported FAILED is on its way out: show it failed until it is restarted. */
    if (p->state == SUP_RUNNING && !p->restart_pending && child_failed(p)) state = "FAILED";
    cJSON_AddStringToObject(c, "state", state);
    cJSON_AddStringToObject(c, "worker_id", sup_worker_id());
    if (show_trace && (!strcmp(state, "FAILED") || !strcmp(state, "RESTARTING"))) {
        if (p->trace) cJSON_AddStringToObject(c, "trace", p->trace);
        else if (p->status.error) cJSON_AddStringToObject(c, "trace", p->status.error);
    }
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    int nt = ntasks_shown(p);
    for (int k = 0; k < nt; k++) cJSON_AddItemToArray(tasks, task_status(p, k, show_trace));
    cJSON_AddStringToObject(j, "type", connector_type(p));
    /* sluice's additions */
    cJSON_AddNumberToObject(j, "pid", p->pid);
    cJSON_AddNumberToObject(j, "restarts", (double)p->restarts);
    cJSON_AddNumberToObject(j, "tasks_min", p->tasks_min);
    cJSON_AddNumberToObject(j, "tasks_max", p->tasks_max);
    cJSON_AddStringToObject(j, "file", p->file);
    if (p->reload_error) cJSON_AddStringToObject(j, "reload_error", p->reload_error);
    if (p->status.valid && !p->status_folded && p->status.nlag > 0) {
        cJSON *lag = cJSON_AddArrayToObject(j, "lag");
        for (int k = 0; k < p->status.nlag; k++) {
            const sup_lag *l = &p->status.lag[k];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "topic", l->topic);
            cJSON_AddNumberToObject(e, "partition", l->partition);
            cJSON_AddNumberToObject(e, "lag", (double)l->lag);
            cJSON_AddNumberToObject(e, "end", (double)l->end);
            cJSON_AddNumberToObject(e, "committed", (double)l->committed);
            cJSON_AddItemToArray(lag, e);
        }
    }
    if (p->status.valid) {
        cJSON *out = cJSON_AddArrayToObject(j, "stages");
        for (size_t i = 0; i < p->status.nstages; i++) {
            const sup_stage_stat *x = &p->status.stages[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", x->name);
            cJSON_AddStringToObject(o, "use", x->use);
            cJSON_AddNumberToObject(o, "in", x->in);
            cJSON_AddNumberToObject(o, "out", x->out);
            cJSON_AddNumberToObject(o, "rejected", x->rejected);
            cJSON_AddNumberToObject(o, "dropped", x->dropped);
            cJSON_AddNumberToObject(o, "retries", x->retries);
            cJSON_AddItemToArray(out, o);
        }
    }
    return j;
}

/* {"name": …, "config": {…}} or, for PUT …/config, the config alone; builds the YAML text. */
static int config_to_yaml(const char *name, cJSON *config, sl_buf *yaml, http_resp *r)
{
    if (!cJSON_IsObject(config)) {
        rest_error(r, 400, "'config' must be a JSON object: the pipeline (tasks, stages, dead_letter, ...)");
        return -1;
    }
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(config, "pipeline");
    if (pn && (!cJSON_IsString(pn) || strcmp(pn->valuestring, name))) {
        rest_error(r, 400, "config.pipeline must equal the connector name '%s'", name);
        return -1;
    }
    /* Kafka Connect clients send "name" inside config too; accept it when it matches. */
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(config, "name");
    if (cn && (!cJSON_IsString(cn) || strcmp(cn->valuestring, name))) {
        rest_error(r, 400, "config.name must equal the connector name '%s'", name);
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
    rest_yaml_of(ordered, yaml);
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
        rest_json_reply(r, rc == 201 ? created_status : 200, info_json(p));
        if (rc == 201) r->location = xasprintf("/connectors/%s", name);
        return;
    }
    rest_error(r, rc, "%s", err);
}

static void list_connectors(const http_req *q, http_resp *r)
{
    int want_status = http_query_has(q, "expand", "status"), want_info = http_query_has(q, "expand", "info");
    if (!want_status && !want_info) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < sup_count(); i++)
            if (!sup_at(i)->deleting) cJSON_AddItemToArray(a, cJSON_CreateString(sup_at(i)->name));
        rest_json_reply(r, 200, a);
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
    rest_json_reply(r, 200, o);
}

static void offsets_json(const sup_pipeline *p, http_resp *r)
{
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "offsets");
    for (size_t k = 0; k < p->status.noffsets; k++) {
        const sup_part *o = &p->status.offsets[k];
        /* A partition may appear under two tasks after a rebalance: keep the furthest. */
        cJSON *e, *found = NULL;
        cJSON_ArrayForEach(e, arr)
        {
            cJSON *ep = cJSON_GetObjectItemCaseSensitive(e, "partition");
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(ep, "topic")->valuestring, o->topic) &&
                cJSON_GetObjectItemCaseSensitive(ep, "partition")->valueint == o->partition)
                found = e;
        }
        if (found) {
            cJSON *fo = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(found, "offset"), "offset");
            if ((double)o->offset > fo->valuedouble) cJSON_SetNumberValue(fo, (double)o->offset);
            continue;
        }
        cJSON *e2 = cJSON_CreateObject();
        cJSON *part = cJSON_AddObjectToObject(e2, "partition");
        cJSON_AddStringToObject(part, "topic", o->topic);
        cJSON_AddNumberToObject(part, "partition", o->partition);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(e2, "offset"), "offset", (double)o->offset);
        cJSON_AddItemToArray(arr, e2);
    }
    rest_json_reply(r, 200, out);
}

static int query_true(const http_req *q, const char *name)
{
    const char *v = http_query(q, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static int is_failed(const sup_pipeline *p)
{
    return p->state == SUP_FAILED || p->state == SUP_WAITING || child_failed(p);
}

/* /connectors/{name}[/rest...] */
static void connector_route(const http_req *q, http_resp *r, const char *name, const char *rest)
{
    const char *m = q->method;
    sup_pipeline *p = sup_find(name);
    int is_put = !strcmp(m, "PUT"), is_get = !strcmp(m, "GET"), is_post = !strcmp(m, "POST"),
        is_del = !strcmp(m, "DELETE");
    if (!strcmp(rest, "/config") && is_put) {
        cJSON *body = rest_body_object(q, r);
        if (!body) return;
        put_config(name, body, 201, r);
        cJSON_Delete(body);
        return;
    }
    if (!p) {
        rest_error(r, 404, "Connector %s not found", name);
        return;
    }
    if (!*rest) {
        if (is_get) rest_json_reply(r, 200, info_json(p));
        else if (is_del) {
            char err[1024];
            int rc = sup_delete(p, err, sizeof err);
            if (rc == 204) r->status = 204;
            else rest_error(r, rc, "%s", err);
        } else rest_error(r, 405, "method %s not allowed on /connectors/{name}", m);
        return;
    }
    if (!strcmp(rest, "/config")) {
        if (is_get) rest_json_reply(r, 200, definition_json(p));
        else rest_error(r, 405, "method %s not allowed on /connectors/{name}/config", m);
        return;
    }
    if (!strcmp(rest, "/status")) {
        if (is_get) rest_json_reply(r, 200, status_json(p, auth_has_token(q)));
        else rest_error(r, 405, "method %s not allowed", m);
        return;
    }
    if (!strcmp(rest, "/offsets")) {
        if (is_get) offsets_json(p, r);
        else rest_error(r, 405, "method %s not allowed (offsets are read-only here)", m);
        return;
    }
    if (!strcmp(rest, "/pause") || !strcmp(rest, "/resume") || !strcmp(rest, "/stop")) {
        if (!is_put) {
            rest_error(r, 405, "use PUT %s", rest);
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
            rest_error(r, 405, "use POST %s", rest);
            return;
        }
        int include = query_true(q, "includeTasks"), only = query_true(q, "onlyFailed");
        if (!only || is_failed(p)) sup_restart(p);
        if (!include && !only) {
            r->status = 204;
            return;
        }
        rest_json_reply(r, 202, status_json(p, auth_has_token(q)));
        return;
    }
    if (!strcmp(rest, "/tasks")) {
        if (!is_get) {
            rest_error(r, 405, "method %s not allowed", m);
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
        rest_json_reply(r, 200, a);
        return;
    }
    if (!strncmp(rest, "/tasks/", 7)) {
        char *end;
        long id = strtol(rest + 7, &end, 10);
        if (end == rest + 7 || id < 0 || id >= p->tasks || (strcmp(end, "/status") && strcmp(end, "/restart"))) {
            if (end != rest + 7 && (!strcmp(end, "/status") || !strcmp(end, "/restart")))
                rest_error(r, 404, "Task %s-%ld not found", p->name, id);
            else rest_error(r, 404, "no such resource: %s", q->path);
            return;
        }
        if (!strcmp(end, "/status")) {
            if (!is_get) {
                rest_error(r, 405, "method %s not allowed", m);
                return;
            }
            rest_json_reply(r, 200, task_status(p, (int)id, auth_has_token(q)));
            return;
        }
        if (!is_post) {
            rest_error(r, 405, "use POST");
            return;
        }
        /* Tasks are threads of one process: restarting one restarts the pipeline's process. */
        sup_restart(p);
        r->status = 204;
        return;
    }
    rest_error(r, 404, "no such resource: %s", q->path);
}

/* /connectors[/…]; rest: what follows "/connectors". */
void rest_connectors_route(const http_req *q, http_resp *r, const char *rest)
{
    if (!*rest || !strcmp(rest, "/")) {
        if (!strcmp(q->method, "GET")) {
            list_connectors(q, r);
        } else if (!strcmp(q->method, "POST")) {
            cJSON *body = rest_body_object(q, r);
            if (!body) return;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
            cJSON *config = cJSON_GetObjectItemCaseSensitive(body, "config");
            if (!cJSON_IsString(name) || !*name->valuestring) rest_error(r, 400, "'name' (a string) is required");
            else if (!config) rest_error(r, 400, "'config' (the pipeline as a JSON object) is required");
            else if (sup_find(name->valuestring)) rest_error(r, 409, "Connector %s already exists", name->valuestring);
            else put_config(name->valuestring, config, 201, r);
            cJSON_Delete(body);
        } else {
            rest_error(r, 405, "method %s not allowed on /connectors", q->method);
        }
        return;
    }
    const char *name = rest + 1;
    const char *slash = strchr(name, '/');
    size_t l = slash ? (size_t)(slash - name) : strlen(name);
    char nm[256];
    if (!l || l >= sizeof nm) {
        rest_error(r, 404, "no such resource: %s", q->path);
        return;
    }
    memcpy(nm, name, l);
    nm[l] = 0;
    connector_route(q, r, nm, slash ? slash : "");
}
