/* testrun_harness.c — the stages under test, driven in process for `sluice test`.
 *
 * The seam is the task of runtime.c: a task whose stages[0] is a feeder (a source built into
 * the host that emits the case's records) and whose last stage and dead-letter sink are a
 * collector (a sink that copies what reaches it; the dead letter's too when the pipeline has one). Between them are the pipeline's own stage
 * configs and real plugins, set up by runtime.c's task_init and driven by chain.c's
 * run_chain / flush_all exactly as task_main drives them — but synchronously, from this thread,
 * with no timer: time only moves when the case says so. Stages get a copy of the host API
 * whose now_ms and monotonic_ms read that virtual clock (runtime_stage_api), so a window that
 * closes on emit_interval or a TTL closes on `advance`, not on the machine's speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime_int.h"
#include "testrun.h"

struct tr_harness {
    task t;
    pipeline_cfg run; /* a shallow copy of the pipeline with its stage list replaced */
    stage_cfg *stages;
    stage_cfg dlq;
    const tr_rec *feed;
    size_t nfeed, fpos;
    sl_position *parts; /* a partition change the feeder announces at its next poll */
    size_t nparts;
    int revoke;
    const tr_rec *restore; /* state the collector hands back (api->restore) on assignment */
    size_t nrestore;
    tr_recs out, dead;
};

/* The virtual clock: one case at a time, in this thread. */
static int64_t v_now, v_mono;
static int64_t v_now_ms(sl_ctx *ctx) { (void)ctx; return v_now; }
static int64_t v_monotonic_ms(sl_ctx *ctx) { (void)ctx; return v_mono; }
static sl_api virtual_api;
static tr_harness *starting; /* the harness whose stages are being initialised */
static tr_harness *current;  /* the harness being driven */

void tr_recs_free(tr_recs *r)
{
    for (size_t i = 0; i < r->n; i++) {
        tr_rec *x = &r->v[i];
        free(x->key);
        free(x->value);
        for (size_t j = 0; j < x->nh; j++) {
            free(x->hname[j]);
            free(x->hval[j]);
        }
        free(x->hname);
        free(x->hval);
        free(x->hlen);
        free(x->topic);
        free(x->stage);
        free(x->reason);
    }
    free(r->v);
    *r = (tr_recs){0};
}

tr_rec *tr_recs_push(tr_recs *r)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    tr_rec *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static char *memdup0(const void *p, size_t n)
{
    char *s = xmalloc(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* ---- the feeder (source) and the collector (sink, dead letter) ----------------------------- */

static sl_err feeder_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)ctx, (void)api, (void)config;
    *self = starting;
    return SL_OK;
}

/* A tr_rec as a record; hd holds up to 64 headers. */
static sl_record as_record(const tr_rec *x, sl_header *hd)
{
    size_t nh = x->nh < 64 ? x->nh : 64;
    for (size_t j = 0; j < nh; j++) hd[j] = (sl_header){x->hname[j], x->hval[j], x->hlen[j]};
    return (sl_record){x->has_key ? x->key : NULL, x->has_key ? x->key_len : 0, x->value, x->value_len,
                       hd, nh, x->timestamp_ms, x->topic, x->partition, x->offset, NULL};
}

static sl_err feeder_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    (void)timeout_ms;
    tr_harness *h = self;
    sl_header hd[64];
    if (h->nparts) { /* from inside poll, as a Kafka consumer's rebalance callback does */
        if (h->revoke) sl_host_api.partitions_revoked(ctx, h->parts, h->nparts);
        else sl_host_api.partitions_assigned(ctx, h->parts, h->nparts);
        h->nparts = 0;
    }
    for (size_t k = 0; k < max && h->fpos < h->nfeed; k++) {
        sl_record r = as_record(&h->feed[h->fpos++], hd);
        if (sl_host_api.emit(ctx, &r) != SL_OK) return SL_FATAL;
    }
    return SL_OK;
}

