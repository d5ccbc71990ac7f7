/* sup_metrics.c — the supervisor's /metrics exposition, read from the pipelines' latest status
 * lines (supervisor thread only). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "lag.h"
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

void sup_metrics(sl_buf *out)
{
    static const char *const states[] = {"RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING", "FINISHED"};
    sl_metrics m = {0};
    sl_buf s = {0};
    buf_puts(&s, "sluice_info{version=");
    metrics_label(&s, SLUICE_VERSION);
    buf_puts(&s, "}");
    metrics_add(&m, "sluice_info", buf_cstr(&s), 1);
    for (size_t i = 0; i < sup_count(); i++) {
        sup_pipeline *p = sup_at(i);
        if (p->deleting) continue;
        sl_buf lab = {0};
        buf_puts(&lab, "pipeline=");
        metrics_label(&lab, p->name);
        const char *cur = sup_state_name(p);
        for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
            s.len = 0;
            buf_printf(&s, "sluice_pipeline_state{%s,state=\"%s\"}", buf_cstr(&lab), states[k]);
            metrics_add(&m, "sluice_pipeline_state", buf_cstr(&s), !strcmp(cur, states[k]));
        }
        s.len = 0;
        buf_printf(&s, "sluice_pipeline_tasks{%s}", buf_cstr(&lab));
        metrics_add(&m, "sluice_pipeline_tasks", buf_cstr(&s), p->state == SUP_RUNNING ? p->tasks : 0);
        s.len = 0;
        buf_printf(&s, "sluice_pipeline_restarts_total{%s}", buf_cstr(&lab));
        metrics_add(&m, "sluice_pipeline_restarts_total", buf_cstr(&s), (double)p->restarts);
        sl_metrics cur_m = {0};
        metrics_merge(&cur_m, &p->base);
        if (!p->status_folded) metrics_from_status(p->last_status, &cur_m);
        metrics_merge(&m, &cur_m);
        metrics_free(&cur_m);
        lag_metrics(p->name, &m);
        /* Committed offsets: the latest status knows them (also after the child exited). */
        cJSON *st = p->last_status ? cJSON_Parse(p->last_status) : NULL;
        const cJSON *o;
        const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(st, "offsets"); /* NULL-safe */
        cJSON_ArrayForEach(o, offsets)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "topic"), *pa = cJSON_GetObjectItemCaseSensitive(o, "partition"),
                        *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
            if (!cJSON_IsString(t) || !cJSON_IsNumber(pa) || !cJSON_IsNumber(off)) continue;
            s.len = 0;
            buf_printf(&s, "sluice_committed_offset{%s,topic=", buf_cstr(&lab));
            metrics_label(&s, t->valuestring);
            buf_printf(&s, ",partition=\"%d\"}", pa->valueint);
            metrics_add(&m, "sluice_committed_offset", buf_cstr(&s), off->valuedouble);
        }
        cJSON_Delete(st);
        buf_free(&lab);
    }
    metrics_merge(&m, &http_requests);
    metrics_render(&m, out);
    metrics_free(&m);
    buf_free(&s);
}
