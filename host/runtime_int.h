/* runtime_int.h — what the parts of the runtime share (not a public interface).
 *
 * record.c    host records, the record slab and record vectors
 * json_api.c  lazy JSON access for stages (api->json*, api->value, api->set_topic)
 * stage_api.c the sl_api table: logging, metrics, emit, hold, reject
 * chain.c     running a batch through the chain, dead letters, flush, commit, drain, partitions
 * status.c    the status line for the supervisor
 * runtime.c   tasks (threads), setup and teardown, runtime_run
 */
#ifndef SL_HOST_RUNTIME_INT_H
#define SL_HOST_RUNTIME_INT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "acks.h"
#include "runtime.h"
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
    uint8_t from_source; /* a source read it (end-to-end latency counts only those) */
    uint32_t fwd;       /* == task seq when the current stage forwarded it (api->watch must
                           come before: the forwarded copy holds a reference on the old token) */
    uint8_t rollback;   /* a dead letter from a reject of an input record, made during a process
                           call: discarded if that call fails (the retry decides again) */
    struct stage_inst *rejected_by; /* dead letters: the stage that rejected the record */
    const char *reason;             /* dead letters: why (in the arena) */
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
extern const double bucket_bounds[NBUCKETS];
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
    sl_ack **stuck;       /* records nobody could take under errors.tolerance none: kept
                             unfinished so no commit passes them; released at teardown */
    size_t nstuck;
    int in_process;       /* inside a transform's or sink's process call */
    int in_poll;          /* inside the source's poll (its rebalance callbacks run there) */
    int retry_polling;    /* polling the paused source while a stage retries */
    int retry_paused;     /* the source was paused for a stage's retries */
    recvec deferred;      /* records a paused source still handed over during retries */
    size_t call_holds;    /* input records held during the current process call */
    atomic_int failed;    /* a stage returned FATAL (read by the status writer) */
    atomic_int paused;    /* the source is paused on the supervisor's request */
    pthread_mutex_t slock; /* guards e2e, committed, owned and ends (read by write_status) */
    histogram e2e;        /* record timestamp -> the sink returned, seconds */
    sl_position *committed; /* last committed position per partition (topic strdup'd) */
    size_t ncommitted;
    sl_position *owned; /* partitions the source owns now (status "assigned"; topic strdup'd) */
    size_t nowned;
    sl_position *ends; /* api->report_end_offsets: each partition's end (status "lag") */
    size_t nends;
    atomic_int done;      /* the source is exhausted */
    int64_t last_commit;
    uint32_t seq;         /* one per process call, for the dropped count */
    ack_partition *last_part; /* the source's last partition: most records hit it again */
    int64_t wave_now;     /* wall clock for this wave's ingest timestamps; 0 = not read yet */
    pthread_mutex_t nlock; /* guards the notes below (groups finish on any thread) */
    struct finished_note *notes; /* watched records finished, for on_finished (api->watch) */
    size_t nnotes, capnotes;
    int notes_closed;     /* tearing down: notes are dropped */
};

/* A watched record's copies are all finished: on_finished(cookie, rejected) is due. */
typedef struct finished_note {
    struct stage_inst *s;
    void *cookie;
    int rejected;
} finished_note;

/* The stage's on_finished, or NULL when it has none or was built before ABI 1.2 (its
 * descriptor ends before the field). */
static inline sl_err (*stage_on_finished(const sl_stage_desc *d))(void *, sl_ctx *, void *, int)
{
    if (d->struct_size < offsetof(sl_stage_desc, on_finished) + sizeof d->on_finished) return NULL;
    return d->on_finished;
}

/* process-wide runtime state (runtime.c) */
extern atomic_int stop_requested;
extern atomic_int pause_requested; /* set from the supervisor's control pipe */
extern pthread_mutex_t error_lock;
extern char last_error[512]; /* the first error-level log line, for the status line */
extern task *tasks;
extern int ntasks;
extern const sl_api *runtime_stage_api; /* the table stage_setup hands to init */
/* Task k of cfg with its stage instances set up (0, or an SL_EXIT_* code), and its teardown
 * (after either result); runtime_run's tasks and `sluice test`'s (host/testrun_harness.c). */
