/* stage_api.c — the host API table handed to stages: logging, metrics, emit, hold, reject. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime_int.h"

const double bucket_bounds[NBUCKETS] = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

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

void hist_add(histogram *h, double v)
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

void tlog(task *t, stage_inst *s, sl_log_level level, const char *fmt, ...)
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

static sl_err emit_record(sl_ctx *ctx, const sl_record *rec, int borrow)
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
        h = borrow ? borrow_record(t, rec, ack_new(p, rec->offset)) : copy_record(t, rec, ack_new(p, rec->offset));
        h->from_source = 1;
        if (!h->r.timestamp_ms) {
            /* Ingest time, read once per batch: a clock call per record shows in profiles. */
            if (!t->wave_now) t->wave_now = sl_now_ms();
            h->r.timestamp_ms = t->wave_now;
        }
    } else if ((h = as_hrec(t, rec))) {
        ack_retain(h->r.ack); /* forwarded as is: one more reference for the next stage */
        h->mark = h->fwd = t->seq;
    } else {
        ack_retain(rec->ack);
        h = copy_record(t, rec, rec->ack);
    }
    vec_push(t->target, &h->r);
    atomic_fetch_add_explicit(&s->out, 1, memory_order_relaxed);
    return SL_OK;
}

static sl_err api_emit(sl_ctx *ctx, const sl_record *rec) { return emit_record(ctx, rec, 0); }
static sl_err api_emit_borrowed(sl_ctx *ctx, const sl_record *rec) { return emit_record(ctx, rec, 1); }

static sl_ack *api_hold(sl_ctx *ctx, const sl_record *rec)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (h) h->mark = ctx->task->seq;
    if (h && ctx->task->in_process) ctx->task->call_holds++;
    if (!rec->ack) return ack_group_new(&ctx->task->acks); /* nothing to hold: an empty token */
    ack_retain(rec->ack);
    return rec->ack;
}

static void api_release(sl_ack *a) { ack_release(a); }

static sl_ack *api_ack_group(sl_ctx *ctx) { return ack_group_new(&ctx->task->acks); }

static void api_ack_group_add(sl_ack *g, sl_ack *m) { ack_group_add(g, m); }

void give_up(task *t, stage_inst *s, const sl_record *rec, sl_ack *ack, const char *reason)
{
    const char *what = s == t->dlq ? "the dead letter refused it" : "no dead_letter is configured";
    if (t->cfg->errors_tolerance_all) {
        api_count(&s->ctx, "errors_dropped", 1);
        tlog(t, s, SL_LOG_WARN, "record at topic=%s partition=%d offset=%lld dropped (%s; errors.tolerance: all): %s",
             rec->topic ? rec->topic : "", (int)rec->partition, (long long)rec->offset, what, reason);
        ack_release(ack);
        return;
    }
    /* Keep the reference: the record stays unfinished, so no commit passes its position and
     * it is read again after the cause is fixed. */
    tlog(t, s, SL_LOG_ERROR,
         "record at topic=%s partition=%d offset=%lld cannot be placed (%s): %s; errors.tolerance is none, "
         "so the pipeline stops without committing past it (errors: {tolerance: all} drops such records)",
         rec->topic ? rec->topic : "", (int)rec->partition, (long long)rec->offset, what, reason);
    t->stuck = xrealloc(t->stuck, (t->nstuck + 1) * sizeof *t->stuck);
    t->stuck[t->nstuck++] = ack;
    t->failed = 1;
}

