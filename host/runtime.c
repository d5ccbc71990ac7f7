/* runtime.c — one pipeline's tasks.
 *
 * A task is one thread that owns one instance of every stage and runs them synchronously:
 * poll the source, hand the batch to each transform in turn, then to the sink. Nothing is
 * queued between stages, so a slow sink slows its own source and nothing else (backpressure
 * without unbounded buffers).
 *
 * Records of one batch ("wave") live in the task's arena and record slab until the wave has
 * passed the whole chain; stages that need a record longer copy it or hold its ack token.
 * A record's JSON is parsed once, on first access, and the tree travels with the record.
 */
#include "runtime.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acks.h"
#include "log.h"
#include "util.h"

#define HREC_MAGIC 0x52454331u
#define SLAB_CHUNK 1024
#define TICK_MS 10 /* flush cadence: bounds how long a sink's buffer waits */
#define DRAIN_TIMEOUT_MS 30000

/* A host record: the public record first, so a stage's sl_record* converts back. */
typedef struct hrec {
    sl_record r;
    uint32_t magic;
    uint8_t json_state; /* 0 not parsed, 1 parsed, 2 not JSON */
    uint8_t dirty;      /* JSON changed since value was serialised */
    cJSON *json;        /* parsed value, in the task arena */
    uint32_t mark;      /* == task seq when the current stage forwarded, held or rejected it */
} hrec;

typedef struct slab_chunk {
    struct slab_chunk *next;
    size_t used;
    hrec recs[SLAB_CHUNK];
} slab_chunk;

typedef struct recvec {
    sl_record **v;
    size_t n, cap;
} recvec;

typedef struct counter {
    char *name;
    atomic_uint_fast64_t value;
} counter;

#define NBUCKETS 14
static const double bucket_bounds[NBUCKETS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
typedef struct histogram {
    char *name;
    uint64_t buckets[NBUCKETS + 1];
    uint64_t count;
    double sum;
} histogram;

typedef struct task task;

struct sl_ctx {
    task *task;
    struct stage_inst *st;
};

typedef struct stage_inst {
    stage_cfg *cfg;
    const sl_stage_desc *d;
    void *self;
    int initialised;
    int index; /* position in the chain; -1 for the dead-letter sink */
    struct sl_ctx ctx;
    atomic_uint_fast64_t in, out, rejected, dropped, retries;
    pthread_mutex_t mlock; /* guards the metric arrays below */
    counter *counters;
    size_t ncounters;
    histogram *hists;
    size_t nhists;
    histogram batch; /* seconds per successful process() call (guarded by mlock) */
} stage_inst;

struct task {
    pipeline_cfg *cfg;
    int index;
    pthread_t thread;
    stage_inst *stages;
    size_t nstages;
    stage_inst *dlq;
    ack_tracker acks;
    sl_arena arena;
    slab_chunk *slab_head, *slab_free;
    int depth;            /* nesting of chain runs, to know when a wave is over */
    recvec *target;       /* where emit() appends */
    recvec dlq_pending;
    int failed;           /* a stage returned FATAL */
    int paused;           /* the source is paused on the supervisor's request */
    pthread_mutex_t slock; /* guards e2e and committed (read by write_status) */
    histogram e2e;        /* record timestamp -> the sink returned, seconds */
    sl_position *committed; /* last committed position per partition (topic strdup'd) */
    size_t ncommitted;
    sl_position *owned; /* partitions the source owns now (status "assigned"; topic strdup'd) */
    size_t nowned;
    int done;             /* the source is exhausted */
    int64_t last_commit;
    uint32_t seq;         /* one per process call, for the dropped count */
    ack_partition *last_part; /* the source's last partition: most records hit it again */
    int64_t wave_now;     /* wall clock for this wave's ingest timestamps; 0 = not read yet */
};

/* cJSON allocates through process-wide hooks. A task thread points them at its own arena, so
 * parsing a record costs bump allocations and a whole batch's trees go away with one arena
 * reset instead of ~35 free() calls per record; other threads keep using malloc. */
static __thread sl_arena *json_arena;

static void *json_malloc(size_t n) { return json_arena ? arena_alloc(json_arena, n) : malloc(n); }

static void json_free(void *p)
{
    if (p && !(json_arena && arena_owns(json_arena, p))) free(p);
}

static atomic_int stop_requested;
static atomic_int pause_requested; /* set from the supervisor's control pipe */
static int control_fd = -1;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[512]; /* the first error-level log line, for the status line */
static task *tasks;
static int ntasks;

void runtime_request_stop(void) { atomic_store(&stop_requested, 1); }

/* ---- record vectors and the record slab ---------------------------------------------- */

static void vec_push(recvec *v, sl_record *r)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->v = xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = r;
}

static hrec *hrec_new(task *t)
{
    if (!t->slab_head || t->slab_head->used == SLAB_CHUNK) {
        slab_chunk *c = t->slab_free;
        if (c) t->slab_free = c->next;
        else c = xmalloc(sizeof *c);
        c->used = 0;
        c->next = t->slab_head;
        t->slab_head = c;
    }
    hrec *h = &t->slab_head->recs[t->slab_head->used++];
    memset(h, 0, sizeof *h);
    h->magic = HREC_MAGIC;
    return h;
}

