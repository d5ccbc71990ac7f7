/* window.h — the general windowed-aggregation stage: types shared by its files.
 *
 *   spec.c    the YAML specs (windows, group_by, aggregates, derived columns) compiled at init
 *   state.c   partitions, windows, groups; a record's contribution extracted and applied
 *   emit.c    output rows (derived columns in exact rational arithmetic), emission cycles
 *   window.c  the stage callbacks: process, flush, assign/revoke, restore; the config table
 */
#ifndef SL_WINDOW_H
#define SL_WINDOW_H

#include <sluice/stage.h>

#include <stdbool.h>
#include <stdint.h>

#define W_MAX_SIZES 16
#define W_MAX_AGGS 64   /* a contribution's "present" bits fit one uint64_t */
#define W_MAX_GROUP 8   /* group_by fields */
#define W_MAX_PATHS 32  /* distinct JSON fields read per record */
#define W_MAX_CONDS 32  /* distinct `where` conditions */
#define W_KEY_MAX 256   /* bytes of a group key; longer ones are dead letters */

typedef enum { WK_TUMBLING, WK_HOPPING, WK_SESSION } wkind;

typedef enum { A_COUNT, A_SUM, A_MIN, A_MAX, A_AVG, A_FIRST, A_LAST, A_DISTINCT, A_DERIVED } aop;

typedef struct wconf {
    char *time_field;
    sl_list windows;
    sl_list group_by;
    sl_map aggregates;
    int64_t lateness_ms;
    int64_t retention_ms;
    int64_t emit_interval_ms;
    int64_t idle_timeout_ms;
    int64_t future_limit_ms;
    int passthrough;
    char *topic_prefix;
    int close_on_end;
    int count_after; /* 0: durable, 1: process */
} wconf;

/* A JSON path "a.b.c" split once at init. */
typedef struct wpath {
    char *text;
    char *seg[8];
    sl_json_key key[8]; /* precomputed member keys (ABI 1.7 json_get_key) */
    int n;
} wpath;

/* A condition (`where`): compiled at init, evaluated once per record whatever the number of
 * aggregates sharing it. */
typedef struct wcond wcond;
wcond *wcond_compile(const char *text, int base_col, char *err, size_t errlen);
bool wcond_eval(const wcond *c, const sl_api *api, const sl_json *root, const sl_json *const *nodes);
void wcond_free(wcond *c);

/* Derived column: reverse Polish over constants and aggregate columns. */
typedef struct dstep {
    char op;    /* 'c' const, 'v' column, '+', '-', '*', '/', 'n' negate */
    int col;    /* 'v': index of the aggregate */
    __int128 num, den; /* 'c' */
} dstep;

typedef struct wagg {
    char *name;
    aop op;
    int path;        /* index into paths, -1: none (count) */
    int cond;        /* index into conds, -1: none */
    int scale;       /* decimal digits kept (numbers as int64 minor units) */
    bool fixed;      /* scale given: printed with exactly `scale` digits; else trimmed */
    int64_t pow10;   /* 10^scale */
    int exact;       /* distinct: exact up to this many values, then the sketch */
    char *sketch;    /* distinct: column carrying the state (restore), NULL: none */
    int slot;        /* first int64 slot in a group */
    int nslots;
    dstep *rpn;      /* derived */
    int nrpn;
    int decimals;    /* derived without scale: printed as a double with this many digits */
} wagg;

typedef struct wsize {
    wkind kind;
    int64_t size, slide;
    char label[64];
    char topic[160];
} wsize;

/* Distinct values of one aggregate in one group: exact hashes up to the bound, then HLL. */
typedef struct wdist {
    uint32_t n, cap; /* exact mode: values in tab (open addressing, 0 = empty slot) */
    uint64_t floor;  /* a restored count without state: the estimate never goes below */
    uint8_t *hll;    /* non-NULL: sketch mode */
    uint64_t tab[];
} wdist;

typedef struct wgroup {
    uint64_t hash;
    uint32_t finals; /* final rows emitted: the next one's revision */
    uint16_t keylen;
    bool dirty;
    char *key;       /* group key bytes (type-tagged values), for output and equality */
    int64_t slots[]; /* aggregate state; distinct slots hold a wdist pointer */
} wgroup;

typedef struct win {
    int64_t start;
    uint8_t si;
    bool closed, dirty, in_fix;
    bool emitted, retract;  /* sessions: a row went out; merged into an older session */
    uint32_t n_groups, cap; /* open addressing over groups; cap 1 when group_by is empty */
    wgroup **tab;
    /* sessions (one group each): the last event time, the group's sessions by start */
    int64_t last;
    struct win *older, *newer;
    int64_t merged_into;
} win;

typedef struct series {
    win **v; /* sorted by start; v[0..n_closed) are closed (sessions: in no order) */
    size_t n, cap, n_closed;
    win **head; /* sessions: the newest session of each group (open addressing) */
    uint32_t hcap, hn;
} series;

/* A record's contribution, extracted at process time; applied then, or once its passthrough
 * copy is durable (count_after: durable). Fixed size per configuration. */
typedef struct contrib {
    int64_t ts, offset;
    sl_ack *held;     /* count_after: durable — the input, kept unfinished until its rows are out */
    uint64_t present; /* bit a: aggregate a takes a value from this record */
    uint64_t ghash;
    uint16_t keylen;
    bool done, rejected;
    int64_t val[];    /* per aggregate: scaled number, or the value's hash (distinct); then the
                         group key (W_KEY_MAX bytes, only with group_by): see W_CKEY */
} contrib;

