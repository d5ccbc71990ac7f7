/*
 * pg-sink.h — what the files of the pg-sink stage share: the configuration model, the row
 * buffers, the connection state and the functions each file offers the others.
 *
 *   pg-sink.c  the callbacks and the descriptor
 *   config.c   parsing `tables`
 *   format.c   buffers, COPY/JSON text of a record's values, buffered rows
 *   sql.c      SQL building, catalog, error classification
 *   writer.c   connections, the writer thread, bisection of refused rows
 *   writers.c  `writers` > 1: rows partitioned by conflict key over parallel connections
 *   restore.c  state restore on partition assignment
 */
#ifndef PG_SINK_H
#define PG_SINK_H

#include <sluice/stage.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../common/sl_buf.h"
#include "../common/sl_time.h"

/* ---- growable byte buffer with a sticky out-of-memory flag ---------------------------- */

/* The built-in stages' growable buffer (sticky oom flag, NUL-terminated), under pg-sink's
 * short names. */
typedef sl_gbuf buf;
#define buf_put sl_gbuf_put
#define buf_puts sl_gbuf_puts
#define buf_putc sl_gbuf_putc
#define buf_printf sl_gbuf_printf
#define buf_free sl_gbuf_free

/* ---- configuration model ------------------------------------------------------------- */

typedef enum src_kind {
    SRC_FIELD, /* a top-level JSON field of the value */
    SRC_PARTITION,
    SRC_OFFSET,
    SRC_TIMESTAMP,
    SRC_KEY,
    SRC_TOPIC,
    SRC_VALUE, /* the whole value */
    SRC_HEADER
} src_kind;

typedef enum conflict_mode { ON_CONFLICT_NONE, ON_CONFLICT_IGNORE, ON_CONFLICT_UPDATE } conflict_mode;

/* What a column's type means for the checks of check.c. */
typedef enum col_kind {
    CK_OTHER, /* arrays and the like: PostgreSQL parses the text */
    CK_TEXT,  /* text-input types (text, char(n), timestamps, boolean, …) */
    CK_INT2, CK_INT4, CK_INT8, CK_NUMERIC, CK_FLOAT4, CK_FLOAT8, CK_BYTEA, CK_JSON
} col_kind;

typedef struct column {
    char *name;     /* column name, unquoted */
    char *cfg_type; /* SQL type from the config (create_tables), or NULL */
    src_kind src;
    char *arg;      /* field or header name */
    /* from the catalog */
    char *sql_type; /* format_type() of the target column */
    char *def_expr; /* its DEFAULT expression, or NULL */
    bool is_json, is_time;
    col_kind kind;
    int prec, scale; /* numeric(prec, scale); -1: unconstrained */
    int max_chars;   /* character(n) / character varying(n); -1: none */
} column;

typedef struct schema_bounds schema_bounds;

typedef struct table_spec {
    char *topic; /* the `tables` key; "*" is the fallback */
    char *schema, *table;
    column *cols;
    size_t ncols;
    bool auto_cols; /* columns omitted: every column of the table, same-named field */
    char **keys;
    size_t nkeys;
    conflict_mode mode;
    bool needs_json;
    bool loaded; /* catalog read (once; the table's shape is assumed stable) */
    /* restore: on partition assignment, hand recent rows back to earlier stages */
    bool restore;
    int64_t restore_within_ms; /* 0: no time bound; else relative to the newest time_column
                                  value of the (topic, partition) */
    char *restore_time_col;    /* NULL: no time bound, rows in offset order */
    char *restore_topic_col;   /* the column holding the source topic (default: the one
                                  mapped from $topic), or NULL */
    int64_t restore_max_rows;  /* per (topic, partition); 0: none. Exceeding it fails. */
    size_t cov_col;            /* coverage per source topic: the column (restore.topic_column,
                                  fed from the record, no $offset column) whose value keys the
                                  spec's positions as "<spec topic>|<value>"; SIZE_MAX: none */
    char *check_schema;     /* validator schema whose bounds must fit the columns, or NULL */
    schema_bounds *bounds;  /* its numeric rules, loaded at init */
} table_spec;

typedef struct pg_config {
    char *dsn;
    char *tables;
    int64_t batch_size;
    int64_t flush_interval_ms;
    int create_tables;
    int store_offsets;
    char *offsets_table;
    char *offsets_topic;
    int64_t writers; /* connections writing rows in parallel (writers.c) */
} pg_config;