/* Is `r` one of this wave's host records (as opposed to one a stage built)? The slab chunks
 * bound every host record, so a pointer test suffices. */
static hrec *as_hrec(task *t, const sl_record *r)
{
    for (slab_chunk *c = t->slab_head; c; c = c->next) {
        const char *lo = (const char *)&c->recs[0], *hi = (const char *)&c->recs[c->used];
        if ((const char *)r >= lo && (const char *)r < hi &&
            ((size_t)((const char *)r - lo)) % sizeof(hrec) == 0) {
            hrec *h = (hrec *)r;
            return h->magic == HREC_MAGIC ? h : NULL;
        }
    }
    return NULL;
}

/* End of a wave: recycle the record slab and the arena (records, parsed JSON, values). */
static void wave_end(task *t)
{
    for (slab_chunk *c = t->slab_head, *n; c; c = n) {
        n = c->next;
        c->next = t->slab_free;
        t->slab_free = c;
    }
    t->slab_head = NULL;
    arena_reset(&t->arena);
    t->wave_now = 0;
}

/* Copies a stage-built record into a host record of this wave. */
static hrec *copy_record(task *t, const sl_record *src, sl_ack *ack)
{
    hrec *h = hrec_new(t);
    sl_record *r = &h->r;
    r->key = src->key_len ? arena_memdup(&t->arena, src->key, src->key_len) : NULL;
    r->key_len = src->key_len;
    r->value = arena_memdup(&t->arena, src->value ? src->value : "", src->value_len);
    r->value_len = src->value_len;
    if (src->n_headers) {
        sl_header *hd = arena_alloc(&t->arena, src->n_headers * sizeof *hd);
        for (size_t i = 0; i < src->n_headers; i++) {
            hd[i].name = arena_strdup(&t->arena, src->headers[i].name ? src->headers[i].name : "");
            hd[i].value = arena_memdup(&t->arena, src->headers[i].value ? src->headers[i].value : "",
                                       src->headers[i].value_len);
            hd[i].value_len = src->headers[i].value_len;
        }
        r->headers = hd;
        r->n_headers = src->n_headers;
    }
    r->timestamp_ms = src->timestamp_ms;
    r->topic = arena_strdup(&t->arena, src->topic);
    r->partition = src->partition;
    r->offset = src->offset;
    r->ack = ack;
    return h;
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void materialize(hrec *h)
{
    if (!h->dirty) return;
    char *s = cJSON_PrintUnformatted(h->json); /* in the task arena, like the tree */
    if (!s) return; /* out of memory: the old bytes stay, which is the lesser evil */
    h->r.value = s;
    h->r.value_len = strlen(s);
    h->dirty = 0;
}

static sl_json *api_json(sl_ctx *ctx, const sl_record *rec, const char **err)
{
    task *t = ctx->task;
    hrec *h = as_hrec(t, rec);
    if (h && h->json_state == 1) return (sl_json *)h->json;
    if (h && h->json_state == 2) {
        if (err) *err = "value is not valid JSON";
        return NULL;
    }
    cJSON *j = NULL;
    if (rec->value_len) {
        /* cJSON stops at the end of the first value; anything but whitespace after it makes
         * the record malformed ("{} trailing" is not JSON). */
        const char *end = NULL, *v = rec->value;
        j = cJSON_ParseWithLengthOpts(v, rec->value_len, &end, 0);
        while (j && end < v + rec->value_len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (j && end != v + rec->value_len) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    if (h) {
        h->json_state = j ? 1 : 2;
        h->json = j;
    }
    /* A stage-built record's tree lives in the arena until the wave ends, like any other. */
    if (!j && err) *err = rec->value_len ? "value is not valid JSON" : "value is empty";
    return (sl_json *)j;
}

static sl_json *api_json_get(const sl_json *obj, const char *key)
{
    const cJSON *o = (const cJSON *)obj;
    if (!o || !cJSON_IsObject(o)) return NULL;
    return (sl_json *)cJSON_GetObjectItemCaseSensitive(o, key);
}

static sl_json_type api_json_type(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    if (!j) return SL_JSON_INVALID;
    switch (j->type & 0xff) {
    case cJSON_NULL: return SL_JSON_NULL;
    case cJSON_True:
    case cJSON_False: return SL_JSON_BOOL;
    case cJSON_Number: return SL_JSON_NUMBER;
    case cJSON_String: return SL_JSON_STRING;
    case cJSON_Array: return SL_JSON_ARRAY;
    case cJSON_Object: return SL_JSON_OBJECT;
    default: return SL_JSON_INVALID;
    }
}

static const char *api_json_string(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j && cJSON_IsString(j) ? j->valuestring : NULL;
}

static double api_json_number(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    if (j && cJSON_IsNumber(j)) return j->valuedouble;
    if (j && cJSON_IsBool(j)) return cJSON_IsTrue(j) ? 1 : 0;
    return NAN;
}

static size_t api_json_size(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j && (cJSON_IsArray(j) || cJSON_IsObject(j)) ? (size_t)cJSON_GetArraySize(j) : 0;
}

static sl_json *api_json_at(const sl_json *node, size_t i)
{
    const cJSON *j = (const cJSON *)node;
    if (!j || !(cJSON_IsArray(j) || cJSON_IsObject(j)) || i > INT32_MAX) return NULL;
    return (sl_json *)cJSON_GetArrayItem(j, (int)i);
}

static sl_json *api_json_next(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j ? (sl_json *)j->next : NULL;
}

static const char *api_json_key(const sl_json *node)
{
    const cJSON *j = (const cJSON *)node;
    return j ? j->string : NULL;
}

static sl_err json_set(sl_ctx *ctx, const sl_record *rec, const char *key, cJSON *item)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!item) return SL_ENOMEM;
    if (!h) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    if (!h->json_state) api_json(ctx, rec, NULL);
    if (h->json_state != 1 || !cJSON_IsObject(h->json)) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(h->json, key))
        cJSON_ReplaceItemInObjectCaseSensitive(h->json, key, item);
    else
        cJSON_AddItemToObject(h->json, key, item);
    h->dirty = 1;
    return SL_OK;
}

