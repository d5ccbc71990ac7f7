/* testrun.h — `sluice test`: pipeline unit tests run in process, without broker or database.
 *
 * testrun_harness.c  the chain of a pipeline's real stages between a feeder (in place of the
 *                    source) and a collector (in place of the sink and the dead letter), driven
 *                    synchronously on a virtual clock
 * testrun.c          test files: discovery, parsing, the checks, the PASS/FAIL report
 * testrun_match.c    comparing expected and actual records, the diff
 */
#ifndef SL_HOST_TESTRUN_H
#define SL_HOST_TESTRUN_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "yamltree.h"

/** One record fed in or collected (all heap-owned). */
typedef struct tr_rec {
    char *key;
    size_t key_len;
    int has_key;
    char *value;
    size_t value_len;
    char **hname, **hval;
    size_t *hlen, nh;
    int64_t timestamp_ms;
    char *topic;
    int32_t partition;
    int64_t offset;
    char *stage, *reason; /* dead letters: who rejected it and why */
} tr_rec;

typedef struct tr_recs {
    tr_rec *v;
    size_t n, cap;
} tr_recs;

void tr_recs_free(tr_recs *r);
tr_rec *tr_recs_push(tr_recs *r);

typedef struct tr_harness tr_harness;

/** The chain stages[from..to] of `cfg` (transforms) between the feeder and the collector, every
 *  stage initialised with a virtual clock starting at `now_ms` (wall) and 0 (monotonic).
 *  NULL with the reason in err when a stage refuses to start. */
tr_harness *tr_start(pipeline_cfg *cfg, size_t from, size_t to, int64_t now_ms, char *err, size_t errlen);
/** Feeds records through the chain (in batches of the pipeline's batch_size), each followed by
 *  a regular flush as the runtime does. 0, or -1 when the pipeline failed (see tr_error). */
int tr_feed(tr_harness *h, const tr_rec *recs, size_t n);
/** The feeder is assigned (revoke 0) or loses (1) these partitions, as a Kafka source in a
 *  rebalance: every stage's on_assign / on_revoke runs; on assignment the collector hands
 *  `restore` back through api->restore, so the stages' on_restore rebuild state from it. */
int tr_partitions(tr_harness *h, sl_position *parts, size_t n, int revoke, const tr_rec *restore, size_t nrestore);
/** Moves both clocks forward by `ms`, then a regular flush (what ticks while time passes). */
int tr_advance(tr_harness *h, int64_t ms);
/** flush(final): 1 is the end of input (shutdown drain), 0 a regular tick. */
int tr_flush(tr_harness *h, int final);
int64_t tr_now(const tr_harness *h);
/** What reached the collector: records leaving the last stage, and dead letters. */
const tr_recs *tr_output(const tr_harness *h);
const tr_recs *tr_dead(const tr_harness *h);
/** Why the pipeline failed (the first error a stage logged), "" when it did not. */
const char *tr_error(const tr_harness *h);
void tr_stop(tr_harness *h);

/** A collected record as JSON for checks and reports: {key, value, headers, timestamp, topic,
 *  partition, offset[, stage, reason]}; value parsed when it is JSON, else a string. */
cJSON *tr_rec_json(const tr_rec *r);

/** `a` matches `e` (expected): exact = equal JSON; otherwise every member of an expected object
 *  must match (a subset), arrays item by item. Numbers compare as numbers. */
int tr_json_match(const cJSON *e, const cJSON *a, int exact);


/* ---- test files (testrun.c) and running a case (testrun_case.c) ---- */

typedef struct step {
    enum { ST_INPUT, ST_ADVANCE, ST_FLUSH, ST_ASSIGN, ST_REVOKE } kind;
    const ynode *at;
    const ynode *parts;   /* ST_ASSIGN, ST_REVOKE: [{topic, partition, offset}] */
    const ynode *records; /* ST_INPUT: a list (may be NULL with file); ST_ASSIGN: restore (or NULL) */
    const ynode *file;    /* ST_INPUT: an NDJSON file */
    int64_t ms;           /* ST_ADVANCE */
    int final;            /* ST_FLUSH */
} step;

typedef struct tcase {
    const ynode *node, *name;
    const ynode *stages; /* NULL: the file's */
    int64_t now;
    step *steps;
    size_t nsteps;
    const ynode *expect, *dead; /* maps or lists of maps; may be NULL */
} tcase;

typedef struct failure {
    char *check, *message;
    cJSON *expected, *actual; /* for the diff; may be NULL */
} failure;

typedef struct case_result {
    char *file, *name;
    int line;
    int status; /* 0 pass, 1 fail */
    double ms;
    failure *f;
    size_t nf;
} case_result;

/** The last test-file error, "file:line:col: message". */
extern char tr_err[1024];
/** Sets tr_err at node n; returns -1. */
int tr_bad(const ynode *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** ms since the epoch, or RFC 3339 text. */
int tr_get_time(const ynode *n, const char *what, int64_t *out);
/** Adds a failure to the case (exp and act are taken over; may be NULL). */
void tr_fail(case_result *cr, const char *check, cJSON *exp, cJSON *act, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** Does the collected record (as tr_rec_json) satisfy the expected one? Only the fields the
 *  expected names count; exact: the value equal, else a subset and a reason a part of it. */
int tr_record_match(const cJSON *e, const cJSON *a, int exact);
/** A condition of `where:` / `all:` (the expression language of the transform and window
 *  stages): 0, or -1 with tr_err naming file:line:column of the mistake. */
int tr_check_expr(const ynode *n);
/** Runs one case on stages[from..to] of cfg; defaults: the test file's `defaults:` map (or
 *  NULL). Failures go into cr. */
void tr_run_case(pipeline_cfg *cfg, size_t from, size_t to, const tcase *tc, const ynode *defaults, case_result *cr);

/** `sluice test [--json] PATH...` (main.c). Returns 0 all passed, 1 a case failed, 2 a bad
 *  test file. */
int cmd_test_run(char **paths, size_t npaths, int json);

#endif
