/* sup_status.c — a child's status line (the wire format status.c writes on the status pipe),
 * parsed once when it arrives into the struct REST, /metrics and autoscaling read. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor.h"

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* [{"task","topic","partition"[,"offset"]}] into parts; entries without topic/partition skipped. */
static size_t parts_of(const cJSON *arr, sup_part **out)
{
    size_t n = 0;
    int cap = cJSON_GetArraySize(arr);
    *out = cap > 0 ? xcalloc((size_t)cap, sizeof **out) : NULL;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "topic"), *pa = cJSON_GetObjectItemCaseSensitive(o, "partition");
        if (!cJSON_IsString(t) || !cJSON_IsNumber(pa)) continue;
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
        (*out)[n++] = (sup_part){xstrdup(t->valuestring), pa->valueint, (int)num_of(o, "task"),
                                 cJSON_IsNumber(off) ? (long long)off->valuedouble : -1};
    }
    return n;
}

static void parts_free(sup_part *p, size_t n)
{
    for (size_t i = 0; i < n; i++) free(p[i].topic);
    free(p);
}

void sup_status_free(sup_status *s)
{
    free(s->state);
    for (size_t i = 0; i < s->ntask_states; i++) free(s->task_states[i]);
    free(s->task_states);
    for (size_t i = 0; i < s->nstages; i++) {
        free(s->stages[i].name);
        free(s->stages[i].use);
    }
    free(s->stages);
    parts_free(s->offsets, s->noffsets);
    parts_free(s->assigned, s->nassigned > 0 ? (size_t)s->nassigned : 0);
    for (int i = 0; i < s->nlag; i++) free(s->lag[i].topic);
    free(s->lag);
    free(s->error);
    metrics_free(&s->counters);
    cJSON_Delete(s->json);
    *s = (sup_status){.tasks = -1, .nassigned = -1, .nlag = -1};
}

int sup_status_parse(const char *line, sup_status *out)
{
    cJSON *st = cJSON_Parse(line);
    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        return -1;
    }
    sup_status s = {.valid = 1, .tasks = -1, .nassigned = -1, .nlag = -1};
    const char *v;
    if ((v = str_of(st, "state"))) s.state = xstrdup(v);
    if ((v = str_of(st, "error"))) s.error = xstrdup(v);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(st, "tasks");
    if (cJSON_IsNumber(t)) s.tasks = t->valueint;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(st, "task_states"), *e;
    if (cJSON_GetArraySize(ts) > 0) s.task_states = xcalloc((size_t)cJSON_GetArraySize(ts), sizeof *s.task_states);
    cJSON_ArrayForEach(e, ts) s.task_states[s.ntask_states++] = xstrdup(cJSON_IsString(e) ? e->valuestring : "");
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(st, "stages");
    if (cJSON_GetArraySize(stages) > 0) s.stages = xcalloc((size_t)cJSON_GetArraySize(stages), sizeof *s.stages);
    cJSON_ArrayForEach(e, stages)
    {
        sup_stage_stat *x = &s.stages[s.nstages++];
        x->name = xstrdup((v = str_of(e, "name")) ? v : "");
        x->use = xstrdup((v = str_of(e, "use")) ? v : "");
        x->in = num_of(e, "in");
        x->out = num_of(e, "out");
        x->rejected = num_of(e, "rejected");
        x->dropped = num_of(e, "dropped");
        x->retries = num_of(e, "retries");
    }
    s.noffsets = parts_of(cJSON_GetObjectItemCaseSensitive(st, "offsets"), &s.offsets);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "assigned");
    if (cJSON_IsArray(a)) s.nassigned = (int)parts_of(a, &s.assigned);
    const cJSON *lag = cJSON_GetObjectItemCaseSensitive(st, "lag");
    if (cJSON_IsArray(lag)) {
        s.nlag = 0;
        s.lag = cJSON_GetArraySize(lag) > 0 ? xcalloc((size_t)cJSON_GetArraySize(lag), sizeof *s.lag) : NULL;
        cJSON_ArrayForEach(e, lag)
        {
            if (!(v = str_of(e, "topic"))) continue;
            s.lag[s.nlag++] = (sup_lag){xstrdup(v), (int)num_of(e, "partition"), (long long)num_of(e, "end"),
                                        (long long)num_of(e, "committed"), (long long)num_of(e, "lag")};
        }
    }
    metrics_from_status(st, &s.counters);
    s.json = st;
    sup_status_free(out);
    *out = s;
    return 0;
}
