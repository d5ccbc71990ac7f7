/* sup_metrics.c — the supervisor's /metrics exposition, read from the pipelines' latest status
 * lines (supervisor thread only). */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "supervisor.h"

static sl_metrics http_requests; /* REST requests by status code */

void sup_metrics_free(void) { metrics_free(&http_requests); }

void sup_count_request(int status)
{
    char s[96];
    snprintf(s, sizeof s, "sluice_http_requests_total{code=\"%d\"}", status);
    metrics_add(&http_requests, "sluice_http_requests_total", s, 1);
}

void sup_pipeline_series(const sup_pipeline *p, sl_metrics *m)
{
    static const char *const states[] = {"RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING", "FINISHED"};
    sl_buf s = {0}, lab = {0};
    buf_puts(&lab, "pipeline=");
    metrics_label(&lab, p->name);
    const char *cur = sup_state_name(p);
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        s.len = 0;
        buf_printf(&s, "sluice_pipeline_state{%s,state=\"%s\"}", buf_cstr(&lab), states[k]);
        metrics_add(m, "sluice_pipeline_state", buf_cstr(&s), !strcmp(cur, states[k]));
    }
    s.len = 0;
    buf_printf(&s, "sluice_pipeline_tasks{%s}", buf_cstr(&lab));
    metrics_add(m, "sluice_pipeline_tasks", buf_cstr(&s), p->state == SUP_RUNNING ? p->tasks : 0);
    s.len = 0;
    buf_printf(&s, "sluice_pipeline_restarts_total{%s}", buf_cstr(&lab));
    metrics_add(m, "sluice_pipeline_restarts_total", buf_cstr(&s), (double)p->restarts);
    /* Counters: those of earlier children plus the running one's. */
    metrics_merge(m, &p->base);
    if (p->status.valid && !p->status_folded) metrics_merge(m, &p->status.counters);
    /* Consumer lag, while a child runs and its source reports partition ends. */
    for (int k = 0; p->status.valid && !p->status_folded && k < p->status.nlag; k++) {
        const sup_lag *l = &p->status.lag[k];
        s.len = 0;
        buf_printf(&s, "sluice_consumer_lag{%s,topic=", buf_cstr(&lab));
        metrics_label(&s, l->topic);
        buf_printf(&s, ",partition=\"%d\"}", l->partition);
        metrics_add(m, "sluice_consumer_lag", buf_cstr(&s), (double)l->lag);
    }
    /* Committed offsets: the latest status knows them (also after the child exited). A gauge,
     * not a sum: after a rebalance two tasks may list the same partition, and the furthest
     * position is the one the group holds (as GET .../offsets answers). */
    const sup_status *st = &p->status;
    for (size_t k = 0; k < st->noffsets; k++) {
        const sup_part *o = &st->offsets[k];
        int superseded = 0;
        for (size_t j = 0; j < st->noffsets && !superseded; j++)
            superseded = j != k && st->offsets[j].partition == o->partition && !strcmp(st->offsets[j].topic, o->topic) &&
                         (st->offsets[j].offset > o->offset || (st->offsets[j].offset == o->offset && j < k));
        if (superseded) continue;
        s.len = 0;
        buf_printf(&s, "sluice_committed_offset{%s,topic=", buf_cstr(&lab));
        metrics_label(&s, o->topic);
        buf_printf(&s, ",partition=\"%d\"}", o->partition);
        metrics_add(m, "sluice_committed_offset", buf_cstr(&s), (double)o->offset);
    }
    buf_free(&lab);
    buf_free(&s);
}

void sup_metrics(sl_buf *out)
{
    sl_metrics m = {0};
    sl_buf s = {0};
    buf_puts(&s, "sluice_info{version=");
    metrics_label(&s, SLUICE_VERSION);
    buf_puts(&s, "}");
    metrics_add(&m, "sluice_info", buf_cstr(&s), 1);
    buf_free(&s);
    for (size_t i = 0; i < sup_count(); i++)
        if (!sup_at(i)->deleting) sup_pipeline_series(sup_at(i), &m);
    metrics_merge(&m, &http_requests);
    metrics_render(&m, out);
    metrics_free(&m);
}
