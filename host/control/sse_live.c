/* sse_live.c — the live status stream (see sse_live.h). */
#include "sse_live.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "sse.h"
#include "sse_kpi.h"
#include "supervisor.h"
#include "tap.h"

#define PERIOD_MS 1000

typedef struct viewer {
    struct viewer *next;
    sse_client *c;
    int traces; /* sent with the token: failure traces may be shown */
    kpi_sub *kpi; /* ?query=…: KPI results */
    int status;   /* status events: without ?query=, or with status=true */
} viewer;

/* The last samples of one pipeline's counters, for rates: a rate is taken against the oldest
 * (about WINDOW seconds back), so a source that delivers in bursts does not flicker to 0. */
#define WINDOW 3
typedef struct prev {
    struct prev *next;
    char *name;
    int pid[WINDOW];
    long long ms[WINDOW];
    cJSON *stages[WINDOW]; /* the child's "stages" array at that time; [0] the oldest */
    int n;
    const char *def; /* the definition nchain was counted from */
    int nchain;      /* stages in the chain; a status entry past them is the dead-letter sink */
} prev;

static viewer *viewers;
static prev *prevs;
static long long last_ms;

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static prev *prev_of(const char *name)
{
    for (prev *p = prevs; p; p = p->next)
        if (!strcmp(p->name, name)) return p;
    prev *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->next = prevs;
    prevs = p;
    return p;
}

/* p99 (ms) of the batch times counted between two samples of a stage's histogram: the upper
 * bound of the bucket the 99th percentile falls in; null with no batch in between. */
static void add_p99(cJSON *o, const cJSON *le, const cJSON *now, const cJSON *before)
{
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(now, "buckets");
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(before, "buckets");
    int n = cJSON_GetArraySize(bn);
    double total = 0, d[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(bn, i), *y = cJSON_GetArrayItem(bb, i);
        d[i] = (cJSON_IsNumber(x) ? x->valuedouble : 0) - (cJSON_IsNumber(y) ? y->valuedouble : 0);
        if (d[i] < 0) d[i] = 0;
        total += d[i];
    }
    if (total <= 0) {
        cJSON_AddNullToObject(o, "p99_ms");
        return;
    }
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += d[i];
        if (acc >= 0.99 * total) {
            const cJSON *b = cJSON_GetArrayItem(le, i);
            if (cJSON_IsNumber(b)) cJSON_AddNumberToObject(o, "p99_ms", b->valuedouble * 1000);
            else cJSON_AddStringToObject(o, "p99_ms", "+Inf"); /* beyond the largest bucket */
            return;
        }
    }
    cJSON_AddNullToObject(o, "p99_ms");
}