int task_init(task *t, pipeline_cfg *cfg, int k);
void task_free(task *t);

/* record.c */
void vec_push(recvec *v, sl_record *r);
hrec *hrec_new(task *t);
hrec *as_hrec(task *t, const sl_record *r);
void wave_end(task *t);
hrec *copy_record(task *t, const sl_record *src, sl_ack *ack);
hrec *borrow_record(task *t, const sl_record *src, sl_ack *ack);
void materialize(task *t, hrec *h);

/* json_api.c */
sl_json *api_json(sl_ctx *ctx, const sl_record *rec, const char **err);
sl_json *api_json_get(const sl_json *obj, const char *key);
sl_json_type api_json_type(const sl_json *node);
const char *api_json_string(const sl_json *node);
double api_json_number(const sl_json *node);
size_t api_json_size(const sl_json *node);
sl_json *api_json_at(const sl_json *node, size_t i);
sl_json *api_json_next(const sl_json *node);
const char *api_json_key(const sl_json *node);
sl_err api_json_set_string(sl_ctx *ctx, const sl_record *rec, const char *key, const char *v);
sl_err api_json_set_number(sl_ctx *ctx, const sl_record *rec, const char *key, double v);
sl_err api_json_set_bool(sl_ctx *ctx, const sl_record *rec, const char *key, int v);
sl_err api_json_set_null(sl_ctx *ctx, const sl_record *rec, const char *key);
const char *api_json_string_len(const sl_json *node, size_t *len);
sl_err api_json_int64(const sl_json *node, int64_t *out);
const char *api_json_print(sl_ctx *ctx, const sl_json *node, size_t *len);
void api_json_key_init(sl_json_key *k, const char *name);
sl_json *api_json_get_key(const sl_json *obj, const sl_json_key *k);
int api_json_key_is(const sl_json *node, const sl_json_key *k);
uint64_t api_json_key_hash(const sl_json *node, size_t *len);
const void *api_value(sl_ctx *ctx, const sl_record *rec, size_t *len);
sl_err api_set_topic(sl_ctx *ctx, const sl_record *rec, const char *topic);
sl_err api_json_remove(sl_ctx *ctx, const sl_record *rec, const char *key);
sl_err api_json_set_json(sl_ctx *ctx, const sl_record *rec, const char *key, const sl_json *value);
sl_err api_set_key(sl_ctx *ctx, const sl_record *rec, const void *key, size_t len);

/* stage_api.c */
void hist_add(histogram *h, double v);
void tlog(task *t, stage_inst *s, sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Called for a record nobody can take (rejected with no dead letter, or refused by the dead
 * letter): errors.tolerance decides whether it is dropped or the pipeline stops. */
void give_up(task *t, stage_inst *s, const sl_record *rec, sl_ack *ack, const char *reason);

/* chain.c */
int stopping(const task *t);
int run_stage(task *t, stage_inst *s, recvec *in, recvec *out);
int run_chain(task *t, size_t from, recvec *in);
void flush_all(task *t, int final); /* final: an SL_FLUSH_* reason */
void commit(task *t);
void drain(task *t, int64_t timeout_ms, int why); /* why: SL_FLUSH_END or SL_FLUSH_REVOKE */
void api_partitions_assigned(sl_ctx *ctx, sl_position *parts, size_t n);
void api_partitions_revoked(sl_ctx *ctx, const sl_position *parts, size_t n);
void api_restore(sl_ctx *ctx, const sl_record *recs, size_t n);
void deliver_finished(task *t);
void api_report_end_offsets(sl_ctx *ctx, const sl_position *ends, size_t n); /* status.c */

/* status.c */
void write_status(pipeline_cfg *cfg, int fd, const char *state);
void write_failure(pipeline_cfg *cfg, int fd);

#endif