static sl_err api_json_set_string(sl_ctx *ctx, const sl_record *rec, const char *key, const char *v)
{
    return json_set(ctx, rec, key, cJSON_CreateString(v));
}

static sl_err api_json_set_number(sl_ctx *ctx, const sl_record *rec, const char *key, double v)
{
    if (!isfinite(v)) return SL_EINVAL;
    return json_set(ctx, rec, key, cJSON_CreateNumber(v));
}

static sl_err api_json_set_bool(sl_ctx *ctx, const sl_record *rec, const char *key, int v)
{
    return json_set(ctx, rec, key, cJSON_CreateBool(v != 0));
}

static sl_err api_json_set_null(sl_ctx *ctx, const sl_record *rec, const char *key)
{
    return json_set(ctx, rec, key, cJSON_CreateNull());
}

static const void *api_value(sl_ctx *ctx, const sl_record *rec, size_t *len)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (h) materialize(h);
    if (len) *len = rec->value_len;
    return rec->value;
}

static sl_err api_set_topic(sl_ctx *ctx, const sl_record *rec, const char *topic)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h) return SL_EINVAL;
    h->r.topic = arena_strdup(&ctx->task->arena, topic);
    return SL_OK;
}

/* ---- logging and metrics ---------------------------------------------------------------- */

static void note_error(const char *stage, const char *fmt, va_list ap);

static void api_log(sl_ctx *ctx, sl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, ctx->task->cfg->name, ctx->task->index, ctx->st->cfg->name, fmt, ap);
    va_end(ap);
    if (level == SL_LOG_ERROR) {
        va_start(ap, fmt);
        note_error(ctx->st->cfg->name, fmt, ap);
        va_end(ap);
    }
}

static void api_count(sl_ctx *ctx, const char *name, uint64_t n)
{
    stage_inst *s = ctx->st;
    pthread_mutex_lock(&s->mlock);
    size_t i = 0;
    while (i < s->ncounters && strcmp(s->counters[i].name, name) != 0) i++;
    if (i == s->ncounters) {
        s->counters = xrealloc(s->counters, (s->ncounters + 1) * sizeof *s->counters);
        s->counters[i].name = xstrdup(name);
        atomic_init(&s->counters[i].value, 0);
        s->ncounters++;
    }
    atomic_fetch_add(&s->counters[i].value, n);
    pthread_mutex_unlock(&s->mlock);
}

static void hist_add(histogram *h, double v)
{
    size_t b = 0;
    while (b < NBUCKETS && v > bucket_bounds[b]) b++;
    h->buckets[b]++;
    h->count++;
    h->sum += v;
}

/* Keeps the first error-level message, usually the cause (later ones tend to be consequences
 * such as "init failed"), so the supervisor can show why a pipeline failed. */
static void note_error(const char *stage, const char *fmt, va_list ap)
{
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&error_lock);
    if (!last_error[0]) snprintf(last_error, sizeof last_error, "%s%s%s", stage ? stage : "", stage ? ": " : "", msg);
    pthread_mutex_unlock(&error_lock);
}

