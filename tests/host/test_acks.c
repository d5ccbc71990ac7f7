/* Property test of the ack tracker: tokens released in random order, from several threads,
 * some through groups. At every moment the committed offset must not pass an unreleased token,
 * and at the end it must be exactly the last offset. Many seeded runs. */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "acks.h"

#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

enum { NTHREADS = 4 };

typedef struct run {
    ack_partition *part;
    sl_ack **tok;
    atomic_char *released;   /* set just before the release call */
    int64_t *offsets;
    size_t n;
    size_t *order;
    atomic_int done_threads;
    int violations;
} run;

typedef struct worker { run *r; size_t from, to; unsigned seed; } worker;

static void *release_some(void *arg)
{
    worker *w = arg;
    for (size_t i = w->from; i < w->to; i++) {
        size_t k = w->r->order[i];
        atomic_store(&w->r->released[k], 1);
        ack_release(w->r->tok[k]);
    }
    atomic_fetch_add(&w->r->done_threads, 1);
    return NULL;
}

/* Checker: whenever it looks, every token at or below the committed offset was released. */
static void *check(void *arg)
{
    run *r = arg;
    while (atomic_load(&r->done_threads) < NTHREADS) {
        int64_t c = ack_committed(r->part);
        for (size_t k = 0; k < r->n && r->offsets[k] <= c; k++)
            if (!atomic_load(&r->released[k])) r->violations++;
    }
    return NULL;
}

static unsigned xr(unsigned *s) { *s ^= *s << 13; *s ^= *s >> 17; *s ^= *s << 5; return *s; }

/* After a revoke whose drain timed out, the partition is detached: its stale tokens neither
 * block the commits of a new entry for the same partition (reassigned) nor commit anything. */
static void detach_test(void)
{
    ack_tracker t;
    ack_tracker_init(&t);
    ack_partition *p = ack_partition_get(&t, "a", 0), *other = ack_partition_get(&t, "a", 1);
    sl_ack *a1 = ack_new(p, 1), *a2 = ack_new(p, 2), *o1 = ack_new(other, 7);
    ack_release(a1);
    sl_position pos[4];
    size_t n = ack_take_commits(&t, pos, 4);
    CHECK(n == 1 && pos[0].offset == 1, "before detach: offset 1 committable (%zu)", n);
    CHECK(ack_partition_detach(&t, "a", 0) == 1, "one token was still out");
    CHECK(ack_pending(&t) == 1, "pending counts only the other partition's token (%ld)", ack_pending(&t));
    ack_partition *p2 = ack_partition_get(&t, "a", 0);
    CHECK(p2 != p, "a reassigned partition gets a fresh entry");
    sl_ack *b3 = ack_new(p2, 3);
    ack_release(b3);
    n = ack_take_commits(&t, pos, 4);
    CHECK(n == 1 && pos[0].partition == 0 && pos[0].offset == 3, "the stale token does not block the new entry");
    ack_release(a2); /* late release of the stale token */
    n = ack_take_commits(&t, pos, 4);
    CHECK(n == 0, "a stale token commits nothing for a partition no longer owned (%zu)", n);
    CHECK(ack_pending(&t) == 1, "and does not disturb the pending count (%ld)", ack_pending(&t));
    ack_release(o1);
    n = ack_take_commits(&t, pos, 4);
    CHECK(n == 1 && pos[0].partition == 1 && pos[0].offset == 7, "other partitions commit as before");
    CHECK(ack_pending(&t) == 0, "nothing pending at the end");
    ack_tracker_destroy(&t);
    printf("ok - detached partitions: stale tokens neither block nor commit\n");
}

