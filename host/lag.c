#include "lag.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "yamltree.h"

typedef struct part_lag {
    char *topic;
    int partition;
    long long end, committed;
} part_lag;

/* One watched pipeline. The supervisor thread owns the config fields; `parts`/`ok` are written
 * by the lag thread under `lock`. */
typedef struct watch {
    char *pipeline, *brokers, *group, *def_seen;
    char **topics;
    size_t ntopics;
    rd_kafka_t *rk;  /* lag thread only */
    part_lag *parts;
    size_t nparts;
    int ok;
    atomic_int gone; /* set under the lock, read by the lag thread outside it */
} watch;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static watch **W;
static size_t NW;
static pthread_t thread;
static int running;
static atomic_int quit; /* read by the lag thread outside the lock */

static void parts_free(part_lag *p, size_t n)
{
    for (size_t i = 0; i < n; i++) free(p[i].topic);
    free(p);
}

static void watch_free(watch *w)
{
    if (w->rk) rd_kafka_destroy(w->rk);
    for (size_t i = 0; i < w->ntopics; i++) free(w->topics[i]);
    free(w->topics);
    parts_free(w->parts, w->nparts);
    free(w->pipeline);
    free(w->brokers);
    free(w->group);
    free(w->def_seen);
    free(w);
}

/* Fills brokers/topics/group from a pipeline definition whose source is kafka-source. */
static int parse_def(watch *w, const lag_pipeline *p)
{
    char err[512];
    ytree *t = ytree_load_opts(p->file, p->def, p->untrusted ? YT_NO_ENV : 0, err, sizeof err);
    if (!t) return -1;
    const ynode *stages = ynode_get(t->root, "stages");
    const ynode *src = stages && stages->kind == YN_SEQ && stages->n ? stages->items[0] : NULL;
    const ynode *use = src ? ynode_get(src, "use") : NULL, *with = src ? ynode_get(src, "with") : NULL;
    const ynode *b = ynode_get(with, "brokers"), *tp = ynode_get(with, "topics"), *g = ynode_get(with, "group");
    int rc = -1;
    if (use && use->kind == YN_SCALAR && !strcmp(use->str, "kafka-source") && b && b->kind == YN_SCALAR && tp) {
        w->brokers = xstrdup(b->str);
        w->group = xstrdup(g && g->kind == YN_SCALAR ? g->str : p->name);
        for (size_t i = 0; i < (tp->kind == YN_SEQ ? tp->n : 1); i++) {
            const ynode *it = tp->kind == YN_SEQ ? tp->items[i] : tp;
            if (it->kind != YN_SCALAR) continue;
            w->topics = xrealloc(w->topics, (w->ntopics + 1) * sizeof *w->topics);
            w->topics[w->ntopics++] = xstrdup(it->str);
        }
        rc = 0;
    }
    ytree_free(t);
    return rc;
}