void runtime_set_control_fd(int fd)
{
    control_fd = fd;
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void api_observe(sl_ctx *ctx, const char *name, double v)
{
    stage_inst *s = ctx->st;
    pthread_mutex_lock(&s->mlock);
    size_t i = 0;
    while (i < s->nhists && strcmp(s->hists[i].name, name) != 0) i++;
    if (i == s->nhists) {
        s->hists = xrealloc(s->hists, (s->nhists + 1) * sizeof *s->hists);
        memset(&s->hists[i], 0, sizeof s->hists[i]);
        s->hists[i].name = xstrdup(name);
        s->nhists++;
    }
    hist_add(&s->hists[i], v);
    pthread_mutex_unlock(&s->mlock);
}

static void tlog(task *t, stage_inst *s, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void tlog(task *t, stage_inst *s, sl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, t->cfg->name, t->index, s ? s->cfg->name : NULL, fmt, ap);
    va_end(ap);
    if (level == SL_LOG_ERROR) {
        va_start(ap, fmt);
        note_error(s ? s->cfg->name : NULL, fmt, ap);
        va_end(ap);
    }
}

/* ---- emit, hold, reject ----------------------------------------------------------------- */

static sl_err api_emit(sl_ctx *ctx, const sl_record *rec)
{
    task *t = ctx->task;
    stage_inst *s = ctx->st;
    if (!rec || s->d->kind == SL_KIND_SINK || !t->target) return SL_EINVAL;
    hrec *h;
    if (s->d->kind == SL_KIND_SOURCE) {
        /* Every source record gets a position token, so the commit can never pass it. */
        ack_partition *p = t->last_part;
        if (!p || !ack_partition_is(p, rec->topic, rec->partition))
            p = t->last_part = ack_partition_get(&t->acks, rec->topic, rec->partition);
        h = copy_record(t, rec, ack_new(p, rec->offset));
        if (!h->r.timestamp_ms) {
            /* Ingest time, read once per batch: a clock call per record shows in profiles. */
            if (!t->wave_now) t->wave_now = sl_now_ms();
            h->r.timestamp_ms = t->wave_now;
        }
    } else if ((h = as_hrec(t, rec))) {
        ack_retain(h->r.ack); /* forwarded as is: one more reference for the next stage */
        h->mark = t->seq;
    } else {
        ack_retain(rec->ack);
        h = copy_record(t, rec, rec->ack);
    }
    vec_push(t->target, &h->r);
    atomic_fetch_add_explicit(&s->out, 1, memory_order_relaxed);
    return SL_OK;
}

static sl_ack *api_hold(sl_ctx *ctx, const sl_record *rec)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (h) h->mark = ctx->task->seq;
    if (!rec->ack) return ack_group_new(&ctx->task->acks); /* nothing to hold: an empty token */
    ack_retain(rec->ack);
    return rec->ack;
}

static void api_release(sl_ack *a) { ack_release(a); }

static sl_ack *api_ack_group(sl_ctx *ctx) { return ack_group_new(&ctx->task->acks); }

static void api_ack_group_add(sl_ack *g, sl_ack *m) { ack_group_add(g, m); }

static void api_reject(sl_ctx *ctx, const sl_record *rec, const char *reason)
{
    task *t = ctx->task;
    stage_inst *s = ctx->st;
    atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    if (!reason) reason = "rejected";
    if (!t->dlq || s == t->dlq)
        tlog(t, s, SL_LOG_WARN, t->dlq ? "dead-letter sink rejected a record, dropping it: %s"
                                       : "record rejected (no dead_letter configured, dropped): %s",
             reason);
    hrec *h = as_hrec(t, rec);
    if (h) {
        materialize(h);
        h->mark = t->seq;
    }
    sl_ack *ack = NULL;
    if (s->d->kind == SL_KIND_SOURCE) {
        ack_partition *p = ack_partition_get(&t->acks, rec->topic, rec->partition);
        ack = ack_new(p, rec->offset);
    } else {
        ack = rec->ack;
        ack_retain(ack);
    }
    if (!t->dlq || s == t->dlq) {
        ack_release(ack); /* logged above; the record is finished */
        return;
    }
    /* The dead letter carries the original record plus two headers saying who and why. */
    sl_header *hd = arena_alloc(&t->arena, (rec->n_headers + 2) * sizeof *hd);
    if (rec->n_headers) memcpy(hd, rec->headers, rec->n_headers * sizeof *hd);
    hd[rec->n_headers] = (sl_header){"sluice.error.stage", s->cfg->name, strlen(s->cfg->name)};
    hd[rec->n_headers + 1] = (sl_header){"sluice.error.reason", reason, strlen(reason)};
    sl_record copy = *rec;
    copy.headers = hd;
    copy.n_headers = rec->n_headers + 2;
    hrec *d = copy_record(t, &copy, ack);
    vec_push(&t->dlq_pending, &d->r);
}

static int64_t api_now_ms(sl_ctx *ctx) { (void)ctx; return sl_now_ms(); }
static int64_t api_monotonic_ms(sl_ctx *ctx) { (void)ctx; return sl_monotonic_ms(); }
static const char *api_pipeline_name(sl_ctx *ctx) { return ctx->task->cfg->name; }
static const char *api_stage_name(sl_ctx *ctx) { return ctx->st->cfg->name; }
static int api_task_index(sl_ctx *ctx) { return ctx->task->index; }
static const char *api_config_dir(sl_ctx *ctx) { return ctx->task->cfg->dir; }

static void api_partitions_assigned(sl_ctx *ctx, sl_position *parts, size_t n);
static void api_partitions_revoked(sl_ctx *ctx, const sl_position *parts, size_t n);
static void api_restore(sl_ctx *ctx, const sl_record *recs, size_t n);

