/* sse_kpi.c — KPI query results pushed to live streams (see sse_kpi.h). */
#include "sse_kpi.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "web.h"

#define MAX_QUERIES 16

typedef struct kv {
    char *k, *v;
} kv;

/* One (query, parameters) pair: run by the worker every `every_ms` while someone wants it. */
typedef struct job {
    struct job *next;
    char *key, *name;
    kv *params;
    size_t nparams;
    long long every_ms, due_ms;
    int refs, running;
    unsigned seq;   /* bumped with every new result */
    char *event;    /* the event data for the last result */
} job;

struct kpi_sub {
    sse_client *c;
    job *jobs[MAX_QUERIES];
    unsigned seen[MAX_QUERIES];
    size_t n;
    struct kpi_sub *next;
};

static pthread_mutex_t klock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t kwake = PTHREAD_COND_INITIALIZER;
static job *jobs;
static kpi_sub *subs;
static pthread_t worker;
static int worker_up, stop;

static const char *param(void *arg, const char *name)
{
    const job *j = arg;
    for (size_t i = 0; i < j->nparams; i++)
        if (!strcmp(j->params[i].k, name)) return j->params[i].v;
    return NULL;
}

static void job_free(job *j)
{
    for (size_t i = 0; i < j->nparams; i++) {
        free(j->params[i].k);
        free(j->params[i].v);
    }
    free(j->params);
    free(j->key);
    free(j->name);
    free(j->event);
    free(j);
}

static void *work(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&klock);
    while (!stop) {
        long long now = sl_monotonic_ms();
        job *due = NULL;
        for (job *j = jobs; j && !due; j = j->next)
            if (j->refs > 0 && now >= j->due_ms) due = j;
        if (!due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&kwake, &klock, &ts);
            continue;
        }
        due->running = 1;
        pthread_mutex_unlock(&klock);
        sl_buf body = {0}, ev = {0};
        int status = web_query_now(due->name, param, due, 0, &body); /* blocks on the database */
        buf_puts(&ev, "{\"name\":");
        buf_json_str(&ev, due->name, strlen(due->name));
        buf_printf(&ev, ",\"status\":%d,\"result\":", status);
        if (body.len) buf_put(&ev, body.data, body.len);
        else buf_puts(&ev, "null");
        buf_puts(&ev, "}");
        buf_free(&body);
        pthread_mutex_lock(&klock);
        free(due->event);
        due->event = xstrdup(buf_cstr(&ev));
        buf_free(&ev);
        due->seq++;
        due->running = 0;
        due->due_ms = sl_monotonic_ms() + due->every_ms;
    }
    pthread_mutex_unlock(&klock);
    return NULL;
}

/* Supervisor thread, every loop turn: hand new results to the streams that want them. */
static void deliver(long long now)
{
    (void)now;
    pthread_mutex_lock(&klock);
    for (kpi_sub *s = subs; s; s = s->next)
        for (size_t i = 0; i < s->n; i++)
            if (s->jobs[i]->seq != s->seen[i] && s->jobs[i]->event) {
                s->seen[i] = s->jobs[i]->seq;
                sse_send(s->c, "query", s->jobs[i]->event);
            }
    /* Jobs nobody wants any more go once the worker is done with them. */
    for (job **pp = &jobs; *pp;) {
        job *j = *pp;
        if (j->refs <= 0 && !j->running) {
            *pp = j->next;
            job_free(j);
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&klock);
}

static void shutdown_worker(void)
{
    if (!worker_up) return;
    pthread_mutex_lock(&klock);
    stop = 1;
    pthread_cond_signal(&kwake);
    pthread_mutex_unlock(&klock);
    pthread_join(worker, NULL); /* a query in flight ends within its statement timeout */
    worker_up = 0;
}

typedef struct args {
    kv v[32];
    size_t n;
    const char *query, *every;
} args;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    args *a = cls;
    if (!key || !value) return MHD_YES;
    if (!strcmp(key, "query")) a->query = value;
    else if (!strcmp(key, "every")) a->every = value;
    else if (a->n < 32) a->v[a->n++] = (kv){(char *)key, (char *)value};
    return MHD_YES;
}

static int cmp_kv(const void *x, const void *y) { return strcmp(((const kv *)x)->k, ((const kv *)y)->k); }

