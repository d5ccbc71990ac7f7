/* status.c — the JSON status line the supervisor reads once a second. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_int.h"

/* A histogram as {"name":…,"le":[bounds],"buckets":[non-cumulative counts, last = +Inf],…}. */
static void buf_hist(sl_buf *b, const char *name, const histogram *h)
{
    buf_puts(b, "{\"name\":");
    buf_json_str(b, name, strlen(name));
    buf_puts(b, ",\"buckets\":[");
    for (size_t i = 0; i <= NBUCKETS; i++) buf_printf(b, "%s%llu", i ? "," : "", (unsigned long long)h->buckets[i]);
    buf_printf(b, "],\"count\":%llu,\"sum\":%.9g}", (unsigned long long)h->count, h->sum);
}

static void hist_merge(histogram *into, const histogram *h)
{
    for (size_t i = 0; i <= NBUCKETS; i++) into->buckets[i] += h->buckets[i];
    into->count += h->count;
    into->sum += h->sum;
}

void api_report_end_offsets(sl_ctx *ctx, const sl_position *ends, size_t n)
{
    task *t = ctx->task;
    sl_position *copy = n ? xcalloc(n, sizeof *copy) : NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (sl_position){xstrdup(ends[i].topic ? ends[i].topic : ""), ends[i].partition, ends[i].offset};
    pthread_mutex_lock(&t->slock);
    for (size_t i = 0; i < t->nends; i++) free((char *)t->ends[i].topic);
    free(t->ends);
    t->ends = copy;
    t->nends = n;
    pthread_mutex_unlock(&t->slock);
}

static const sl_position *find_pos(const sl_position *v, size_t n, const sl_position *p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].partition == p->partition && !strcmp(v[i].topic, p->topic)) return &v[i];
    return NULL;
}

/* Consumer lag of every owned partition whose end the source reported: end minus the next
 * offset to read after the last commit (or after the position the partition was assigned at;
 * from offset 0 when there is neither). Kafka tooling's "end - committed", from inside. */
static void buf_lag(sl_buf *b)
{
    int first = 1;
    for (int k = 0; k < ntasks; k++) {
        pthread_mutex_lock(&tasks[k].slock);
        for (size_t i = 0; i < tasks[k].nowned; i++) {
            const sl_position *o = &tasks[k].owned[i];
            const sl_position *e = find_pos(tasks[k].ends, tasks[k].nends, o);
            if (!e) continue;
            const sl_position *c = find_pos(tasks[k].committed, tasks[k].ncommitted, o);
            long long last = c ? (long long)c->offset : (long long)o->offset; /* last finished, -1: none */
            long long next = last >= 0 ? last + 1 : 0, lag = e->offset > next ? e->offset - next : 0;
            buf_printf(b, "%s{\"task\":%d,\"topic\":", first ? "" : ",", k);
            buf_json_str(b, o->topic, strlen(o->topic));
            buf_printf(b, ",\"partition\":%d,\"end\":%lld,\"committed\":%lld,\"lag\":%lld}", (int)o->partition,
                       (long long)e->offset, last >= 0 ? next : -1, lag);
            first = 0;
        }
        pthread_mutex_unlock(&tasks[k].slock);
    }
}

/* One JSON line per call: what the supervisor keeps and serves as status and metrics.
 * Stage totals are summed over tasks; "per_task" holds [in, out, rejected, dropped] per task;
 * histograms are summed over tasks; "offsets" are the last committed positions; "lag" is
 * per owned partition whose end the source reports (api->report_end_offsets). */
