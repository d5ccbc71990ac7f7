/* wkpi.h — window-kpi's state, shared by its files (not a public interface).
 *
 * window-kpi.c  callbacks: process, flush, on_finished, partitions, config and descriptor
 * windows.c     partitions, windows, counting an input (apply), emission cycles, the sketch
 * restore.c     rebuilding windows from KPI rows handed back by a sink (on_restore)
 */
#ifndef WKPI_H
#define WKPI_H

#include <sluice/stage.h>

#include <stdbool.h>
#include <stdint.h>

#include "../common/sl_hll.h"

#define MAX_WINDOWS 16

typedef struct wconf {
    char *time_field;
    sl_list windows;
    int64_t lateness_ms;
    int64_t retention_ms;
    int64_t emit_interval_ms;
    int passthrough;
    char *topic_prefix;
    int close_on_end;
    int count_after; /* 0 durable, 1 process */
} wconf;

typedef struct win {
    int64_t start;
    uint64_t events, page_views, add_to_cart, orders, payment_failed, refunds;
    int64_t gmv_cents, refund_cents;
    uint64_t users_floor; /* distinct_users restored from a row: the estimate never goes below */
    uint32_t finals;      /* final records emitted so far: the next one's revision */
    uint8_t si;           /* index of its window size */
    bool closed, dirty, in_fix;
    uint8_t hll[SL_HLL_M];
} win;

typedef struct series {
    win **v; /* sorted by start; v[0..n_closed) are closed */
    size_t n, cap, n_closed;
} series;

typedef struct part part;

/* What one input adds to its windows, taken from its JSON when it is processed and counted
 * later, once its passed-through copy is durable (count_after: durable). */
typedef struct contrib {
    struct contrib *next; /* the partition's FIFO, or the free list */
    part *p;              /* NULL once its partition was dropped: freed when its note comes */
    sl_ack *held;         /* the input, kept unfinished until it is in its partition's group */
    int64_t ts, cents, offset;
    uint64_t user_hash;
    uint16_t sizes;       /* bit si: count it in window size si (not already covered) */
    uint8_t kind;         /* see event_kind */
    bool has_user, finished, rejected;
} contrib;

struct part {
    char *topic; /* the source topic; NULL when records carry none */
    int32_t partition;
    int64_t max_ts;             /* highest event time counted: the watermark's base */
    bool seen;                  /* something was counted (or restored) */
    int64_t max_seen;           /* highest event time processed, counted or still pending */
    bool seen_any;
    bool dirty_open;            /* some open window changed since the last cycle */
    sl_ack *group;              /* inputs counted since the last cycle */
    int64_t agg_off[MAX_WINDOWS]; /* highest input offset counted per size (-1: none) */
    int64_t cov[MAX_WINDOWS];   /* restored coverage: inputs at or below are already counted */
    int64_t cov_max;            /* max of cov[]: the fast "nothing to skip" test */
    series s[MAX_WINDOWS];
    win **fix; /* closed windows changed since their last final record */
    size_t n_fix, cap_fix;
    contrib *head, *tail; /* inputs processed but not counted yet, in offset order */
};

typedef struct contrib_chunk {
    struct contrib_chunk *next;
    contrib v[256];
} contrib_chunk;

typedef struct wkpi {
    const sl_api *api;
    const wconf *conf;
    size_t n_sizes;
    int64_t size[MAX_WINDOWS];
    char label[MAX_WINDOWS][24];
    char topic[MAX_WINDOWS][96];
    part **parts;
    size_t n_parts;
    part *last;
    sl_position *assigned; /* (topic, partition) assigned: restored KPI rows without a topic */
    size_t n_assigned;
    int64_t last_emit_ms;
    bool deferred;      /* count inputs once their copies are durable (api->watch) */
    contrib *free_contribs;
    contrib_chunk *chunks;
} wkpi;

/* windows.c */
int64_t floor_div(int64_t a, int64_t b);
void duration_label(int64_t ms, char *buf, size_t n);
bool same_topic(const char *a, const char *b);
part *get_part(wkpi *k, const char *topic, int32_t partition);
void drop_part(wkpi *k, const char *topic, int32_t partition);
void part_free(wkpi *k, part *p);
win *get_win(part *p, size_t si, int64_t start, int64_t watermark, int64_t size);
contrib *contrib_get(wkpi *k);
void contrib_put(wkpi *k, contrib *c);
sl_err apply(wkpi *k, sl_ctx *ctx, part *p, const contrib *c, sl_ack *ack);
bool cycle_due(const wkpi *k, const part *p);
sl_err cycle(wkpi *k, sl_ctx *ctx, part *p, bool close_all);

/* restore.c */
sl_err k_on_restore(void *self, sl_ctx *ctx, const sl_batch *state);

#endif