int main(void)
{
    detach_test();
    int runs = 300;
    for (int seed = 1; seed <= runs; seed++) {
        unsigned s = (unsigned)seed * 2654435761u;
        ack_tracker t;
        ack_tracker_init(&t);
        run r = {0};
        r.n = 200 + xr(&s) % 2000;
        r.part = ack_partition_get(&t, "topic", 3);
        r.tok = calloc(r.n, sizeof *r.tok);
        r.released = calloc(r.n, sizeof *r.released);
        r.offsets = calloc(r.n, sizeof *r.offsets);
        r.order = calloc(r.n, sizeof *r.order);
        int64_t off = 0;
        for (size_t k = 0; k < r.n; k++) {
            off += 1 + xr(&s) % 3; /* offsets with gaps, like byte positions or compacted topics */
            r.offsets[k] = off;
            r.tok[k] = ack_new(r.part, off);
            /* Some records are also held by a group (an aggregate) and a second reference
             * (a forwarded copy); the group is released by its own token in the order. */
            if (xr(&s) % 5 == 0) ack_retain(r.tok[k]), ack_release(r.tok[k]);
        }
        CHECK(ack_pending(&t) == (long)r.n, "pending %ld != %zu", ack_pending(&t), r.n);
        CHECK(ack_committed(r.part) == -1, "committed before any release");
        /* Groups: wrap some tokens: the group holds them, the run releases the group instead. */
        for (size_t k = 0; k < r.n; k += 7) {
            sl_ack *g = ack_group_new(&t);
            ack_group_add(g, r.tok[k]);
            ack_release(r.tok[k]); /* the group is now the only holder */
            r.tok[k] = g;
        }
        for (size_t k = 0; k < r.n; k++) r.order[k] = k;
        for (size_t k = r.n - 1; k > 0; k--) {
            size_t j = xr(&s) % (k + 1), tmp = r.order[k];
            r.order[k] = r.order[j];
            r.order[j] = tmp;
        }
        pthread_t th[NTHREADS], ck;
        worker w[NTHREADS];
        pthread_create(&ck, NULL, check, &r);
        for (int i = 0; i < NTHREADS; i++) {
            w[i] = (worker){&r, r.n * (size_t)i / NTHREADS, r.n * (size_t)(i + 1) / NTHREADS, s + (unsigned)i};
            pthread_create(&th[i], NULL, release_some, &w[i]);
        }
        for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
        pthread_join(ck, NULL);
        CHECK(r.violations == 0, "seed %d: committed offset passed an unreleased token %d times", seed, r.violations);
        CHECK(ack_committed(r.part) == r.offsets[r.n - 1], "seed %d: final committed %lld != last offset %lld",
              seed, (long long)ack_committed(r.part), (long long)r.offsets[r.n - 1]);
        CHECK(ack_pending(&t) == 0, "seed %d: %ld pending at the end", seed, ack_pending(&t));
        sl_position pos[4];
        size_t np = ack_take_commits(&t, pos, 4);
        CHECK(np == 1 && pos[0].partition == 3 && pos[0].offset == r.offsets[r.n - 1], "take_commits wrong");
        CHECK(ack_take_commits(&t, pos, 4) == 0, "take_commits reports an unmoved partition");
        ack_tracker_destroy(&t);
        free(r.tok);
        free(r.released);
        free(r.offsets);
        free(r.order);
    }

    /* Single-threaded exactness: after each release, committed == last offset of the finished
     * prefix (not just "not past"). */
    for (int seed = 1; seed <= 200; seed++) {
        unsigned s = (unsigned)seed;
        ack_tracker t;
        ack_tracker_init(&t);
        ack_partition *p = ack_partition_get(&t, NULL, 0);
        size_t n = 1 + xr(&s) % 300;
        sl_ack **tok = calloc(n, sizeof *tok);
        char *rel = calloc(n, 1);
        for (size_t k = 0; k < n; k++) tok[k] = ack_new(p, (int64_t)k * 10);
        for (size_t step = 0; step < n; step++) {
            size_t k;
            do k = xr(&s) % n; while (rel[k]);
            rel[k] = 1;
            ack_release(tok[k]);
            size_t prefix = 0;
            while (prefix < n && rel[prefix]) prefix++;
            int64_t want = prefix ? (int64_t)(prefix - 1) * 10 : -1;
            CHECK(ack_committed(p) == want, "seed %d step %zu: committed %lld, want %lld", seed, step,
                  (long long)ack_committed(p), (long long)want);
        }
        ack_tracker_destroy(&t);
        free(tok);
        free(rel);
    }
    printf("ack tracker: %d concurrent runs and 200 exact runs passed\n", runs);
    return 0;
}