static sl_err collector_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    (void)api, (void)config;
    *self = ctx->st->index < 0 ? &starting->dead : &starting->out;
    return SL_OK;
}

static sl_err collector_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    (void)ctx;
    tr_recs *into = self;
    for (size_t i = 0; i < b->n; i++) {
        const sl_record *r = b->recs[i];
        tr_rec *x = tr_recs_push(into);
        x->has_key = r->key != NULL;
        x->key = memdup0(r->key, r->key_len);
        x->key_len = r->key_len;
        x->value = memdup0(r->value, r->value_len);
        x->value_len = r->value_len;
        x->timestamp_ms = r->timestamp_ms;
        x->topic = r->topic ? xstrdup(r->topic) : NULL;
        x->partition = r->partition;
        x->offset = r->offset;
        x->hname = xcalloc(r->n_headers + 1, sizeof *x->hname);
        x->hval = xcalloc(r->n_headers + 1, sizeof *x->hval);
        x->hlen = xcalloc(r->n_headers + 1, sizeof *x->hlen);
        for (size_t j = 0; j < r->n_headers; j++) {
            const sl_header *hd = &r->headers[j];
            /* The host's two dead-letter headers become the record's stage and reason. */
            if (!strcmp(hd->name, "sluice.error.stage")) x->stage = memdup0(hd->value, hd->value_len);
            else if (!strcmp(hd->name, "sluice.error.reason")) x->reason = memdup0(hd->value, hd->value_len);
            else {
                x->hname[x->nh] = xstrdup(hd->name);
                x->hval[x->nh] = memdup0(hd->value, hd->value_len);
                x->hlen[x->nh++] = hd->value_len;
            }
        }
    }
    return SL_OK;
}

/* On assignment the collector plays the sink that keeps durable state (pg-sink): it hands the
 * case's state records back, and the host passes them to every earlier stage's on_restore. */
static sl_err collector_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    (void)parts, (void)n;
    tr_harness *h = current;
    if (!h || self != &h->out || !h->nrestore) return SL_OK;
    sl_record *v = xcalloc(h->nrestore, sizeof *v);
    sl_header(*hd)[64] = xcalloc(h->nrestore, sizeof *hd);
    for (size_t i = 0; i < h->nrestore; i++) v[i] = as_record(&h->restore[i], hd[i]);
    sl_host_api.restore(ctx, v, h->nrestore);
    free(hd);
    free(v);
    h->nrestore = 0;
    return SL_OK;
}

static const sl_stage_desc feeder_desc = {
    SL_STAGE_DESC_INIT,
    .name = "test-input",
    .version = "1",
    .kind = SL_KIND_SOURCE,
    .description = "sluice test: the case's input records",
    .init = feeder_init,
    .poll = feeder_poll,
};
static const sl_stage_desc collector_desc = {
    SL_STAGE_DESC_INIT,
    .name = "test-output",
    .version = "1",
    .kind = SL_KIND_SINK,
    .description = "sluice test: collects what leaves the last stage and the dead letters",
    .init = collector_init,
    .process = collector_process,
    .on_assign = collector_on_assign,
};
static const sl_plugin feeder_plugin = {&feeder_desc, "(built in)", NULL};
static const sl_plugin collector_plugin = {&collector_desc, "(built in)", NULL};

/* ---- driving the chain ------------------------------------------------------------------ */