const sl_api sl_host_api = {
    .struct_size = sizeof(sl_api),
    .abi_minor = SL_ABI_MINOR,
    .log = api_log,
    .count = api_count,
    .observe = api_observe,
    .emit = api_emit,
    .hold = api_hold,
    .release = api_release,
    .reject = api_reject,
    .ack_group = api_ack_group,
    .ack_group_add = api_ack_group_add,
    .now_ms = api_now_ms,
    .monotonic_ms = api_monotonic_ms,
    .json = api_json,
    .json_get = api_json_get,
    .json_type = api_json_type,
    .json_string = api_json_string,
    .json_number = api_json_number,
    .json_size = api_json_size,
    .json_at = api_json_at,
    .json_key = api_json_key,
    .json_set_string = api_json_set_string,
    .json_set_number = api_json_set_number,
    .json_set_null = api_json_set_null,
    .value = api_value,
    .set_topic = api_set_topic,
    .partitions_assigned = api_partitions_assigned,
    .partitions_revoked = api_partitions_revoked,
    .pipeline_name = api_pipeline_name,
    .stage_name = api_stage_name,
    .task_index = api_task_index,
    .config_dir = api_config_dir,
    .parse_duration = sl_parse_duration,
    .parse_size = sl_parse_size,
    .restore = api_restore,
    .json_set_bool = api_json_set_bool,
    .json_next = api_json_next,
};

/* ---- running the chain -------------------------------------------------------------------- */

static int stopping(const task *t) { return atomic_load(&stop_requested) || t->failed; }

/* Hands `in` to stage `s`, collecting what it emits in `out` (NULL for sinks). On success the
 * batch's own references on the inputs are dropped; a record the stage neither forwarded, held
 * nor rejected is then finished. On failure they are kept: the positions stay uncommitted and
 * the records are redelivered after a restart. */
static int run_stage(task *t, stage_inst *s, recvec *in, recvec *out)
{
    if (!in->n) return 0;
    if (!(s->d->flags & SL_STAGE_JSON_ONLY))
        for (size_t i = 0; i < in->n; i++) {
            hrec *h = (hrec *)in->v[i];
            if (h->dirty) materialize(h);
        }
    atomic_fetch_add_explicit(&s->in, in->n, memory_order_relaxed);
    sl_batch b = {in->v, in->n};
    size_t mark = out ? out->n : 0;
    int64_t backoff = 100;
    recvec *saved = t->target;
    for (int attempt = 0;; attempt++) {
        t->seq++;
        t->target = out;
        int64_t t0 = sl_monotonic_ms();
        sl_err rc = s->d->process(s->self, &s->ctx, &b);
        t->target = saved;
        if (rc == SL_OK) {
            double secs = (double)(sl_monotonic_ms() - t0) / 1000.0;
            pthread_mutex_lock(&s->mlock);
            hist_add(&s->batch, secs);
            pthread_mutex_unlock(&s->mlock);
            if (s->index >= 0 && (size_t)s->index + 1 == t->nstages) {
                /* End-to-end latency: record timestamp to the sink's return. */
                int64_t now = sl_now_ms();
                pthread_mutex_lock(&t->slock);
                for (size_t i = 0; i < in->n; i++)
                    hist_add(&t->e2e, (double)(now - in->v[i]->timestamp_ms) / 1000.0);
                pthread_mutex_unlock(&t->slock);
            }
            break;
        }
        for (size_t i = mark; out && i < out->n; i++) ack_release(out->v[i]->ack);
        if (out) {
            atomic_fetch_sub_explicit(&s->out, out->n - mark, memory_order_relaxed);
            out->n = mark;
        }
        if (rc == SL_RETRY && !stopping(t)) {
            atomic_fetch_add_explicit(&s->retries, 1, memory_order_relaxed);
            if (attempt == 0 || backoff >= 5000)
                tlog(t, s, SL_LOG_WARN, "batch of %zu records failed transiently; retrying (backoff %lld ms)",
                     in->n, (long long)backoff);
            sl_sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        if (rc == SL_RETRY) {
            tlog(t, s, SL_LOG_WARN, "stopping while the stage retries; %zu records stay uncommitted", in->n);
        } else {
            tlog(t, s, SL_LOG_ERROR, "stage failed: %s; the pipeline stops", sl_strerror(rc));
        }
        t->failed = 1;
        return -1;
    }
    uint64_t dropped = 0;
    for (size_t i = 0; i < in->n; i++) {
        dropped += ((hrec *)in->v[i])->mark != t->seq;
        ack_release(in->v[i]->ack);
    }
    if (s->d->kind == SL_KIND_TRANSFORM)
        atomic_fetch_add_explicit(&s->dropped, dropped, memory_order_relaxed);
    return 0;
}

static void run_dead_letters(task *t)
{
    while (t->dlq_pending.n && !t->failed) {
        recvec v = t->dlq_pending;
        t->dlq_pending = (recvec){0};
        run_stage(t, t->dlq, &v, NULL);
        free(v.v);
    }
}

/* Runs `in` through stages[from..] and then the dead letters. A wave ends (arena and slab
 * recycled) when the outermost run returns. */
static int run_chain(task *t, size_t from, recvec *in)
{
    int rc = 0;
    t->depth++;
    recvec a = *in, b = {0};
    int owns_a = 0;
    for (size_t i = from; i < t->nstages && a.n; i++) {
        b.n = 0;
        int last = i + 1 == t->nstages;
        rc = run_stage(t, &t->stages[i], &a, last ? NULL : &b);
        if (rc) break;
        if (!last) {
            recvec tmp = a;
            a = b;
            b = owns_a ? tmp : (recvec){0};
            owns_a = 1;
        }
    }
    if (owns_a) free(a.v);
    free(b.v);
    if (!rc) run_dead_letters(t);
    if (--t->depth == 0) wave_end(t);
    return rc;
}

static void flush_all(task *t, int final)
{
    for (size_t i = 0; i <= t->nstages && !t->failed; i++) {
        stage_inst *s = i < t->nstages ? &t->stages[i] : t->dlq;
        if (!s || !s->d->flush) continue;
        recvec v = {0};
        recvec *saved = t->target;
        t->target = s->d->kind == SL_KIND_SINK ? NULL : &v;
        sl_err rc = s->d->flush(s->self, &s->ctx, final);
        t->target = saved;
        if (rc == SL_FATAL || rc == SL_ENOMEM) {
            tlog(t, s, SL_LOG_ERROR, "flush failed: %s; the pipeline stops", sl_strerror(rc));
            t->failed = 1;
        }
        if (v.n || t->dlq_pending.n) run_chain(t, i < t->nstages ? i + 1 : t->nstages, &v);
        free(v.v);
    }
}

/* Keeps the last committed position per partition for the status line (GET .../offsets). */
static void remember_commits(task *t, const sl_position *pos, size_t n)
{
    pthread_mutex_lock(&t->slock);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < t->ncommitted && !(t->committed[j].partition == pos[i].partition &&
                                      !strcmp(t->committed[j].topic, pos[i].topic ? pos[i].topic : "")))
            j++;
        if (j == t->ncommitted) {
            t->committed = xrealloc(t->committed, (j + 1) * sizeof *t->committed);
            t->committed[j] = (sl_position){xstrdup(pos[i].topic ? pos[i].topic : ""), pos[i].partition, -1};
            t->ncommitted++;
        }
        t->committed[j].offset = pos[i].offset;
    }
    pthread_mutex_unlock(&t->slock);
}

