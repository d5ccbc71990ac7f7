/* sup_autoscale.c — the task count of a pipeline with tasks: {min, max}, moved by consumer lag
 * and throughput (supervisor thread only). */
#include <string.h>

#include "log.h"
#include "supervisor.h"

/* Source records emitted so far by the running child (stage 0's "out"); -1 if unknown. */
static long long source_out(const sup_pipeline *p)
{
    const sup_status *st = &p->status;
    return st->valid && !p->status_folded && st->nstages ? (long long)st->stages[0].out : -1;
}

/* Partitions the running child's tasks own now (status "assigned"); -1 if it does not say. */
static int owned_partitions(const sup_pipeline *p)
{
    return p->status.valid && !p->status_folded ? p->status.nassigned : -1;
}

/* Total consumer lag over the running child's partitions (status "lag", from the source's
 * api->report_end_offsets) and their number; -1 when unknown (not reported, or not yet). */
static int lag_total(const sup_pipeline *p, double *lag, int *partitions)
{
    const sup_status *st = &p->status;
    if (!st->valid || p->status_folded || st->nlag <= 0) return -1;
    double t = 0;
    for (int i = 0; i < st->nlag; i++) t += (double)st->lag[i].lag;
    *lag = t;
    *partitions = st->nlag;
    return 0;
}

/* Once per interval: sample total lag and throughput per task; add a task when lag has grown
 * across the window and every task was busy, remove one when lag stayed near zero. */
void sup_autoscale(sup_pipeline *p, long long now)
{
    if (p->tasks_max <= p->tasks_min || p->state != SUP_RUNNING || p->paused || p->restart_pending) return;
    long long interval = sup_opts()->scale_interval_ms > 0 ? sup_opts()->scale_interval_ms : 5000;
    long long window = sup_opts()->scale_window_ms > 0 ? sup_opts()->scale_window_ms : 30000;
    int need = (int)(window / interval);
    if (need < 2) need = 2;
    if (need > 8) need = 8;
    if (now - p->scale_at_ms < interval) return;
    double lag;
    int partitions;
    if (lag_total(p, &lag, &partitions) != 0) return;
    long long in = source_out(p);
    double rate = p->last_in >= 0 && in >= p->last_in ? (double)(in - p->last_in) * 1000.0 / (double)(now - p->scale_at_ms) / p->tasks : 0;
    p->last_in = in;
    p->scale_at_ms = now;
    if (p->nlag == 8) {
        memmove(p->lag_hist, p->lag_hist + 1, 7 * sizeof *p->lag_hist);
        memmove(p->rate_hist, p->rate_hist + 1, 7 * sizeof *p->rate_hist);
        p->nlag--;
    }
    p->lag_hist[p->nlag] = lag;
    p->rate_hist[p->nlag++] = rate;
    if (p->nlag < need) return;
    const double *lh = p->lag_hist + p->nlag - need;
    int grew = lh[need - 1] > lh[0] && lh[need - 1] > sup_opts()->scale_lag_low, low = 1;
    for (int i = 0; i < need; i++) low &= lh[i] <= sup_opts()->scale_lag_low;
    int limit = p->tasks_max < partitions ? p->tasks_max : partitions;
    int owned = owned_partitions(p);
    if (owned >= 0 && owned < limit) limit = owned; /* more tasks than our partitions would idle */
    const char *why = NULL;
    int to = p->tasks;
    /* "Saturated": every sample of the window consumed something (the tasks never idled)
     * while lag still grew, or the backlog would take longer than the window to drain at the
     * current rate (a burst that already stopped growing still deserves more consumers). */
    int busy = 1;
    for (int i = 0; i < need; i++) busy &= p->rate_hist[p->nlag - need + i] > 0;
    double drain_ms = rate > 0 ? lh[need - 1] / (rate * p->tasks) * 1000.0 : 0;
    int behind = lh[need - 1] > sup_opts()->scale_lag_low && drain_ms > (double)window;
    if ((grew || behind) && busy && p->tasks < limit) {
        to = p->tasks + 1;
        why = grew ? "consumer lag grew over the window while every task was busy"
                   : "the backlog would take longer than the window to drain while every task was busy";
    } else if (low && p->tasks > p->tasks_min) {
        to = p->tasks - 1;
        why = "consumer lag stayed near zero over the window";
    }
    if (!why) return;
    log_info("pipeline %s: scaling from %d to %d tasks: %s (lag %.0f, %.0f records/s per task, %d partitions, %d owned)",
             p->name, p->tasks, to, why, lag, rate, partitions, owned);
    p->tasks = to;
    p->nlag = 0;
    sup_request_restart(p); /* SIGTERM: the child drains and commits, then starts with the new count */
}