/* One buffered record: its COPY line and a copy of the record for the dead letter. */
typedef struct row {
    sl_ack *ack;
    size_t table;
    bool done;
    bool dropped; /* fenced or revoked: never written, never acked (see fence.c) */
    size_t line_off, line_len; /* in batch.lines */
    size_t topic_off, topic_len; /* in batch.saved; topic_len SIZE_MAX: no topic */
    size_t okey_off;             /* in batch.saved: the offsets key "<spec topic>|<source
                                    topic>" (table_spec.cov_col); SIZE_MAX: the plain key */
    size_t stopic_off;           /* in batch.saved: that source topic; SIZE_MAX: none */
    size_t key_off, key_len;     /* key_len SIZE_MAX: no key */
    size_t val_off, val_len;
    size_t hdr_off, n_headers;
    int64_t ts;
    int32_t partition;
    int64_t offset;
} row;

/* WR_REFUSED: a row PostgreSQL refuses was found alone; the task thread rejects it. */
typedef enum wr_result { WR_OK, WR_DATA, WR_RETRY, WR_FATAL, WR_REFUSED, WR_STOPPED } wr_result;

#define NO_ROW SIZE_MAX

/* The rows of one transaction. Two of them: process() fills one while the writer thread writes
 * the other. Whoever holds a batch is the only one touching it: the task thread while it fills
 * it or handles what came back, the writer while it is handed over (wstate W_BUSY). */
typedef struct batch {
    row *rows;
    size_t nrows, cap_rows;
    buf lines, saved;
    int64_t first_ms; /* when the oldest row arrived */
    /* from the writer, for the task thread (which alone may call reject, log, count) */
    wr_result result;
    size_t refused;   /* WR_REFUSED: that row, with `reason` */
    size_t pos_row;   /* a rejected row whose position goes first (its own transaction), or NO_ROW */
    char reason[1024];
    uint64_t written, flushes;
    double seconds;
} batch;

/* A connection and its up/down state: the task thread has one (catalog, restore), the writer
 * thread its own (the transactions). */
typedef struct pgc {
    PGconn *conn;
    bool writer;         /* log lines go through the notes queue (see say()) */
    int up;              /* -1 never connected, 0 down, 1 up: logs once per change */
    int attempts;        /* failed tries since the last success */
    int64_t next_try_ms; /* backoff: no connection attempt before this */
    int64_t backoff_ms;
    buf *sql;            /* per spec: [2i] COPY, [2i+1] INSERT (quoting needs the connection) */
    char *offsets_put;   /* upsert of the offsets table */
    char reason[1024];   /* the server's message for the last failure */
    bool share_lock;     /* fence_check takes the owner rows FOR SHARE (parallel writers) */
    bool down;           /* up == 0, under pg_sink.mu (for pg_sink.wdown) */
} pgc;

/* How a transaction treats positions: TX_ALL rows and their positions together; TX_ROWS rows
 * only; TX_OFFSETS positions only (finished rows included). */
typedef enum tx_mode { TX_ALL, TX_ROWS, TX_OFFSETS } tx_mode;

/* What one connection's writing of a batch (or part of it) did. */
typedef struct tally {
    uint64_t written, flushes;
    double seconds;
    size_t refused; /* WR_REFUSED: that row, with `reason` */
    char reason[1024];
} tally;

typedef struct writers writers;

enum { W_IDLE, W_BUSY, W_DONE };

typedef struct note {
    sl_log_level level;
    char msg[1200];
} note;

/* A (source topic, partition) this sink owns, with the epoch it got on assignment. */
typedef struct owned {
    char *topic;
    int32_t partition;
    int64_t epoch;
} owned;