static void commit(task *t)
{
    stage_inst *src = &t->stages[0];
    sl_position pos[64];
    size_t n;
    while ((n = ack_take_commits(&t->acks, pos, 64)) > 0) {
        if (!src->d->commit) continue;
        for (int attempt = 0; attempt < 5; attempt++) {
            sl_err rc = src->d->commit(src->self, &src->ctx, pos, n);
            if (rc == SL_OK) {
                remember_commits(t, pos, n);
                break;
            }
            tlog(t, src, SL_LOG_WARN, "commit failed: %s%s", sl_strerror(rc), attempt < 4 ? "; retrying" : "");
            sl_sleep_ms(200);
        }
    }
    t->last_commit = sl_monotonic_ms();
}

/* Flushes until every record that entered is finished (or the bound passes): what is still
 * unfinished then is simply not committed, and is redelivered next time. */
static void drain(task *t, int64_t timeout_ms)
{
    flush_all(t, 1);
    int64_t deadline = sl_monotonic_ms() + timeout_ms;
    while (!t->failed && ack_pending(&t->acks) > 0 && sl_monotonic_ms() < deadline) {
        sl_sleep_ms(10);
        flush_all(t, 1);
    }
    long left = ack_pending(&t->acks);
    if (left > 0)
        tlog(t, NULL, SL_LOG_WARN, "%ld records unfinished when draining; they stay uncommitted and will be redelivered", left);
    commit(t);
}

/* The partitions a task owns now, for the status line: what a host of a consumer group
 * holds (REST, and the autoscaler's cap: no more tasks than partitions). */
static void track_owned(task *t, const sl_position *parts, size_t n, int add)
{
    pthread_mutex_lock(&t->slock);
    for (size_t i = 0; i < n; i++) {
        const char *topic = parts[i].topic ? parts[i].topic : "";
        size_t j = 0;
        while (j < t->nowned && !(t->owned[j].partition == parts[i].partition && !strcmp(t->owned[j].topic, topic))) j++;
        if (add && j == t->nowned) {
            t->owned = xrealloc(t->owned, (j + 1) * sizeof *t->owned);
            t->owned[t->nowned++] = (sl_position){xstrdup(topic), parts[i].partition, -1};
        } else if (!add && j < t->nowned) {
            free((char *)t->owned[j].topic);
            t->owned[j] = t->owned[--t->nowned];
        }
    }
    pthread_mutex_unlock(&t->slock);
}

static void api_partitions_assigned(sl_ctx *ctx, sl_position *parts, size_t n)
{
    task *t = ctx->task;
    track_owned(t, parts, n, 1);
    for (size_t i = 1; i <= t->nstages; i++) {
        stage_inst *s = i < t->nstages ? &t->stages[i] : t->dlq;
        /* A stage that cannot set up (restore) its partition state must not go on without
         * it: results would be silently wrong. Stop; the supervisor restarts the pipeline. */
        sl_err rc = s && s->d->on_assign ? s->d->on_assign(s->self, &s->ctx, parts, n) : SL_OK;
        if (rc != SL_OK) {
            tlog(t, s, SL_LOG_ERROR, "on_assign failed for %zu partitions: %s; the pipeline stops", n, sl_strerror(rc));
            t->failed = 1;
        }
    }
}