kpi_sub *kpi_open(const http_req *q, int *status, char *err, size_t errlen)
{
    args a = {0};
    MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, collect, &a);
    long every = 1;
    if (a.every) {
        char *end;
        every = strtol(a.every, &end, 10);
        if (*end || every < 1 || every > 60) {
            *status = 400;
            snprintf(err, errlen, "every must be a number of seconds from 1 to 60, not '%s'", a.every);
            return NULL;
        }
    }
    qsort(a.v, a.n, sizeof *a.v, cmp_kv);
    sl_buf params = {0};
    for (size_t i = 0; i < a.n; i++) buf_printf(&params, "&%s=%s", a.v[i].k, a.v[i].v);
    kpi_sub *s = xcalloc(1, sizeof *s);
    job probe = {.params = a.v, .nparams = a.n};
    for (const char *p = a.query ? a.query : ""; *p;) {
        size_t l = strcspn(p, ",");
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(l < sizeof name ? l : sizeof name - 1), p);
        p += l + (p[l] == ',');
        long period = every; /* "name:N": this one every N seconds */
        char *colon = strchr(name, ':');
        if (colon) {
            char *end;
            *colon = 0;
            period = strtol(colon + 1, &end, 10);
            if (*end || period < 1 || period > 60) {
                *status = 400;
                snprintf(err, errlen, "%s: the period after ':' must be 1 to 60 seconds", name);
                buf_free(&params);
                kpi_close(s);
                return NULL;
            }
        }
        if (!*name) continue;
        sl_buf msg = {0};
        int st = web_query_now(name, param, &probe, 1, &msg); /* name and parameters only */
        if (st != 200 || s->n == MAX_QUERIES) {
            cJSON *m = st != 200 ? cJSON_Parse(buf_cstr(&msg)) : NULL;
            const cJSON *mm = cJSON_GetObjectItemCaseSensitive(m, "message");
            *status = st != 200 ? st : 400;
            snprintf(err, errlen, "%s: %s", name, cJSON_IsString(mm) ? mm->valuestring : "too many queries in one stream");
            cJSON_Delete(m);
            buf_free(&msg);
            buf_free(&params);
            kpi_close(s);
            return NULL;
        }
        buf_free(&msg);
        char *key = xasprintf("%s?%ld%s", name, period, buf_cstr(&params));
        pthread_mutex_lock(&klock);
        job *j = jobs;
        while (j && strcmp(j->key, key)) j = j->next;
        if (!j) {
            j = xcalloc(1, sizeof *j);
            j->key = key;
            j->name = xstrdup(name);
            j->params = xcalloc(a.n ? a.n : 1, sizeof *j->params);
            for (size_t i = 0; i < a.n; i++) j->params[i] = (kv){xstrdup(a.v[i].k), xstrdup(a.v[i].v)};
            j->nparams = a.n;
            j->every_ms = period * 1000;
            j->next = jobs;
            jobs = j;
        } else {
            free(key);
        }
        j->refs++;
        j->due_ms = 0; /* a newcomer gets an answer at once */
        s->seen[s->n] = j->seq;
        s->jobs[s->n++] = j;
        pthread_cond_signal(&kwake);
        pthread_mutex_unlock(&klock);
    }
    buf_free(&params);
    return s;
}

void kpi_attach(kpi_sub *s, sse_client *c)
{
    s->c = c;
    pthread_mutex_lock(&klock);
    s->next = subs;
    subs = s;
    pthread_mutex_unlock(&klock);
    sse_add_ticker(deliver);
    sse_add_shutdown(shutdown_worker);
    if (!worker_up) {
        stop = 0;
        worker_up = pthread_create(&worker, NULL, work, NULL) == 0;
        if (!worker_up) log_error("live stream: cannot start the query thread");
    }
}

void kpi_close(kpi_sub *s)
{
    pthread_mutex_lock(&klock);
    for (kpi_sub **pp = &subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    for (size_t i = 0; i < s->n; i++) s->jobs[i]->refs--;
    if (!worker_up) /* after shutdown nobody else frees them */
        for (job **pp = &jobs; *pp;) {
            job *j = *pp;
            if (j->refs <= 0) {
                *pp = j->next;
                job_free(j);
            } else {
                pp = &j->next;
            }
        }
    pthread_mutex_unlock(&klock);
    free(s);
}
