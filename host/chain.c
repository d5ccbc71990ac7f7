/* chain.c — running a wave through the chain: each stage's process with retries, the dead
 * letters, flushes, commits, draining, and partition assignment, revocation and restore. */
#include <stdlib.h>
#include <string.h>

#include "runtime_int.h"
#include "tap_child.h"

/* ---- running the chain -------------------------------------------------------------------- */

int stopping(const task *t) { return atomic_load(&stop_requested) || t->failed; }

/* A failed process call is undone before it is retried: what it emitted and the dead letters
 * of the input records it rejected are discarded, so the retry decides about each record once.
 * (Holds cannot be taken back: the stage owns them; run_stage refuses a RETRY after a hold.) */
static void undo_call(task *t, stage_inst *s, recvec *out, size_t mark, size_t dmark)
{
    for (size_t i = mark; out && i < out->n; i++) ack_release(out->v[i]->ack);
    if (out) {
        atomic_fetch_sub_explicit(&s->out, out->n - mark, memory_order_relaxed);
        out->n = mark;
    }
    recvec *d = &t->dlq_pending;
    size_t keep = dmark < d->n ? dmark : d->n, undone = 0;
    for (size_t i = keep; i < d->n; i++) {
        hrec *h = (hrec *)d->v[i];
        if (h->rollback && h->rejected_by == s) {
            ack_release(h->r.ack);
            undone++;
        } else {
            d->v[keep++] = d->v[i]; /* a delayed reject of an earlier batch's record stays */
        }
    }
    d->n = keep;
    atomic_fetch_sub_explicit(&s->rejected, undone, memory_order_relaxed);
}

/* Waits `ms` while a stage retries. A source that can pause is paused and keeps being polled
 * (max 0): a Kafka consumer that stops polling is evicted from its group, and its rebalance
 * callbacks run from poll. Anything it still hands over waits in t->deferred for the chain. */
static void wait_polling(task *t, int64_t ms)
{
    stage_inst *src = &t->stages[0];
    /* Not from inside the source's own poll (a revoke's drain): polling it again there would
     * re-enter the consumer from its rebalance callback. */
    if (!src->d->pause || !src->d->resume || t->retry_polling || t->in_poll) {
        sl_sleep_ms(ms);
        return;
    }
    if (!t->retry_paused) {
        if (!t->paused && src->d->pause(src->self, &src->ctx) != SL_OK)
            tlog(t, src, SL_LOG_WARN, "pause failed");
        t->retry_paused = 1;
    }
    t->retry_polling = 1;
    recvec *saved = t->target;
    int64_t end = sl_monotonic_ms() + ms, left;
    while ((left = end - sl_monotonic_ms()) > 0 && !stopping(t)) {
        t->target = &t->deferred;
        sl_err rc = src->d->poll(src->self, &src->ctx, 0, left < 100 ? (int)left : 100);
        t->target = saved;
        if (rc == SL_FATAL || rc == SL_ENOMEM) {
            tlog(t, src, SL_LOG_ERROR, "poll failed: %s; the pipeline stops", sl_strerror(rc));
            t->failed = 1;
        } else if (rc != SL_OK) {
            sl_sleep_ms(left < 100 ? left : 100); /* RETRY or DONE: nothing to serve now */
        }
    }
    t->retry_polling = 0;
}

/* After the retries: the source produces again (unless the supervisor paused it meanwhile). */
static void end_retry_pause(task *t)
{
    stage_inst *src = &t->stages[0];
    if (!t->retry_paused || t->retry_polling) return;
    t->retry_paused = 0;
    if (!t->paused && src->d->resume(src->self, &src->ctx) != SL_OK) tlog(t, src, SL_LOG_WARN, "resume failed");
}

/* Hands `in` to stage `s`, collecting what it emits in `out` (NULL for sinks). On success the
 * batch's own references on the inputs are dropped; a record the stage neither forwarded, held
 * nor rejected is then finished. On failure they are kept: the positions stay uncommitted and
 * the records are redelivered after a restart. */