/* A stage hands back durable state: every stage before it may rebuild from it. */
static void api_restore(sl_ctx *ctx, const sl_record *recs, size_t n)
{
    task *t = ctx->task;
    if (!n) return;
    sl_record **v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (sl_record *)&recs[i];
    sl_batch b = {v, n};
    int upto = ctx->st->index < 0 ? (int)t->nstages : ctx->st->index;
    for (int i = 0; i < upto; i++) {
        stage_inst *s = &t->stages[i];
        if (s->d->on_restore && s->d->on_restore(s->self, &s->ctx, &b) != SL_OK)
            tlog(t, s, SL_LOG_WARN, "on_restore failed for %zu state records", n);
    }
    free(v);
}

static void api_partitions_revoked(sl_ctx *ctx, const sl_position *parts, size_t n)
{
    task *t = ctx->task;
    track_owned(t, parts, n, 0);
    /* Finish what the source produced so far, make it durable and commit, so the next owner of
     * these partitions starts right after what we finished. */
    recvec *src = t->target;
    if (src && src->n) {
        recvec copy = *src;
        t->target = NULL;
        run_chain(t, 1, &copy);
        src->n = 0;
        t->target = src;
    }
    recvec *saved = t->target;
    drain(t, DRAIN_TIMEOUT_MS);
    t->target = saved;
    for (size_t i = 1; i <= t->nstages; i++) {
        stage_inst *s = i < t->nstages ? &t->stages[i] : t->dlq;
        if (s && s->d->on_revoke) s->d->on_revoke(s->self, &s->ctx, parts, n);
    }
}