/* Lag thread: one measurement of one pipeline (blocking network calls, outside the lock). */
static void measure(watch *w)
{
    char err[512];
    if (!w->ntopics) return; /* not Kafka-fed */
    if (!w->rk) {
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        if (rd_kafka_conf_set(c, "bootstrap.servers", w->brokers, err, sizeof err) ||
            rd_kafka_conf_set(c, "group.id", w->group, err, sizeof err) ||
            rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err) ||
            rd_kafka_conf_set(c, "log_level", "3", err, sizeof err)) {
            rd_kafka_conf_destroy(c);
            return;
        }
        w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
        if (!w->rk) return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < w->ntopics; i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(w->rk, w->topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (t && rd_kafka_metadata(w->rk, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
            !md->topics[0].err)
            for (int p = 0; p < md->topics[0].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(l, w->topics[i], md->topics[0].partitions[p].id);
        if (md) rd_kafka_metadata_destroy(md);
        if (t) rd_kafka_topic_destroy(t);
    }
    int ok = l->cnt > 0 && rd_kafka_committed(w->rk, l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    part_lag *parts = xcalloc(l->cnt ? (size_t)l->cnt : 1, sizeof *parts);
    for (int i = 0; ok && i < l->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(w->rk, l->elems[i].topic, l->elems[i].partition, &lo, &hi, 2000)) {
            ok = 0;
            break;
        }
        /* Nothing committed yet: lag counts from the start of the log, encoded as -1 - start. */
        long long committed = l->elems[i].offset >= 0 ? l->elems[i].offset : -1 - lo;
        parts[i] = (part_lag){xstrdup(l->elems[i].topic), l->elems[i].partition, hi, committed};
    }
    size_t n = ok ? (size_t)l->cnt : 0;
    if (!ok)
        for (int i = 0; i < l->cnt; i++) free(parts[i].topic);
    rd_kafka_topic_partition_list_destroy(l);
    pthread_mutex_lock(&lock);
    if (ok) {
        parts_free(w->parts, w->nparts);
        w->parts = parts;
        w->nparts = n;
        w->ok = 1;
    } else {
        free(parts);
    }
    pthread_mutex_unlock(&lock);
}

static long long lag_of(const part_lag *p)
{
    long long from = p->committed >= 0 ? p->committed : -1 - p->committed;
    return p->end > from ? p->end - from : 0;
}

static void *lag_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!quit) {
        /* Measure a snapshot of the list; entries are only freed by this thread. */
        size_t n = NW;
        watch **ws = xcalloc(n ? n : 1, sizeof *ws);
        memcpy(ws, W, n * sizeof *ws);
        pthread_mutex_unlock(&lock);
        for (size_t i = 0; i < n && !quit; i++)
            if (!ws[i]->gone) measure(ws[i]);
        free(ws);
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < NW;)
            if (W[i]->gone) {
                watch_free(W[i]);
                W[i] = W[--NW];
            } else {
                i++;
            }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        if (!quit) pthread_cond_timedwait(&wake, &lock, &ts);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static watch *find(const char *pipeline)
{
    for (size_t i = 0; i < NW; i++)
        if (!W[i]->gone && !strcmp(W[i]->pipeline, pipeline)) return W[i];
    return NULL;
}

void lag_update(const lag_pipeline *ps, size_t n)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n; i++) {
        const lag_pipeline *p = &ps[i];
        if (!p->def) continue;
        watch *w = find(p->name);
        if (w && !strcmp(w->def_seen, p->def)) continue;
        if (w) w->gone = 1; /* the definition changed: measure afresh */
        /* Not Kafka-fed: kept with no topics, so the definition is not parsed every loop. */
        watch *nw = xcalloc(1, sizeof *nw);
        nw->pipeline = xstrdup(p->name);
        nw->def_seen = xstrdup(p->def);
        parse_def(nw, p);
        W = xrealloc(W, (NW + 1) * sizeof *W);
        W[NW++] = nw;
        if (nw->ntopics && !running) {
            running = 1;
            pthread_create(&thread, NULL, lag_main, NULL);
        }
    }
    pthread_mutex_unlock(&lock);
}

int lag_total(const char *pipeline, double *lag, int *partitions)
{
    pthread_mutex_lock(&lock);
    watch *w = find(pipeline);
    int rc = -1;
    if (w && w->ok && w->ntopics) {
        double t = 0;
        for (size_t i = 0; i < w->nparts; i++) t += (double)lag_of(&w->parts[i]);
        *lag = t;
        *partitions = (int)w->nparts;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void lag_metrics(const char *pipeline, sl_metrics *m)
{
    pthread_mutex_lock(&lock);
    watch *w = find(pipeline);
    sl_buf s = {0};
    for (size_t i = 0; w && w->ok && i < w->nparts; i++) {
        s.len = 0;
        buf_puts(&s, "sluice_consumer_lag{pipeline=");
        metrics_label(&s, pipeline);
        buf_puts(&s, ",topic=");
        metrics_label(&s, w->parts[i].topic);
        buf_printf(&s, ",partition=\"%d\"}", w->parts[i].partition);
        metrics_add(m, "sluice_consumer_lag", buf_cstr(&s), (double)lag_of(&w->parts[i]));
    }
    buf_free(&s);
    pthread_mutex_unlock(&lock);
}

char *lag_json(const char *pipeline)
{
    pthread_mutex_lock(&lock);
    watch *w = find(pipeline);
    char *out = NULL;
    if (w && w->ok && w->ntopics) {
        sl_buf b = {0};
        buf_puts(&b, "[");
        for (size_t i = 0; i < w->nparts; i++) {
            const part_lag *p = &w->parts[i];
            buf_printf(&b, "%s{\"topic\":", i ? "," : "");
            buf_json_str(&b, p->topic, strlen(p->topic));
            buf_printf(&b, ",\"partition\":%d,\"lag\":%lld,\"end\":%lld,\"committed\":%lld}", p->partition, lag_of(p),
                       p->end, p->committed >= 0 ? p->committed : -1);
        }
        buf_puts(&b, "]");
        out = xstrdup(buf_cstr(&b));
        buf_free(&b);
    }
    pthread_mutex_unlock(&lock);
    return out;
}

void lag_forget(const char *pipeline)
{
    pthread_mutex_lock(&lock);
    watch *w = find(pipeline);
    if (w) w->gone = 1;
    pthread_mutex_unlock(&lock);
}

void lag_stop(void)
{
    pthread_mutex_lock(&lock);
    quit = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    if (running) pthread_join(thread, NULL);
    for (size_t i = 0; i < NW; i++) watch_free(W[i]);
    free(W);
    W = NULL;
    NW = 0;
    running = 0;
    quit = 0;
}
