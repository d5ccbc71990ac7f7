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

#include "log.h"
#include "runtime_int.h"
#include "tap_child.h"

atomic_int stop_requested;
atomic_int pause_requested; /* set from the supervisor's control pipe */
static int control_fd = -1;
pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;
char last_error[512]; /* the first error-level log line, for the status line */
task *tasks;
int ntasks;

void runtime_request_stop(void) { atomic_store(&stop_requested, 1); }

void runtime_set_control_fd(int fd)
{
    control_fd = fd;
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void *task_main(void *arg)
{
    task *t = arg;
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
        t->in_poll = 1;
        sl_err rc = src->d->poll(src->self, &src->ctx, (size_t)t->cfg->batch_size, TICK_MS);
        t->in_poll = 0;
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
    drain(t, t->failed ? 0 : DRAIN_TIMEOUT_MS, SL_FLUSH_END);
    if (t->failed) atomic_store(&stop_requested, 1); /* one failed task stops the pipeline */
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
    /* Nothing commits any more: references kept on unfinished records can go. */
    for (size_t i = 0; i < t->nstuck; i++) ack_release(t->stuck[i]);
    free(t->stuck);
    for (size_t i = 0; i < t->dlq_pending.n; i++) ack_release(t->dlq_pending.v[i]->ack);
    t->dlq_pending.n = 0;
    for (size_t i = 0; i < t->deferred.n; i++) ack_release(t->deferred.v[i]->ack);
    free(t->deferred.v);
    for (size_t i = 0; i < t->ncommitted; i++) free((char *)t->committed[i].topic);
    free(t->committed);
    for (size_t i = 0; i < t->nowned; i++) free((char *)t->owned[i].topic);
    free(t->owned);
    for (size_t i = 0; i < t->nends; i++) free((char *)t->ends[i].topic);
    free(t->ends);
    pthread_mutex_destroy(&t->slock);
    /* Closing stages finish watched records: nobody hears of them any more. */
    pthread_mutex_lock(&t->nlock);
    t->notes_closed = 1;
    free(t->notes);
    t->notes = NULL;
    t->nnotes = 0;
    pthread_mutex_unlock(&t->nlock);
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
    pthread_mutex_destroy(&t->nlock);
}

/* The supervisor's control pipe: 'P' pauses the source, 'R' resumes it (latest wins). */
static void read_control(void)
{
    char c[64];
    ssize_t r = -1;
    while (control_fd >= 0 && (r = read(control_fd, c, sizeof c)) > 0)
        for (ssize_t i = 0; i < r; i++)
            if (!tap_control_byte(c[i]) && (c[i] == 'P' || c[i] == 'R')) atomic_store(&pause_requested, c[i] == 'P');
    if (control_fd >= 0 && r == 0) { /* the supervisor is gone: stop, never run on as an orphan */
        control_fd = -1;
        runtime_request_stop();
    }
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
        pthread_mutex_init(&t->nlock, NULL);
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
                    if (status_fd >= 0) tap_flush(status_fd); /* sluice tap: sampled records */
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