static void *task_main(void *arg)
{
    task *t = arg;
    json_arena = &t->arena;
    stage_inst *src = &t->stages[0];
    int64_t last_tick = sl_monotonic_ms(), backoff = 100;
    while (!stopping(t) && !t->done) {
        int want_pause = atomic_load(&pause_requested);
        if (want_pause != t->paused) {
            /* A source that can pause keeps being polled (a Kafka consumer must poll to stay
             * in its group); one that cannot is simply not polled while paused. */
            t->paused = want_pause;
            sl_err (*fn)(void *, sl_ctx *) = want_pause ? src->d->pause : src->d->resume;
            if (fn && fn(src->self, &src->ctx) != SL_OK)
                tlog(t, src, SL_LOG_WARN, "%s failed", want_pause ? "pause" : "resume");
            tlog(t, NULL, SL_LOG_INFO, "%s", want_pause ? "paused" : "resumed");
        }
        if (t->paused && !src->d->pause) {
            flush_all(t, 0);
            if (sl_monotonic_ms() - t->last_commit >= t->cfg->commit_interval_ms) commit(t);
            sl_sleep_ms(TICK_MS);
            continue;
        }
        recvec out = {0};
        t->target = &out;
        sl_err rc = src->d->poll(src->self, &src->ctx, (size_t)t->cfg->batch_size, TICK_MS);
        t->target = NULL;
        if (out.n || t->dlq_pending.n) run_chain(t, 1, &out);
        else wave_end(t);
        int got = out.n > 0;
        free(out.v);
        if (rc == SL_DONE) {
            t->done = 1;
        } else if (rc == SL_RETRY) {
            tlog(t, src, SL_LOG_WARN, "poll failed transiently; retrying in %lld ms", (long long)backoff);
            sl_sleep_ms(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else if (rc != SL_OK) {
            tlog(t, src, SL_LOG_ERROR, "poll failed: %s; the pipeline stops", sl_strerror(rc));
            t->failed = 1;
        } else {
            backoff = 100;
        }
        int64_t now = sl_monotonic_ms();
        if (!got || now - last_tick >= TICK_MS) {
            flush_all(t, 0);
            last_tick = now;
        }
        if (now - t->last_commit >= t->cfg->commit_interval_ms) commit(t);
    }
    drain(t, t->failed ? 0 : DRAIN_TIMEOUT_MS);
    if (t->failed) atomic_store(&stop_requested, 1); /* one failed task stops the pipeline */
    json_arena = NULL;
    return NULL;
}

/* ---- setup, status, teardown ------------------------------------------------------------ */

static int stage_setup(task *t, stage_inst *s, stage_cfg *cfg, int index)
{
    s->cfg = cfg;
    s->d = cfg->plugin->desc;
    s->index = index;
    s->ctx.task = t;
    s->ctx.st = s;
    pthread_mutex_init(&s->mlock, NULL);
    sl_err rc = s->d->init(&s->ctx, &sl_host_api, cfg->config, &s->self);
    if (rc != SL_OK) {
        tlog(t, s, SL_LOG_ERROR, "init failed: %s", sl_strerror(rc));
        return rc == SL_ECONFIG ? SL_EXIT_CONFIG : SL_EXIT_RUNTIME;
    }
    s->initialised = 1;
    return 0;
}

static void stage_teardown(stage_inst *s)
{
    if (s->initialised && s->d->close) s->d->close(s->self, &s->ctx);
    s->initialised = 0;
    for (size_t i = 0; i < s->ncounters; i++) free(s->counters[i].name);
    for (size_t i = 0; i < s->nhists; i++) free(s->hists[i].name);
    free(s->counters);
    free(s->hists);
    pthread_mutex_destroy(&s->mlock);
}

static void task_free(task *t)
{
    for (size_t i = 0; i < t->ncommitted; i++) free((char *)t->committed[i].topic);
    for (size_t i = 0; i < t->nowned; i++) free((char *)t->owned[i].topic);
    free(t->owned);
    free(t->committed);
    pthread_mutex_destroy(&t->slock);
    for (size_t i = 0; i < t->nstages; i++) stage_teardown(&t->stages[i]);
    if (t->dlq) stage_teardown(t->dlq);
    free(t->stages);
    free(t->dlq);
    wave_end(t);
    for (slab_chunk *c = t->slab_free, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(t->dlq_pending.v);
    arena_free(&t->arena);
    ack_tracker_destroy(&t->acks);
}

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

/* One JSON line per call: what the supervisor keeps and serves as status and metrics.
 * Stage totals are summed over tasks; "per_task" holds [in, out, rejected, dropped] per task;
 * histograms are summed over tasks; "offsets" are the last committed positions. */
static void write_status(pipeline_cfg *cfg, int fd, const char *state)
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
static void write_failure(pipeline_cfg *cfg, int fd)
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

/* The supervisor's control pipe: 'P' pauses the source, 'R' resumes it (latest wins). */
static void read_control(void)
{
    char c[64];
    ssize_t r = -1;
    while (control_fd >= 0 && (r = read(control_fd, c, sizeof c)) > 0)
        for (ssize_t i = 0; i < r; i++)
            if (c[i] == 'P' || c[i] == 'R') atomic_store(&pause_requested, c[i] == 'P');
    if (control_fd >= 0 && r == 0) control_fd = -1; /* the supervisor is gone */
}

static void on_signal(int sig)
{
    (void)sig;
    runtime_request_stop();
}

int runtime_run(pipeline_cfg *cfg, int status_fd)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atomic_store(&stop_requested, 0);

    /* Set by the supervisor for its children: the task count (autoscaling moves it within
     * tasks: {min, max}) and the control pipe (pause/resume). */
    const char *nt = getenv("SLUICE_TASKS"), *ctl = getenv("SLUICE_CONTROL_FD");
    static cJSON_Hooks hooks = {json_malloc, json_free};
    cJSON_InitHooks(&hooks);
    ntasks = cfg->tasks_min;
    if (nt && atoi(nt) > cfg->tasks_min && atoi(nt) <= cfg->tasks_max) ntasks = atoi(nt);
    if (ctl && control_fd < 0) runtime_set_control_fd(atoi(ctl));
    tasks = xcalloc((size_t)ntasks, sizeof *tasks);
    int rc = 0;
    for (int k = 0; k < ntasks && !rc; k++) {
        task *t = &tasks[k];
        t->cfg = cfg;
        t->index = k;
        pthread_mutex_init(&t->slock, NULL);
        ack_tracker_init(&t->acks);
        t->nstages = cfg->nstages;
        t->stages = xcalloc(cfg->nstages, sizeof *t->stages);
        t->last_commit = sl_monotonic_ms();
        for (size_t i = 0; i < cfg->nstages && !rc; i++) rc = stage_setup(t, &t->stages[i], &cfg->stages[i], (int)i);
        if (!rc && cfg->dead_letter) {
            t->dlq = xcalloc(1, sizeof *t->dlq);
            rc = stage_setup(t, t->dlq, cfg->dead_letter, -1);
        }
    }
    if (!rc) {
        sl_log(SL_LOG_INFO, NULL, "pipeline started: %zu stages, %d task%s", cfg->nstages, ntasks, ntasks == 1 ? "" : "s");
        read_control(); /* a pipeline started paused is paused before its first poll */
        for (int k = 0; k < ntasks; k++) pthread_create(&tasks[k].thread, NULL, task_main, &tasks[k]);
        if (status_fd >= 0) write_status(cfg, status_fd, "RUNNING");
        for (int k = 0; k < ntasks; k++) {
            /* Status once a second while the tasks run. */
            int joined = 0;
            while (!joined) {
                for (int i = 0; i < 20 && !joined; i++) {
                    joined = pthread_tryjoin_np(tasks[k].thread, NULL) == 0;
                    if (!joined) sl_sleep_ms(50);
                    read_control();
                }
                if (!joined && status_fd >= 0) write_status(cfg, status_fd, "RUNNING");
            }
        }
        for (int k = 0; k < ntasks; k++)
            if (tasks[k].failed) rc = SL_EXIT_RUNTIME;
        if (status_fd >= 0) write_status(cfg, status_fd, rc ? "FAILED" : "STOPPED");
        uint64_t in = 0, out = 0;
        for (int k = 0; k < ntasks; k++) {
            in += atomic_load(&tasks[k].stages[0].out);
            out += atomic_load(&tasks[k].stages[cfg->nstages - 1].in);
        }
        sl_log(rc ? SL_LOG_ERROR : SL_LOG_INFO, NULL, "pipeline %s: %llu records read, %llu reached the sink",
               rc ? "failed" : "finished", (unsigned long long)in, (unsigned long long)out);
    } else if (status_fd >= 0) {
        write_failure(cfg, status_fd); /* a stage refused to start: say why */
    }
    for (int k = 0; k < ntasks; k++) task_free(&tasks[k]);
    free(tasks);
    tasks = NULL;
    return rc;
}