/* The group key bytes of a contribution: after its values, so a stage without group_by keeps
 * contributions small (the reference KPIs: 144 bytes). */
#define W_CKEY(k, c) ((char *)&(c)->val[(k)->n_aggs])

typedef struct part {
    char *topic;
    int32_t partition;
    int64_t max_ts;
    bool seen;
    bool dirty_open;
    int64_t last_input_ms;      /* monotonic time of the last input (idle timeout) */
    sl_ack *group;
    int64_t agg_off[W_MAX_SIZES];
    int64_t cov[W_MAX_SIZES];
    int64_t cov_max;
    series s[W_MAX_SIZES];
    win **fix;
    size_t n_fix, cap_fix;
    bool seen_in;
    int64_t seen_ts;            /* highest event time accepted (count_after: durable; max_ts: applied) */
    /* pending contributions (count_after: durable), applied from the head in offset order; the
     * cookie of entry i is id << 40 | (q_seq0 + i) */
    uint64_t id;
    char *q;
    size_t q_head, q_n, q_cap;
    uint64_t q_seq0;
} part;

typedef struct wstage {
    const sl_api *api;
    const wconf *conf;
    size_t n_sizes;
    wsize sz[W_MAX_SIZES];
    size_t n_group;
    int group_path[W_MAX_GROUP];
    char *group_name[W_MAX_GROUP];
    size_t n_paths;
    bool fast_keys;  /* the host has json_get_key: paths use precomputed keys */
    wpath paths[W_MAX_PATHS];
    size_t n_conds;
    wcond *conds[W_MAX_CONDS];
    char *cond_text[W_MAX_CONDS];
    size_t n_aggs;
    wagg aggs[W_MAX_AGGS];
    size_t n_slots;
    size_t contrib_size;
    part **parts;
    size_t n_parts;
    uint64_t next_part_id;
    part *last;
    sl_position *assigned;
    size_t n_assigned;
    int64_t last_emit_ms;
    bool delivered;  /* count_after: durable, with passthrough and api->watch */
    contrib *scratch; /* the record being processed (count_after: process) */
    char *why, *where; /* config errors: message and JSON Pointer (check, init) */
    size_t why_len, where_len;
    char *row;       /* output buffer, grown at init to fit every column */
    size_t row_cap;
} wstage;

/* spec.c */
sl_err w_spec_compile(wstage *k);
void w_spec_free(wstage *k);
const sl_json *w_path_get(const wstage *k, const sl_json *root, const wpath *p);

/* state.c */
int64_t w_floor_div(int64_t a, int64_t b);
part *w_get_part(wstage *k, const char *topic, int32_t partition);
part *w_find_part(wstage *k, const char *topic, int32_t partition);
void w_drop_part(wstage *k, const char *topic, int32_t partition);
void w_part_free(wstage *k, part *p);
bool w_same_topic(const char *a, const char *b);
win *w_get_win(wstage *k, part *p, size_t si, int64_t start, int64_t watermark);
wgroup *w_get_group(wstage *k, win *w, uint64_t hash, const char *key, size_t keylen);
void w_win_free(wstage *k, win *w);
void w_group_clear(wstage *k, wgroup *g);
bool w_add_fix(part *p, win *w);
/* Fills c from the record; returns NULL or a reason (a dead letter). */
const char *w_extract(wstage *k, const sl_json *root, const sl_json *tnode, int64_t ts, contrib *c);
/* Adds c to every window of every size; false on out of memory. */
bool w_apply(wstage *k, part *p, const contrib *c);
bool w_apply_group(wstage *k, wgroup *g, const contrib *c);
uint64_t w_distinct_count(const wdist *d, bool *exact);
bool w_distinct_add(wdist **dp, uint64_t h, int exact_bound);

/* restore.c */
sl_err w_restore(wstage *k, sl_ctx *ctx, const sl_batch *state);

/* delivered.c: apply on delivery */
contrib *w_queue_push(wstage *k, part *p, uint64_t *cookie);
sl_err w_finished(wstage *k, sl_ctx *ctx, uint64_t cookie, int rejected);

/* session.c */
bool w_session_apply(wstage *k, part *p, size_t si, const contrib *c, int64_t wm);
bool w_session_due(const wstage *k, const part *p, size_t si, int64_t wm);
sl_err w_session_cycle(wstage *k, sl_ctx *ctx, part *p, size_t si, bool close_all, int64_t wm);
win *w_session_restore(wstage *k, part *p, size_t si, int64_t start, int64_t last, uint64_t hash, const char *key,
                       size_t keylen);
void w_session_free(wstage *k, series *s);
void w_merge_group(wstage *k, wgroup *into, const wgroup *from);
bool w_distinct_merge(wdist **into, const wdist *from, int exact_bound);
wgroup *w_session_group(const win *w);

/* emit.c */
sl_err w_emit_window(wstage *k, sl_ctx *ctx, part *p, win *w, bool final, bool all);
int64_t w_end(const wstage *k, const win *w);
bool w_cycle_due(const wstage *k, const part *p);
sl_err w_cycle(wstage *k, sl_ctx *ctx, part *p, bool close_all);

#endif
