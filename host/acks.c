#include "acks.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum { ACK_ENTRY = 1, ACK_GROUP = 2 };

struct sl_ack {
    atomic_int refs;
    int kind;
    atomic_int finished;    /* ENTRY: set (release order) by whoever drops the last reference */
    struct sl_ack *next;    /* ENTRY: FIFO link */
    ack_partition *part;    /* ENTRY */
    int64_t offset;         /* ENTRY */
    /* GROUP */
    ack_tracker *tracker;
    pthread_mutex_t glock;
    sl_ack **members;
    size_t nmembers, cap;
    atomic_int rejected;    /* GROUP: a record anchored to it went to the dead letter */
    ack_watch_fn watch;     /* GROUP: called once when it is finished (ack_group_watch) */
    void *watch_arg, *watch_cookie;
};

/* Releasing a token takes no lock and touches no shared counter: the last reference sets its
 * `finished` flag, nothing else. The finished prefix of a partition's FIFO is popped (and the
 * committable offset moved) under the partition lock by whoever next looks: ack_new pops a few
 * entries per token it adds (so the FIFO stays about as long as the unfinished tokens), and
 * take_commits, committed, pending and detach pop all they can. `pending` is counted when asked,
 * not kept per token. Per record that is one lock pair (in ack_new, uncontended: the source's
 * task thread) and two atomics on release, where it was two lock pairs and three atomics. */
struct ack_partition {
    pthread_mutex_t lock;
    char *topic;
    int32_t partition;
    ack_tracker *tracker;
    sl_ack *head, *tail;    /* unfinished-or-waiting tokens in emission order */
    long count;             /* tokens in the FIFO */
    sl_ack *free_list;      /* popped tokens kept for reuse: no malloc per record */
    int64_t committed;      /* last offset with everything up to it finished; -1 none */
    int moved;              /* committed changed since ack_take_commits */
    int detached;           /* revoked: releases only recycle tokens (under lock) */
};

void ack_tracker_init(ack_tracker *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
}

static void partition_free(ack_partition *p)
{
    for (sl_ack *a = p->head, *n; a; a = n) {
        n = a->next;
        free(a);
    }
    for (sl_ack *a = p->free_list, *n; a; a = n) {
        n = a->next;
        free(a);
    }
    pthread_mutex_destroy(&p->lock);
    free(p->topic);
    free(p);
}

void ack_tracker_destroy(ack_tracker *t)
{
    for (size_t i = 0; i < t->ndetached; i++) partition_free(t->detached[i]);
    free(t->detached);
    for (size_t i = 0; i < t->nparts; i++) {
        ack_partition *p = t->parts[i];
        for (sl_ack *a = p->head, *n; a; a = n) {
            n = a->next;
            free(a);
        }
        for (sl_ack *a = p->free_list, *n; a; a = n) {
            n = a->next;
            free(a);
        }
        pthread_mutex_destroy(&p->lock);
        free(p->topic);
        free(p);
    }
    free(t->parts);
    pthread_mutex_destroy(&t->lock);
}

int ack_partition_is(const ack_partition *p, const char *topic, int32_t partition)
{
    return p->partition == partition &&
           (p->topic == topic || (p->topic && topic && strcmp(p->topic, topic) == 0));
}

ack_partition *ack_partition_get(ack_tracker *t, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nparts; i++) {
        ack_partition *p = t->parts[i];
        if (ack_partition_is(p, topic, partition)) {
            pthread_mutex_unlock(&t->lock);
            return p;
        }
    }
    ack_partition *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->topic = topic ? xstrdup(topic) : NULL;
    p->partition = partition;
    p->tracker = t;
    p->committed = -1;
    t->parts = xrealloc(t->parts, (t->nparts + 1) * sizeof *t->parts);
    t->parts[t->nparts++] = p;
    pthread_mutex_unlock(&t->lock);
    return p;
}

/* Pops up to `max` finished tokens off the head of p's FIFO (p->lock held): everything up to
 * and including the last popped is committable (a detached partition only recycles: its
 * positions belong to another owner now). */
static void pop_finished(ack_partition *p, long max)
{
    while (max-- > 0 && p->head && atomic_load_explicit(&p->head->finished, memory_order_acquire)) {
        sl_ack *h = p->head;
        if (!p->detached) {
            p->committed = h->offset;
            p->moved = 1;
        }
        p->head = h->next;
        if (!p->head) p->tail = NULL;
        h->next = p->free_list;
        p->free_list = h;
        p->count--;
    }
}