void write_status(pipeline_cfg *cfg, int fd, const char *state)
{
    sl_buf b = {0};
    if (!strcmp(state, "RUNNING") && atomic_load(&pause_requested)) state = "PAUSED";
    buf_printf(&b, "{\"pipeline\":");
    buf_json_str(&b, cfg->name, strlen(cfg->name));
    buf_printf(&b, ",\"state\":\"%s\",\"pid\":%d,\"tasks\":%d,\"le\":[", state, (int)getpid(), ntasks);
    for (size_t i = 0; i < NBUCKETS; i++) buf_printf(&b, "%s%g", i ? "," : "", bucket_bounds[i]);
    buf_puts(&b, "],\"task_states\":[");
    for (int k = 0; k < ntasks; k++)
        buf_printf(&b, "%s\"%s\"", k ? "," : "",
                   tasks[k].failed ? "FAILED" : tasks[k].done ? "DONE" : tasks[k].paused ? "PAUSED" : state);
    buf_puts(&b, "],\"stages\":[");
    size_t nst = cfg->nstages + (cfg->dead_letter ? 1 : 0);
    for (size_t i = 0; i < nst; i++) {
        uint64_t in = 0, out = 0, rej = 0, drop = 0, retries = 0;
        sl_buf extra = {0}, per = {0}, hists = {0};
        histogram batch = {0};
        for (int k = 0; k < ntasks; k++) {
            stage_inst *s = i < cfg->nstages ? &tasks[k].stages[i] : tasks[k].dlq;
            uint64_t ti = atomic_load(&s->in), to = atomic_load(&s->out), tr = atomic_load(&s->rejected),
                     td = atomic_load(&s->dropped);
            in += ti;
            out += to;
            rej += tr;
            drop += td;
            retries += atomic_load(&s->retries);
            buf_printf(&per, "%s[%llu,%llu,%llu,%llu]", k ? "," : "", (unsigned long long)ti,
                       (unsigned long long)to, (unsigned long long)tr, (unsigned long long)td);
            pthread_mutex_lock(&s->mlock);
            for (size_t c = 0; c < s->ncounters; c++) {
                buf_printf(&extra, "%s{\"task\":%d,\"name\":", extra.len ? "," : "", k);
                buf_json_str(&extra, s->counters[c].name, strlen(s->counters[c].name));
                buf_printf(&extra, ",\"value\":%llu}", (unsigned long long)atomic_load(&s->counters[c].value));
            }
            hist_merge(&batch, &s->batch);
            for (size_t h = 0; h < s->nhists; h++) {
                if (hists.len) buf_puts(&hists, ",");
                buf_printf(&hists, "{\"task\":%d,\"hist\":", k);
                buf_hist(&hists, s->hists[h].name, &s->hists[h]);
                buf_puts(&hists, "}");
            }
            pthread_mutex_unlock(&s->mlock);
        }
        const char *name = i < cfg->nstages ? cfg->stages[i].name : cfg->dead_letter->name;
        const char *use = i < cfg->nstages ? cfg->stages[i].plugin->desc->name : cfg->dead_letter->plugin->desc->name;
        buf_printf(&b, "%s{\"name\":", i ? "," : "");
        buf_json_str(&b, name, strlen(name));
        buf_puts(&b, ",\"use\":");
        buf_json_str(&b, use, strlen(use));
        buf_printf(&b, ",\"in\":%llu,\"out\":%llu,\"rejected\":%llu,\"dropped\":%llu,\"retries\":%llu,\"counters\":[%s]",
                   (unsigned long long)in, (unsigned long long)out, (unsigned long long)rej,
                   (unsigned long long)drop, (unsigned long long)retries, buf_cstr(&extra));
        buf_printf(&b, ",\"per_task\":[%s],\"batch\":", buf_cstr(&per));
        buf_hist(&b, "batch", &batch);
        buf_printf(&b, ",\"hists\":[%s]}", buf_cstr(&hists));
        buf_free(&extra);
        buf_free(&per);
        buf_free(&hists);
    }
    histogram e2e = {0};
    buf_puts(&b, "],\"offsets\":[");
    int first = 1;
    for (int k = 0; k < ntasks; k++) {
        pthread_mutex_lock(&tasks[k].slock);
        hist_merge(&e2e, &tasks[k].e2e);
        for (size_t i = 0; i < tasks[k].ncommitted; i++) {
            const sl_position *p = &tasks[k].committed[i];
            buf_printf(&b, "%s{\"task\":%d,\"topic\":", first ? "" : ",", k);
            buf_json_str(&b, p->topic, strlen(p->topic));
            buf_printf(&b, ",\"partition\":%d,\"offset\":%lld}", (int)p->partition, (long long)p->offset);
            first = 0;
        }
        pthread_mutex_unlock(&tasks[k].slock);
    }
    buf_puts(&b, "],\"assigned\":[");
    first = 1;
    for (int k = 0; k < ntasks; k++) {
        pthread_mutex_lock(&tasks[k].slock);
        for (size_t i = 0; i < tasks[k].nowned; i++) {
            const sl_position *p = &tasks[k].owned[i];
            buf_printf(&b, "%s{\"task\":%d,\"topic\":", first ? "" : ",", k);
            buf_json_str(&b, p->topic, strlen(p->topic));
            buf_printf(&b, ",\"partition\":%d}", (int)p->partition);
            first = 0;
        }
        pthread_mutex_unlock(&tasks[k].slock);
    }
    buf_puts(&b, "],\"lag\":[");
    buf_lag(&b);
    buf_puts(&b, "],\"e2e\":");
    buf_hist(&b, "e2e", &e2e);
    pthread_mutex_lock(&error_lock);
    if (last_error[0]) {
        buf_puts(&b, ",\"error\":");
        buf_json_str(&b, last_error, strlen(last_error));
    }
    pthread_mutex_unlock(&error_lock);
    buf_puts(&b, "}\n");
    ssize_t w = write(fd, b.data, b.len);
    (void)w; /* the supervisor may be gone; status is best effort */
    buf_free(&b);
}

/* The only status line of a pipeline whose stages did not start. */
void write_failure(pipeline_cfg *cfg, int fd)
{
    sl_buf b = {0};
    buf_puts(&b, "{\"pipeline\":");
    buf_json_str(&b, cfg->name, strlen(cfg->name));
    buf_printf(&b, ",\"state\":\"FAILED\",\"pid\":%d,\"tasks\":0", (int)getpid());
    pthread_mutex_lock(&error_lock);
    buf_puts(&b, ",\"error\":");
    buf_json_str(&b, last_error, strlen(last_error));
    pthread_mutex_unlock(&error_lock);
    buf_puts(&b, "}\n");
    ssize_t w = write(fd, b.data, b.len);
    (void)w;
    buf_free(&b);
}
