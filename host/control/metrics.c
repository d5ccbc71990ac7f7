#include "metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* Every family we expose, with its type and help text. Unknown families are not rendered,
 * so a typo shows up as a missing metric in the tests rather than as an untyped one. */
static const struct family_info {
    const char *name, *type, *help;
} families[] = {
    {"sluice_info", "gauge", "Constant 1; the labels say which sluice this is."},
    {"sluice_pipeline_state", "gauge", "1 for the pipeline's current state, 0 for the others."},
    {"sluice_pipeline_tasks", "gauge", "Tasks the pipeline runs now."},
    {"sluice_pipeline_restarts_total", "counter", "Times the supervisor (re)started the pipeline after the first start."},
    {"sluice_records_in_total", "counter", "Records handed to a stage."},
    {"sluice_records_out_total", "counter", "Records a stage emitted downstream."},
    {"sluice_records_rejected_total", "counter", "Records a stage sent to the dead-letter sink."},
    {"sluice_records_dropped_total", "counter", "Records a transform neither forwarded, held nor rejected (filtered, duplicates)."},
    {"sluice_stage_retries_total", "counter", "Batches a stage asked to retry."},
    {"sluice_stage_events_total", "counter", "Stage-defined counters (api->count), by name."},
    {"sluice_stage_observation", "histogram", "Stage-defined histograms (api->observe), by name."},
    {"sluice_batch_duration_seconds", "histogram", "Time a stage took to process one batch."},
    {"sluice_end_to_end_latency_seconds", "histogram", "Record timestamp (event time, else ingest time) to the sink finishing its batch, for the records a source read; records a stage made (KPI rows) are not counted."},
    {"sluice_committed_offset", "gauge", "Last position committed back to the source, per partition."},
    {"sluice_consumer_lag", "gauge", "Records behind the end of the partition (Kafka-fed pipelines)."},
    {"sluice_http_requests_total", "counter", "REST requests served, by status code."},
};

static const struct family_info *family_of(const char *name)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].name, name)) return &families[i];
    return NULL;
}

typedef struct sl_series_idx {
    const char *series; /* v[i].series */
    size_t i;
    UT_hash_handle hh;
} sl_series_idx;

void metrics_add(sl_metrics *m, const char *family, const char *series, double v)
{
    sl_series_idx *x;
    HASH_FIND_STR(m->index, series, x);
    if (x) {
        m->v[x->i].value += v;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n] = (sl_series){xstrdup(family), xstrdup(series), v};
    x = xmalloc(sizeof *x);
    x->series = m->v[m->n].series;
    x->i = m->n++;
    HASH_ADD_KEYPTR(hh, m->index, x->series, strlen(x->series), x);
}

void metrics_merge(sl_metrics *into, const sl_metrics *from)
{
    for (size_t i = 0; i < from->n; i++) metrics_add(into, from->v[i].family, from->v[i].series, from->v[i].value);
}

void metrics_free(sl_metrics *m)
{
    sl_series_idx *x, *tmp;
    HASH_ITER(hh, m->index, x, tmp)
    {
        HASH_DEL(m->index, x);
        free(x);
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].family);
        free(m->v[i].series);
    }
    free(m->v);
    *m = (sl_metrics){0};
}

void metrics_label(sl_buf *b, const char *value)
{
    buf_puts(b, "\"");
    for (const char *c = value ? value : ""; *c; c++) {
        if (*c == '\\') buf_puts(b, "\\\\");
        else if (*c == '"') buf_puts(b, "\\\"");
        else if (*c == '\n') buf_puts(b, "\\n");
        else buf_put(b, c, 1);
    }
    buf_puts(b, "\"");
}

/* labels: "pipeline=…,stage=…" already rendered (without braces). */
static void add_counter(sl_metrics *m, const char *family, const char *labels, double v)
{
    sl_buf s = {0};
    buf_printf(&s, "%s{%s}", family, labels);
    metrics_add(m, family, buf_cstr(&s), v);
    buf_free(&s);
}

/* A status histogram ({"buckets":[…], "count", "sum"}, buckets non-cumulative, the last one
 * +Inf) as Prometheus _bucket/_sum/_count series with cumulative buckets. */