static cJSON *pipeline_json(sup_pipeline *p, long long now, int traces)
{
    cJSON *j = cJSON_CreateObject();
    const cJSON *st = p->status.json; /* the latest status line, parsed when it arrived */
    const char *state = sup_state_name(p);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, "state");
    if (p->state == SUP_RUNNING && !p->restart_pending && cJSON_IsString(cs) && !strcmp(cs->valuestring, "FAILED"))
        state = "FAILED";
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON_AddStringToObject(j, "state", state);
    cJSON_AddNumberToObject(j, "tasks", p->tasks);
    cJSON_AddNumberToObject(j, "restarts", (double)p->restarts);
    cJSON_AddNumberToObject(j, "pid", p->pid);
    if (traces && (!strcmp(state, "FAILED") || !strcmp(state, "RESTARTING"))) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, "error");
        if (p->trace) cJSON_AddStringToObject(j, "trace", p->trace);
        else if (cJSON_IsString(e)) cJSON_AddStringToObject(j, "trace", e->valuestring);
    }
    if (p->status.valid && !p->status_folded && p->status.nlag > 0) {
        double total = 0;
        for (int x = 0; x < p->status.nlag; x++) total += (double)p->status.lag[x].lag;
        cJSON_AddNumberToObject(j, "lag", total);
    } else {
        cJSON_AddNullToObject(j, "lag");
    }
    prev *pv = prev_of(p->name);
    if (pv->def != p->def) {
        sl_buf names = {0};
        tap_stage_index(p, NULL, &pv->nchain, &names);
        buf_free(&names);
        pv->def = p->def;
    }
    /* The oldest sample from this same process (counters restart with a new one). */
    int k0 = 0;
    while (k0 < pv->n && pv->pid[k0] != p->pid) k0++;
    int same_child = k0 < pv->n && p->pid > 0;
    double secs = same_child ? (double)(now - pv->ms[k0]) / 1000.0 : 0;
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(st, "stages");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(st, "le");
    cJSON *out = cJSON_AddArrayToObject(j, "stages");
    int ntasks = (int)num(st, "tasks");
    if (ntasks < 1) ntasks = 1;
    const cJSON *s;
    int i = 0;
    cJSON_ArrayForEach(s, stages)
    {
        cJSON *o = cJSON_CreateObject();
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(s, "name"), *use = cJSON_GetObjectItemCaseSensitive(s, "use");
        cJSON_AddStringToObject(o, "name", cJSON_IsString(nm) ? nm->valuestring : "");
        cJSON_AddStringToObject(o, "use", cJSON_IsString(use) ? use->valuestring : "");
        static const char *const keys[] = {"in", "out", "rejected", "dropped", "retries"};
        for (size_t k = 0; k < 5; k++) cJSON_AddNumberToObject(o, keys[k], num(s, keys[k]));
        if (i >= pv->nchain) cJSON_AddTrueToObject(o, "dead_letter");
        const cJSON *was = same_child ? cJSON_GetArrayItem(pv->stages[k0], i) : NULL;
        if (was && secs > 0.2) {
            /* Rates over the last interval; a counter that went back (new process) gives none. */
            static const char *const rates[] = {"in", "out", "rejected", "retries"};
            for (size_t k = 0; k < 4; k++) {
                char key[32];
                snprintf(key, sizeof key, "%s_per_s", rates[k]);
                double d = num(s, rates[k]) - num(was, rates[k]);
                cJSON_AddNumberToObject(o, key, d < 0 ? 0 : d / secs);
            }
            const cJSON *bn = cJSON_GetObjectItemCaseSensitive(s, "batch"), *bw = cJSON_GetObjectItemCaseSensitive(was, "batch");
            double busy = (num(bn, "sum") - num(bw, "sum")) / secs / ntasks;
            cJSON_AddNumberToObject(o, "busy", busy < 0 ? 0 : busy > 1 ? 1 : busy);
            add_p99(o, le, bn, bw);
        }
        cJSON_AddItemToArray(out, o);
        i++;
    }
    if (pv->n == WINDOW) { /* drop the oldest */
        cJSON_Delete(pv->stages[0]);
        memmove(pv->stages, pv->stages + 1, (WINDOW - 1) * sizeof *pv->stages);
        memmove(pv->pid, pv->pid + 1, (WINDOW - 1) * sizeof *pv->pid);
        memmove(pv->ms, pv->ms + 1, (WINDOW - 1) * sizeof *pv->ms);
        pv->n--;
    }
    pv->stages[pv->n] = stages ? cJSON_Duplicate(stages, 1) : cJSON_CreateArray();
    pv->pid[pv->n] = p->pid;
    pv->ms[pv->n++] = now;
    return j;
}

static void publish(long long now)
{
    if (!viewers || now - last_ms < PERIOD_MS) return;
    last_ms = now;
    /* One sample (rates are against the previous one); rendered with failure traces for
     * viewers with the token and without them for the others. */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "time", (double)sl_now_ms());
    cJSON *ps = cJSON_AddArrayToObject(j, "pipelines");
    for (size_t k = 0; k < sup_count(); k++) {
        sup_pipeline *p = sup_at(k);
        if (!p->deleting) cJSON_AddItemToArray(ps, pipeline_json(p, now, 1));
    }
    char *text[2] = {NULL, cJSON_PrintUnformatted(j)};
    cJSON *x;
    cJSON_ArrayForEach(x, ps) cJSON_DeleteItemFromObjectCaseSensitive(x, "trace");
    text[0] = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    for (viewer *v = viewers, *next; v; v = next) {
        next = v->next;
        if (v->status && text[v->traces]) sse_send(v->c, "status", text[v->traces]);
    }
    free(text[0]);
    free(text[1]);
}

static void forget_samples(void)
{
    while (prevs) {
        prev *p = prevs;
        prevs = p->next;
        for (int k = 0; k < p->n; k++) cJSON_Delete(p->stages[k]);
        free(p->name);
        free(p);
    }
}

static void closed(sse_client *c, void *arg)
{
    (void)c;
    viewer *v = arg;
    for (viewer **pp = &viewers; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    if (v->kpi) kpi_close(v->kpi);
    free(v);
}

int live_route(const http_req *q, http_resp *r)
{
    if (strcmp(q->path, "/api/live")) return 0;
    if (strcmp(q->method, "GET")) {
        http_error(r, 405, "use GET");
        return 1;
    }
    kpi_sub *kpi = NULL;
    if (http_query(q, "query")) {
        char err[1024];
        int status;
        if (!(kpi = kpi_open(q, &status, err, sizeof err))) {
            http_error(r, status, "%s", err);
            return 1;
        }
    }
    viewer *v = xcalloc(1, sizeof *v);
    v->kpi = kpi;
    v->status = !kpi || http_query_has(q, "status", "true");
    v->traces = auth_has_token(q);
    v->c = sse_open(r, closed, v);
    v->next = viewers;
    viewers = v;
    if (kpi) kpi_attach(kpi, v->c);
    if (!v->status) return 1;
    sse_add_ticker(publish);
    sse_add_shutdown(forget_samples);
    last_ms = 0; /* the newcomer gets a first view at once */
    return 1;
}