static void api_reject(sl_ctx *ctx, const sl_record *rec, const char *reason)
{
    task *t = ctx->task;
    stage_inst *s = ctx->st;
    atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    if (!reason) reason = "rejected";
    hrec *h = as_hrec(t, rec);
    if (h) {
        materialize(t, h);
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
    if (s == t->dlq) {
        give_up(t, s, rec, ack, reason);
        return;
    }
    /* The dead letter carries the original record plus two headers saying who and why. Without
     * a dead-letter sink it still waits in dlq_pending, so a failed call can take it back. */
    sl_header *hd = arena_alloc(&t->arena, (rec->n_headers + 2) * sizeof *hd);
    if (rec->n_headers) memcpy(hd, rec->headers, rec->n_headers * sizeof *hd);
    char *why = arena_strdup(&t->arena, reason);
    hd[rec->n_headers] = (sl_header){"sluice.error.stage", s->cfg->name, strlen(s->cfg->name)};
    hd[rec->n_headers + 1] = (sl_header){"sluice.error.reason", why, strlen(why)};
    sl_record copy = *rec;
    copy.headers = hd;
    copy.n_headers = rec->n_headers + 2;
    hrec *d = copy_record(t, &copy, ack);
    d->rollback = h && t->in_process;
    d->rejected_by = s;
    d->reason = why;
    vec_push(&t->dlq_pending, &d->r);
}

/* Runs on whichever thread finished the group (a sink's writer, say): only queue the note. */
static void note_finished(void *arg, void *cookie, int rejected)
{
    stage_inst *s = arg;
    task *t = s->ctx.task;
    pthread_mutex_lock(&t->nlock);
    if (!t->notes_closed) {
        if (t->nnotes == t->capnotes) {
            t->capnotes = t->capnotes ? t->capnotes * 2 : 64;
            t->notes = xrealloc(t->notes, t->capnotes * sizeof *t->notes);
        }
        t->notes[t->nnotes++] = (finished_note){s, cookie, rejected};
    }
    pthread_mutex_unlock(&t->nlock);
}

/* The input's own reference moves into a new watched group, which becomes the record's
 * token: everything emitted from it from now on is anchored to the group. */
static sl_err api_watch(sl_ctx *ctx, const sl_record *rec, void *cookie)
{
    task *t = ctx->task;
    stage_inst *s = ctx->st;
    hrec *h = as_hrec(t, rec);
    if (!h || !t->in_process || !h->r.ack || h->fwd == t->seq || !stage_on_finished(s->d)) return SL_EINVAL;
    sl_ack *g = ack_group_new(&t->acks);
    ack_group_watch(g, note_finished, s, cookie);
    ack_group_add(g, h->r.ack);
    ack_release(h->r.ack);
    h->r.ack = g;
    t->call_holds++; /* a retry could not take it back */
    return SL_OK;
}

static int64_t api_now_ms(sl_ctx *ctx) { (void)ctx; return sl_now_ms(); }
static int64_t api_monotonic_ms(sl_ctx *ctx) { (void)ctx; return sl_monotonic_ms(); }
static const char *api_pipeline_name(sl_ctx *ctx) { return ctx->task->cfg->name; }
static const char *api_stage_name(sl_ctx *ctx) { return ctx->st->cfg->name; }
static int api_task_index(sl_ctx *ctx) { return ctx->task->index; }
static const char *api_config_dir(sl_ctx *ctx) { return ctx->task->cfg->dir; }

static sl_err api_set_timestamp(sl_ctx *ctx, const sl_record *rec, int64_t ts)
{
    hrec *h = as_hrec(ctx->task, rec);
    if (!h) return SL_EINVAL;
    h->r.timestamp_ms = ts;
    return SL_OK;
}


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
    .watch = api_watch,
    .json_remove = api_json_remove,
    .json_set_json = api_json_set_json,
    .set_key = api_set_key,
    .set_timestamp = api_set_timestamp,
    .json_string_len = api_json_string_len,
    .json_int64 = api_json_int64,
    .json_print = api_json_print,
    .json_key_init = api_json_key_init,
    .json_get_key = api_json_get_key,
    .json_key_is = api_json_key_is,
    .json_key_hash = api_json_key_hash,
    .emit_borrowed = api_emit_borrowed,
    .report_end_offsets = api_report_end_offsets,
};