static void add_hist(sl_metrics *m, const char *family, const char *labels, const cJSON *le, const cJSON *h)
{
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(h, "buckets");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(h, "count"), *sum = cJSON_GetObjectItemCaseSensitive(h, "sum");
    int nb = cJSON_GetArraySize(buckets);
    if (!cJSON_IsArray(buckets) || !cJSON_IsArray(le) || nb != cJSON_GetArraySize(le) + 1 || !cJSON_IsNumber(count) ||
        !cJSON_IsNumber(sum))
        return;
    double cum = 0;
    sl_buf s = {0};
    for (int i = 0; i < nb; i++) {
        cum += cJSON_GetArrayItem(buckets, i)->valuedouble;
        s.len = 0;
        if (i + 1 < nb) buf_printf(&s, "%s_bucket{%s,le=\"%g\"}", family, labels, cJSON_GetArrayItem(le, i)->valuedouble);
        else buf_printf(&s, "%s_bucket{%s,le=\"+Inf\"}", family, labels);
        metrics_add(m, family, buf_cstr(&s), cum);
    }
    s.len = 0;
    buf_printf(&s, "%s_sum{%s}", family, labels);
    metrics_add(m, family, buf_cstr(&s), sum->valuedouble);
    s.len = 0;
    buf_printf(&s, "%s_count{%s}", family, labels);
    metrics_add(m, family, buf_cstr(&s), count->valuedouble);
    buf_free(&s);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

void metrics_from_status(const cJSON *st, sl_metrics *out)
{
    const char *pipeline = str(st, "pipeline");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(st, "le");
    sl_buf base = {0}, lab = {0};
    buf_puts(&base, "pipeline=");
    metrics_label(&base, pipeline);
    const cJSON *stage;
    cJSON_ArrayForEach(stage, cJSON_GetObjectItemCaseSensitive(st, "stages"))
    {
        sl_buf sl = {0};
        buf_printf(&sl, "%s,stage=", buf_cstr(&base));
        metrics_label(&sl, str(stage, "name"));
        /* Per-task record counts: [in, out, rejected, dropped]. */
        static const char *const fam[] = {"sluice_records_in_total", "sluice_records_out_total",
                                          "sluice_records_rejected_total", "sluice_records_dropped_total"};
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(stage, "per_task");
        for (int k = 0; k < cJSON_GetArraySize(per); k++) {
            const cJSON *row = cJSON_GetArrayItem(per, k);
            lab.len = 0;
            buf_printf(&lab, "%s,task=\"%d\"", buf_cstr(&sl), k);
            for (int f = 0; f < 4 && f < cJSON_GetArraySize(row); f++)
                add_counter(out, fam[f], buf_cstr(&lab), cJSON_GetArrayItem(row, f)->valuedouble);
        }
        add_counter(out, "sluice_stage_retries_total", buf_cstr(&sl), num(stage, "retries"));
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(stage, "counters"))
        {
            lab.len = 0;
            buf_printf(&lab, "%s,task=\"%d\",name=", buf_cstr(&sl), (int)num(c, "task"));
            metrics_label(&lab, str(c, "name"));
            add_counter(out, "sluice_stage_events_total", buf_cstr(&lab), num(c, "value"));
        }
        add_hist(out, "sluice_batch_duration_seconds", buf_cstr(&sl), le, cJSON_GetObjectItemCaseSensitive(stage, "batch"));
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(stage, "hists"))
        {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(c, "hist");
            lab.len = 0;
            buf_printf(&lab, "%s,task=\"%d\",name=", buf_cstr(&sl), (int)num(c, "task"));
            metrics_label(&lab, str(h, "name"));
            add_hist(out, "sluice_stage_observation", buf_cstr(&lab), le, h);
        }
        buf_free(&sl);
    }
    add_hist(out, "sluice_end_to_end_latency_seconds", buf_cstr(&base), le, cJSON_GetObjectItemCaseSensitive(st, "e2e"));
    buf_free(&base);
    buf_free(&lab);
}

static void fmt_value(sl_buf *b, double v)
{
    if (isnan(v)) buf_puts(b, "NaN");
    else if (isinf(v)) buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15) buf_printf(b, "%.0f", v);
    else buf_printf(b, "%.17g", v);
}

/* A family's place in the output: first seen first. */
typedef struct family_slot {
    const char *family;
    size_t order, count, next; /* next: where its next series goes in the sorted list */
    UT_hash_handle hh;
} family_slot;

void metrics_render(const sl_metrics *m, sl_buf *out)
{
    /* Group the series by family in linear time: count per family, then place each series. */
    family_slot *fams = NULL, *f, *tmp;
    family_slot **slot_of = xcalloc(m->n ? m->n : 1, sizeof *slot_of);
    size_t nfam = 0;
    for (size_t i = 0; i < m->n; i++) {
        HASH_FIND_STR(fams, m->v[i].family, f);
        if (!f) {
            f = xcalloc(1, sizeof *f);
            f->family = m->v[i].family;
            f->order = nfam++;
            HASH_ADD_KEYPTR(hh, fams, f->family, strlen(f->family), f);
        }
        f->count++;
        slot_of[i] = f;
    }
    family_slot **by_order = xcalloc(nfam ? nfam : 1, sizeof *by_order);
    HASH_ITER(hh, fams, f, tmp) by_order[f->order] = f;
    for (size_t k = 0, at = 0; k < nfam; k++) {
        by_order[k]->next = at;
        at += by_order[k]->count;
    }
    size_t *sorted = xcalloc(m->n ? m->n : 1, sizeof *sorted);
    for (size_t i = 0; i < m->n; i++) sorted[slot_of[i]->next++] = i;
    for (size_t j = 0; j < m->n; j++) {
        const sl_series *v = &m->v[sorted[j]];
        const struct family_info *fi = family_of(v->family);
        if (!fi) continue; /* unknown families are not rendered (see families[]) */
        if (j == 0 || strcmp(m->v[sorted[j - 1]].family, v->family))
            buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fi->name, fi->help, fi->name, fi->type);
        buf_printf(out, "%s ", v->series);
        fmt_value(out, v->value);
        buf_puts(out, "\n");
    }
    HASH_ITER(hh, fams, f, tmp)
    {
        HASH_DEL(fams, f);
        free(f);
    }
    free(by_order);
    free(slot_of);
    free(sorted);
}
