/*
 * mockhost — a minimal in-process stand-in for the sluice host, for unit tests, the fuzzer
 * and the stage benchmark of validator, dedup and window-kpi.
 *
 * It implements sl_api over cJSON (parse once per record, cached on the record), runs a chain
 * of stages synchronously, collects what the last stage emits and what any stage rejects, and
 * tracks acknowledgement tokens (inputs, holds, groups) so tests can assert when an input is
 * finished. It is deliberately small: one thread, no partitions callbacks, no retries.
 */
#ifndef MOCKHOST_H
#define MOCKHOST_H

#include <sluice/stage.h>
#include <stdbool.h>

typedef struct mh_ack mh_ack;
typedef struct mh_stage mh_stage;

/* A record as the mock host keeps it; `r` comes first so a sl_record* of ours casts back. */
typedef struct mh_rec {
    sl_record r;
    char *value;      /* owned, NUL-terminated */
    char *key;        /* owned */
    char *topic;      /* owned */
    struct cJSON *root;
    const char *json_err;
    bool parsed, dirty;
    int refs;         /* mock-internal: how many lists hold this record */
    char reason[256]; /* for rejected records */
    char stage[64];
} mh_rec;

typedef struct mh_list {
    mh_rec **v;
    size_t n, cap;
} mh_list;

/* Open a stage. `desc` from a linked-in entry or NULL to dlopen `so_path`. `kv` is a
 * NULL-terminated list of key, value strings parsed per the config table (lists as
 * "a,b,c" or "[a, b]"). Returns NULL (and prints why) on failure. */
mh_stage *mh_open(const sl_stage_desc *desc, const char *so_path, const char *name,
                  const char *config_dir, const char *const *kv);
/* The last error code of mh_open (SL_ECONFIG when init refused the config). */
extern int mh_last_init_err;
void mh_close(mh_stage *st);
/* Path of a built plugin: $SLUICE_BUILD_DIR/plugins/NAME/NAME.so (static buffer). */
const char *mh_plugin_path(const char *name);

/* A new input record with a fresh ack token (a source's record). */
mh_rec *mh_input(const char *value, size_t len, int32_t partition, int64_t offset);
void mh_rec_free(mh_rec *r);

/* Run batch `in` through stages[0..n): output of the last stage appended to `out`, rejected
 * records (with .reason/.stage) to `dlq`. The inputs' in-flight references are dropped. */
sl_err mh_process(mh_stage **stages, size_t n, mh_rec **in, size_t nin, mh_list *out,
                  mh_list *dlq);
/* Call flush(final) on each stage in order; what stage i emits goes through i+1.. */
sl_err mh_flush(mh_stage **stages, size_t n, int final, mh_list *out, mh_list *dlq);

/* The sink side: make every record of the list durable (drop its reference) and empty it. */
void mh_list_ack_clear(mh_list *l);
void mh_list_free(mh_list *l);

/* Current value bytes of a record (re-serialised if changed). */
const char *mh_value(mh_rec *r);

/* Acknowledgement observation: number of input tokens created and finished so far. */
extern size_t mh_inputs_created, mh_inputs_finished;
/* Whether the input token of record `r` (an input made by mh_input) is finished. */
bool mh_input_finished(const mh_rec *r);
/* Free the mock's global state (call at the end of a test, for leak checks). */
void mh_shutdown(void);
/* Value of counter `name` of a stage (0 if never counted). */
uint64_t mh_counter(mh_stage *st, const char *name);
/* A mock clock: monotonic_ms/now_ms return this when set (>= 0), else the real clock. */
extern int64_t mh_fake_now_ms;
/* Suppress log output below this level (default SL_LOG_WARN). */
extern int mh_log_level;

#endif