typedef struct pg_sink {
    const sl_api *api;
    sl_ctx *ctx;
    const pg_config *cfg;
    const char *pipeline;
    table_spec *specs;
    size_t nspecs;

    pgc task;               /* the task thread's connection */
    bool tables_created;
    bool store_offsets;     /* the store_offsets setting */
    bool broken;            /* state restore failed: stop rather than run without state */
    bool failed;            /* the writer hit a setup error: stop */

    batch bufs[2];
    batch *fill;            /* process() adds rows here (task thread) */
    batch *out;             /* the writer's, while wstate != W_IDLE */
    buf scratch;
    int64_t seq;            /* arrival order inside the staging table */

    /* The writer thread and what it shares with the task thread, under `mu`. */
    pthread_t thread;
    pgc wr;                 /* the writer's connection (writer thread only) */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int wstate;             /* W_IDLE: no batch; W_BUSY: writing `out`; W_DONE: back */
    bool wdown;             /* the writer's PostgreSQL is away (it retries with backoff) */
    bool stop;
    note notes[8];          /* the writer's log lines, logged by the task thread */
    size_t nnotes;
    uint64_t reconnects;
    uint64_t fenced_rows, revoked_rows; /* dropped by the writer, for the counters */
    /* owner epochs (fence.c): set by the task thread, read by the writer */
    bool fencing;           /* an assignment took ownership: rows are checked */
    owned *own;
    size_t nown;
    writers *par;           /* `writers` > 1: the extra connections (writers.c); else NULL */
} pg_sink;

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SEQ_COLUMN "__sluice_seq"

/* format.c */
void reject_row(pg_sink *s, batch *b, row *r, const char *reason);
sl_err add_record(pg_sink *s, const sl_record *rec);
/* check.c */
void classify_column(column *c);
bool json_has_nul_escape(const char *s, size_t n);
void utf8_clip(char *s);
const char *number_fits(const column *c, double d, const char *text, size_t n, char *why,
                        size_t wn);
const char *text_fits(const column *c, const char *s, size_t n, char *why, size_t wn);
bool sql_type_ok(const char *t);
/* schema_check.c */
schema_bounds *schema_bounds_load(const char *path, char *err, size_t en);
void schema_bounds_free(schema_bounds *sb);
const char *schema_bounds_check(const schema_bounds *sb, const table_spec *t, char *why, size_t wn);
/* fence.c */
wr_result take_ownership(pg_sink *s, pgc *l, const sl_position *parts, size_t n);
wr_result fence_check(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, bool with_done);
sl_err pg_on_revoke(void *self, sl_ctx *ctx, const sl_position *parts, size_t n);
/* config.c */
const char *parse_spec(table_spec *t, const cJSON *j, const sl_api *api, const char **bad_key);
const char *parse_tables(const pg_config *cfg, const sl_api *api, const char *dir, table_spec **specs,
                         size_t *nspecs, char *why, size_t whylen, char *where, size_t wherelen);
void free_columns(table_spec *t);
void free_specs(table_spec *specs, size_t n);
/* sql.c */
bool put_ident(PGconn *conn, buf *b, const char *name);
bool put_table_name(PGconn *conn, buf *b, const table_spec *t);
const column *find_column(const table_spec *t, const char *name);
bool build_sql(PGconn *conn, const table_spec *t, size_t i, buf *cp, buf *ins, buf *create);
wr_result classify(PGconn *conn, const PGresult *res);
void squeeze_spaces(char *s);
void describe_error(pgc *l, const PGresult *res);
wr_result exec_cmd(pgc *l, const char *sql);
wr_result load_catalog(pgc *l, table_spec *t);
wr_result create_tables(pg_sink *s, pgc *l);
wr_result prepare_offsets(pg_sink *s, pgc *l);
/* writer.c */
void say(pg_sink *s, pgc *l, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Monotonic ms from any thread (the writer's too): plugins/common/sl_time.h. */
#define mono_ms sl_mono_ms
void set_down(pg_sink *s, pgc *l, size_t rows, const char *why);
wr_result ensure_conn(pg_sink *s, pgc *l, size_t rows);
const char *offsets_topic(const pg_sink *s, const batch *b, const row *r);
bool coverage_by_topic(const pg_sink *s, const table_spec *t);
size_t pending_rows(const batch *b);
void *writer_main(void *arg);
void report_notes(pg_sink *s);
sl_err collect(pg_sink *s, bool wait);
bool submit(pg_sink *s);
wr_result write_part(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, tx_mode mode, tally *t);
/* writers.c */
bool writers_start(pg_sink *s);
void writers_stop(pg_sink *s);
void writers_free(pg_sink *s);
bool writers_down(const pg_sink *s);
wr_result write_batch_par(pg_sink *s, batch *b);
void pgc_free(pgc *l, size_t nspecs);
/* restore.c */
sl_err pg_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n);


#endif