sl_ack *ack_new(ack_partition *p, int64_t offset)
{
    pthread_mutex_lock(&p->lock);
    pop_finished(p, 2); /* more than one per token added: the FIFO cannot outgrow the unfinished */
    sl_ack *a = p->free_list;
    if (a) p->free_list = a->next;
    else a = xmalloc(sizeof *a);
    atomic_init(&a->refs, 1);
    a->kind = ACK_ENTRY;
    atomic_init(&a->finished, 0);
    a->next = NULL;
    a->part = p;
    a->offset = offset;
    if (p->tail) p->tail->next = a;
    else p->head = a;
    p->tail = a;
    p->count++;
    pthread_mutex_unlock(&p->lock);
    return a;
}

sl_ack *ack_group_new(ack_tracker *t)
{
    sl_ack *a = xcalloc(1, sizeof *a);
    atomic_init(&a->refs, 1);
    atomic_init(&a->rejected, 0);
    a->kind = ACK_GROUP;
    a->tracker = t;
    pthread_mutex_init(&a->glock, NULL);
    return a;
}

void ack_group_watch(sl_ack *g, ack_watch_fn fn, void *arg, void *cookie)
{
    if (!g || g->kind != ACK_GROUP) return;
    g->watch = fn;
    g->watch_arg = arg;
    g->watch_cookie = cookie;
}

void ack_mark_rejected(sl_ack *a)
{
    if (a && a->kind == ACK_GROUP) atomic_store(&a->rejected, 1);
}

void ack_retain(sl_ack *a)
{
    if (a) atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void ack_group_add(sl_ack *g, sl_ack *m)
{
    if (!g || !m || g->kind != ACK_GROUP) return;
    ack_retain(m);
    pthread_mutex_lock(&g->glock);
    if (g->nmembers == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->members = xrealloc(g->members, g->cap * sizeof *g->members);
    }
    g->members[g->nmembers++] = m;
    pthread_mutex_unlock(&g->glock);
}

void ack_release(sl_ack *a)
{
    if (!a) return;
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1) return;
    if (a->kind == ACK_ENTRY) {
        /* The last touch: once set, a sweeper may pop and recycle the token. */
        atomic_store_explicit(&a->finished, 1, memory_order_release);
        return;
    }
    /* A finished group tells its watcher first, then releases its members; no other thread
     * can see it now. */
    int rejected = atomic_load(&a->rejected);
    if (a->watch) a->watch(a->watch_arg, a->watch_cookie, rejected);
    /* A watched group's one member is the same record's previous token (watched by an earlier
     * stage, maybe): a copy in the dead letter is a copy of that record too. */
    for (size_t i = 0; i < a->nmembers; i++) {
        if (rejected && a->watch) ack_mark_rejected(a->members[i]);
        ack_release(a->members[i]);
    }
    free(a->members);
    pthread_mutex_destroy(&a->glock);
    free(a);
}

size_t ack_take_commits(ack_tracker *t, sl_position *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nparts && n < max; i++) {
        ack_partition *p = t->parts[i];
        pthread_mutex_lock(&p->lock);
        pop_finished(p, LONG_MAX);
        if (p->moved) {
            out[n].topic = p->topic;
            out[n].partition = p->partition;
            out[n].offset = p->committed;
            p->moved = 0;
            n++;
        }
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

int64_t ack_committed(ack_partition *p)
{
    pthread_mutex_lock(&p->lock);
    pop_finished(p, LONG_MAX);
    int64_t c = p->committed;
    pthread_mutex_unlock(&p->lock);
    return c;
}

long ack_pending(ack_tracker *t)
{
    long n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nparts; i++) {
        ack_partition *p = t->parts[i];
        pthread_mutex_lock(&p->lock);
        pop_finished(p, LONG_MAX);
        for (const sl_ack *a = p->head; a; a = a->next) /* finished ones behind the head */
            n += !atomic_load_explicit(&a->finished, memory_order_acquire);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

long ack_partition_detach(ack_tracker *t, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&t->lock);
    size_t i = 0;
    while (i < t->nparts && !ack_partition_is(t->parts[i], topic, partition)) i++;
    if (i == t->nparts) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    ack_partition *p = t->parts[i];
    t->parts[i] = t->parts[--t->nparts];
    t->detached = xrealloc(t->detached, (t->ndetached + 1) * sizeof *t->detached);
    t->detached[t->ndetached++] = p;
    pthread_mutex_lock(&p->lock);
    pop_finished(p, LONG_MAX); /* recycle; a move here is dropped with `moved` below, as before */
    long left = 0;
    for (sl_ack *a = p->head; a; a = a->next) left += !atomic_load_explicit(&a->finished, memory_order_acquire);
    p->detached = 1;
    p->moved = 0;
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&t->lock);
    return left;
}