tr_harness *tr_start(pipeline_cfg *cfg, size_t from, size_t to, int64_t now_ms, char *err, size_t errlen)
{
    virtual_api = sl_host_api;
    virtual_api.now_ms = v_now_ms;
    virtual_api.monotonic_ms = v_monotonic_ms;
    runtime_stage_api = &virtual_api;
    v_now = now_ms;
    v_mono = 0;
    atomic_store(&stop_requested, 0);
    pthread_mutex_lock(&error_lock);
    last_error[0] = 0;
    pthread_mutex_unlock(&error_lock);

    tr_harness *h = xcalloc(1, sizeof *h);
    size_t n = to - from + 1;
    h->run = *cfg;
    h->run.tasks_min = h->run.tasks_max = 1;
    h->stages = xcalloc(n + 2, sizeof *h->stages);
    h->stages[0] = (stage_cfg){.name = "test-input", .plugin = &feeder_plugin};
    for (size_t i = 0; i < n; i++) h->stages[i + 1] = cfg->stages[from + i]; /* shallow: config shared */
    h->stages[n + 1] = (stage_cfg){.name = "test-output", .plugin = &collector_plugin};
    h->dlq = (stage_cfg){.name = "test-dead-letter", .plugin = &collector_plugin};
    h->run.stages = h->stages;
    h->run.nstages = n + 2;
    /* As in a run: without a dead_letter a reject is up to errors.tolerance (none: the pipeline
     * stops, and the case fails saying why; all: the record is dropped). */
    h->run.dead_letter = cfg->dead_letter ? &h->dlq : NULL;

    starting = h;
    int rc = task_init(&h->t, &h->run, 0); /* the runtime's own task setup, on the replaced chain */
    starting = NULL;
    if (rc) {
        snprintf(err, errlen, "a stage refused to start: %s", last_error[0] ? last_error : "init failed");
        tr_stop(h);
        return NULL;
    }
    return h;
}

static int run_wave(tr_harness *h, int flush_final)
{
    task *t = &h->t;
    current = h;
    if (flush_final < 0) {
        stage_inst *src = &t->stages[0];
        recvec out = {0};
        t->target = &out;
        t->in_poll = 1;
        src->d->poll(src->self, &src->ctx, (size_t)t->cfg->batch_size, 0);
        t->in_poll = 0;
        t->target = NULL;
        if (out.n || t->dlq_pending.n) run_chain(t, 1, &out);
        else wave_end(t);
        free(out.v);
        flush_all(t, 0);
    } else {
        flush_all(t, flush_final);
    }
    commit(t); /* positions move on as in a run (nothing commits them: the feeder has no commit) */
    current = NULL;
    return t->failed ? -1 : 0;
}

int tr_feed(tr_harness *h, const tr_rec *recs, size_t n)
{
    h->feed = recs;
    h->nfeed = n;
    h->fpos = 0;
    int rc = 0;
    while (!rc && h->fpos < h->nfeed) rc = run_wave(h, -1);
    h->feed = NULL;
    h->nfeed = h->fpos = 0;
    return rc;
}

int tr_partitions(tr_harness *h, sl_position *parts, size_t n, int revoke, const tr_rec *restore, size_t nrestore)
{
    h->parts = parts;
    h->nparts = n;
    h->revoke = revoke;
    h->restore = restore;
    h->nrestore = nrestore;
    int rc = run_wave(h, -1);
    h->nparts = h->nrestore = 0;
    return rc;
}

int tr_advance(tr_harness *h, int64_t ms)
{
    v_now += ms;
    v_mono += ms;
    return run_wave(h, 0);
}

int tr_flush(tr_harness *h, int final) { return run_wave(h, final ? 1 : 0); }
int64_t tr_now(const tr_harness *h) { (void)h; return v_now; }
const tr_recs *tr_output(const tr_harness *h) { return &h->out; }
const tr_recs *tr_dead(const tr_harness *h) { return &h->dead; }
const char *tr_error(const tr_harness *h) { return h->t.failed ? (last_error[0] ? last_error : "a stage failed") : ""; }

void tr_stop(tr_harness *h)
{
    if (!h) return;
    task_free(&h->t); /* closes the stages; stage configs belong to the pipeline */
    runtime_stage_api = &sl_host_api;
    tr_recs_free(&h->out);
    tr_recs_free(&h->dead);
    free(h->stages);
    free(h);
}