int run_stage(task *t, stage_inst *s, recvec *in, recvec *out)
{
    if (!in->n) return 0;
    if (!(s->d->flags & SL_STAGE_JSON_ONLY))
        for (size_t i = 0; i < in->n; i++) {
            hrec *h = (hrec *)in->v[i];
            if (h->dirty) materialize(t, h);
        }
    atomic_fetch_add_explicit(&s->in, in->n, memory_order_relaxed);
    if (tap_wanted(s->index - 1)) tap_records(t, s->index - 1, in); /* sluice tap: leaving the previous stage */
    sl_batch b = {(const sl_record *const *)in->v, in->n};
    size_t mark = out ? out->n : 0;
    int64_t backoff = 100;
    recvec *saved = t->target;
    int saved_in = t->in_process;
    size_t saved_holds = t->call_holds;
    for (int attempt = 0;; attempt++) {
        t->seq++;
        t->target = out;
        t->in_process = 1;
        t->call_holds = 0;
        size_t dmark = t->dlq_pending.n;
        int64_t t0 = sl_monotonic_ms();
        sl_err rc = s->d->process(s->self, &s->ctx, &b);
        size_t holds = t->call_holds;
        t->target = saved;
        t->in_process = saved_in;
        t->call_holds = saved_holds;
        if (rc == SL_OK) {
            double secs = (double)(sl_monotonic_ms() - t0) / 1000.0;
            pthread_mutex_lock(&s->mlock);
            hist_add(&s->batch, secs);
            pthread_mutex_unlock(&s->mlock);
            if (s->index >= 0 && (size_t)s->index + 1 == t->nstages) {
                /* End-to-end latency: record timestamp to the sink's return. */
                int64_t now = sl_now_ms();
                if (tap_wanted(s->index)) tap_records(t, s->index, in); /* sluice tap: what the sink took */
                pthread_mutex_lock(&t->slock);
                /* Records a source read only: a KPI row's timestamp is its window's start,
                 * which says nothing about how long anything took. */
                for (size_t i = 0; i < in->n; i++)
                    if (((hrec *)in->v[i])->from_source)
                        hist_add(&t->e2e, (double)(now - in->v[i]->timestamp_ms) / 1000.0);
                pthread_mutex_unlock(&t->slock);
            }
            break;
        }
        undo_call(t, s, out, mark, dmark);
        if (rc == SL_RETRY && holds) {
            /* The stage kept references it may act on later (a buffered row, say): a retry of
             * the same batch could then finish those records twice. */
            tlog(t, s, SL_LOG_ERROR,
                 "stage held %zu input records and then returned RETRY; a retry could finish them twice "
                 "(stages must not hold before returning RETRY); the pipeline stops", holds);
            t->failed = 1;
            return -1;
        }
        if (rc == SL_RETRY && !stopping(t)) {
            atomic_fetch_add_explicit(&s->retries, 1, memory_order_relaxed);
            if (attempt == 0 || backoff >= 5000)
                tlog(t, s, SL_LOG_WARN, "batch of %zu records failed transiently; retrying (backoff %lld ms)",
                     in->n, (long long)backoff);
            wait_polling(t, backoff);
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
    end_retry_pause(t);
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
        /* No call can take these back any more: a watcher of their token hears "rejected". */
        for (size_t i = 0; i < v.n; i++) ack_mark_rejected(v.v[i]->ack);
        if (tap_wanted(TAP_DEAD)) tap_records(t, TAP_DEAD, &v); /* sluice tap --dead-letter */
        if (t->dlq) {
            run_stage(t, t->dlq, &v, NULL);
        } else {
            for (size_t i = 0; i < v.n; i++) {
                hrec *h = (hrec *)v.v[i];
                if (t->failed) { /* already stopping: keep it pending, like the rest */
                    vec_push(&t->dlq_pending, &h->r);
                    continue;
                }
                give_up(t, h->rejected_by, &h->r, h->r.ack, h->reason);
            }
        }
        free(v.v);
    }
}

/* Runs `in` through stages[from..] and then the dead letters. A wave ends (arena and slab
 * recycled) when the outermost run returns. */
int run_chain(task *t, size_t from, recvec *in)
{
    int rc = 0;
    if (t->depth == 0) deliver_finished(t);
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
    /* Records a paused source handed over during retries belong to this wave: run them now. */
    while (!rc && t->depth == 1 && t->deferred.n && !t->failed) {
        recvec d = t->deferred;
        t->deferred = (recvec){0};
        rc = run_chain(t, 1, &d);
        free(d.v);
    }
    if (--t->depth == 0) wave_end(t);
    return rc;
}

/* Hands the stages what became of the records they watched (api->watch), on the task thread
 * and outside any other callback. Nothing may be emitted from there. */
void deliver_finished(task *t)
{
    if (t->depth) return;
    pthread_mutex_lock(&t->nlock);
    finished_note *v = t->notes;
    size_t n = t->nnotes;
    if (!n) {
        pthread_mutex_unlock(&t->nlock);
        return;
    }
    t->notes = NULL;
    t->nnotes = t->capnotes = 0;
    pthread_mutex_unlock(&t->nlock);
    recvec *saved = t->target;
    t->target = NULL;
    for (size_t i = 0; i < n && !t->failed; i++) {
        stage_inst *s = v[i].s;
        sl_err rc = stage_on_finished(s->d)(s->self, &s->ctx, v[i].cookie, v[i].rejected);
        if (rc != SL_OK) {
            tlog(t, s, SL_LOG_ERROR, "on_finished failed: %s; the pipeline stops", sl_strerror(rc));
            t->failed = 1;
        }
    }
    t->target = saved;
    free(v);
}

void flush_all(task *t, int final)
{
    deliver_finished(t);
    for (size_t i = 0; i <= t->nstages && !t->failed; i++) {
        stage_inst *s = i < t->nstages ? &t->stages[i] : t->dlq;
        if (!s || !s->d->flush) continue;
        recvec v = {0};
        recvec *saved = t->target;
        t->target = s->d->kind == SL_KIND_SINK ? NULL : &v;
        /* Stages built before ABI 1.6 know only 0 and 1. */
        int why = final == SL_FLUSH_REVOKE && s->d->abi_minor < 6 ? SL_FLUSH_END : final;
        sl_err rc = s->d->flush(s->self, &s->ctx, why);
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

void commit(task *t)
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
void drain(task *t, int64_t timeout_ms, int why)
{
    flush_all(t, why);
    int64_t deadline = sl_monotonic_ms() + timeout_ms;
    while (!t->failed && ack_pending(&t->acks) > 0 && sl_monotonic_ms() < deadline) {
        sl_sleep_ms(10);
        flush_all(t, why);
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
            t->owned[t->nowned++] = (sl_position){xstrdup(topic), parts[i].partition, parts[i].offset};
        } else if (!add && j < t->nowned) {
            free((char *)t->owned[j].topic);
            t->owned[j] = t->owned[--t->nowned];
        }
    }
    pthread_mutex_unlock(&t->slock);
}

void api_partitions_assigned(sl_ctx *ctx, sl_position *parts, size_t n)
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
void api_restore(sl_ctx *ctx, const sl_record *recs, size_t n)
{
    task *t = ctx->task;
    if (!n) return;
    sl_record **v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (sl_record *)&recs[i];
    sl_batch b = {(const sl_record *const *)v, n};
    int upto = ctx->st->index < 0 ? (int)t->nstages : ctx->st->index;
    for (int i = 0; i < upto; i++) {
        stage_inst *s = &t->stages[i];
        if (s->d->on_restore && s->d->on_restore(s->self, &s->ctx, &b) != SL_OK)
            tlog(t, s, SL_LOG_WARN, "on_restore failed for %zu state records", n);
    }
    free(v);
}

void api_partitions_revoked(sl_ctx *ctx, const sl_position *parts, size_t n)
{
    task *t = ctx->task;
    track_owned(t, parts, n, 0);
    /* Finish what the source produced so far, make it durable and commit, so the next owner of
     * these partitions starts right after what we finished. Not while a stage retries (the
     * revoke comes from the poll that keeps the member alive): nothing can be drained then. */
    if (!t->retry_polling) {
        recvec *src = t->target;
        if (src && src->n) {
            recvec copy = *src;
            t->target = NULL;
            run_chain(t, 1, &copy);
            src->n = 0;
            t->target = src;
        }
        recvec *saved = t->target;
        drain(t, DRAIN_TIMEOUT_MS, SL_FLUSH_REVOKE);
        t->target = saved;
    }
    /* The partitions are another member's now: tokens still out (a drain that timed out, a
     * stage mid-retry) must neither block our other commits nor commit for them. */
    for (size_t i = 0; i < n; i++) {
        long left = ack_partition_detach(&t->acks, parts[i].topic, parts[i].partition);
        if (left)
            tlog(t, NULL, SL_LOG_WARN, "revoked %s[%d] with %ld records unfinished: they will not be committed here",
                 parts[i].topic ? parts[i].topic : "", (int)parts[i].partition, left);
    }
    t->last_part = NULL;
    for (size_t i = 1; i <= t->nstages; i++) {
        stage_inst *s = i < t->nstages ? &t->stages[i] : t->dlq;
        if (s && s->d->on_revoke) s->d->on_revoke(s->self, &s->ctx, parts, n);
    }
}
