/*
 * pg-sink — writes records to PostgreSQL tables (UC06).
 *
 * Records are routed by topic to a table spec. process() turns each record into one line of COPY
 * text (the table's mapped columns plus an arrival sequence number) and holds its ack; a flush
 * (every flush_interval, at batch_size rows, and at drain) runs one transaction:
 *
 *   BEGIN; COPY pg_temp.<staging> FROM STDIN; INSERT INTO <table> SELECT … FROM <staging>
 *   [DISTINCT ON (keys) … ORDER BY keys, seq DESC] [ON CONFLICT …]; (per table)
 *   INSERT INTO sluice_offsets … ON CONFLICT DO UPDATE; (max offset per source partition)
 *   COMMIT
 *
 * and releases the acks only after COMMIT. Staging tables are temp tables, ON COMMIT DELETE ROWS,
 * created once per connection; their columns carry the target's types, so a malformed value
 * fails in COPY and a constraint in the INSERT. Either way the batch is bisected until the row
 * PostgreSQL refuses is alone; it goes to the dead letter with the server's message and the rest
 * commits. A lost connection keeps the open batch and retries it after a backoff.
 *
 * The transactions run on a writer thread with its own connection, so PostgreSQL works on one
 * batch while process() fills the next: two buffers, one filling and one being written, handed
 * over in order (one writer, FIFO); when both are full, process waits. The host is called from
 * the task thread only (reject, log, count; release excepted): the writer hands refused rows,
 * log lines and counts back, and the task thread's next callback deals with them. The task
 * thread keeps a connection of its own for the catalog and for restore.
 *
 * On partition assignment, specs with `restore:` are read back (one query per table) and handed
 * to the earlier stages' on_restore (api->restore), so dedup and window-kpi rebuild their state
 * from what is durable; see README.md. The resume position is the source's own (never moved).
 */
#include <sluice/stage.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- growable byte buffer with a sticky out-of-memory flag ---------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static bool buf_reserve(buf *b, size_t more)
{
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void buf_put(buf *b, const void *s, size_t n)
{
    if (!buf_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0'; /* keeps SQL built here usable as a C string */
}

static void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_putc(buf *b, char c) { buf_put(b, &c, 1); }

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_put(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void buf_free(buf *b)
{
    free(b->p);
    *b = (buf){0};
}

/* Appends `s` as one field of COPY text format: backslash, tab, newline and CR are escaped; a
 * NUL-free string is assumed (PostgreSQL text cannot hold NUL anyway). */
static void buf_put_copy(buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        buf_put(b, s + run, i - run);
        buf_put(b, esc, 2);
        run = i + 1;
    }
    buf_put(b, s + run, n - run);
}

/* Shortest decimal text that reads back as the same double; integers without exponent. The
 * host's JSON API hands numbers as doubles, so integers beyond 2^53 lose precision. */
static void buf_put_number(buf *b, double d)
{
    if (!isfinite(d)) {
        buf_puts(b, "NaN");
        return;
    }
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        buf_printf(b, "%.0f", d);
        return;
    }
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, sizeof tmp, "%.17g", d);
    buf_puts(b, tmp);
}

/* "YYYY-MM-DD HH:MM:SS.mmm+00", which PostgreSQL reads as timestamptz (and date/timestamp). */
static void buf_put_time(buf *b, int64_t ms)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        buf_puts(b, "\\N");
        return;
    }
    buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* ---- JSON text of a node (for json/jsonb columns and nested values) -------------------- */

static void json_put_string(buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
    buf_putc(b, '"');
}

static void json_write(const sl_api *api, buf *b, const sl_json *n)
{
    switch (api->json_type(n)) {
    case SL_JSON_BOOL: buf_puts(b, api->json_number(n) != 0 ? "true" : "false"); break;
    case SL_JSON_NUMBER: {
        double d = api->json_number(n);
        if (isfinite(d)) buf_put_number(b, d);
        else buf_puts(b, "null");
        break;
    }
    case SL_JSON_STRING: json_put_string(b, api->json_string(n)); break;
    case SL_JSON_ARRAY:
    case SL_JSON_OBJECT: {
        bool obj = api->json_type(n) == SL_JSON_OBJECT;
        size_t k = api->json_size(n);
        buf_putc(b, obj ? '{' : '[');
        for (size_t i = 0; i < k; i++) {
            const sl_json *item = api->json_at(n, i);
            if (i) buf_putc(b, ',');
            if (obj) {
                const char *key = api->json_key(item);
                json_put_string(b, key ? key : "");
                buf_putc(b, ':');
            }
            json_write(api, b, item);
        }
        buf_putc(b, obj ? '}' : ']');
        break;
    }
    default: buf_puts(b, "null"); break;
    }
}

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

typedef struct column {
    char *name;     /* column name, unquoted */
    char *cfg_type; /* SQL type from the config (create_tables), or NULL */
    src_kind src;
    char *arg;      /* field or header name */
    /* from the catalog */
    char *sql_type; /* format_type() of the target column */
    char *def_expr; /* its DEFAULT expression, or NULL */
    bool is_json, is_time;
} column;

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
    int64_t restore_within_ms; /* 0: no time bound */
    char *restore_time_col;    /* NULL: no time bound, rows in partition order */
    int64_t restore_max_rows;
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
} pg_config;

/* One buffered record: its COPY line and a copy of the record for the dead letter. */
typedef struct row {
    sl_ack *ack;
    size_t table;
    bool done;
    size_t line_off, line_len; /* in batch.lines */
    size_t topic_off, topic_len; /* in batch.saved; topic_len SIZE_MAX: no topic */
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
} pgc;

enum { W_IDLE, W_BUSY, W_DONE };

typedef struct note {
    sl_log_level level;
    char msg[1200];
} note;

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
} pg_sink;

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SEQ_COLUMN "__sluice_seq"

/* ---- parsing `tables` ---------------------------------------------------------------- */

static bool parse_source(column *c, const char *s)
{
    static const struct { const char *name; src_kind kind; } attrs[] = {
        {"$partition", SRC_PARTITION}, {"$offset", SRC_OFFSET}, {"$timestamp", SRC_TIMESTAMP},
        {"$key", SRC_KEY},             {"$topic", SRC_TOPIC},   {"$value", SRC_VALUE},
    };
    if (strncmp(s, "$header.", 8) == 0 && s[8]) {
        c->src = SRC_HEADER;
        c->arg = strdup(s + 8);
        return c->arg != NULL;
    }
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        if (strcmp(s, attrs[i].name) == 0) {
            c->src = attrs[i].kind;
            return true;
        }
    }
    if (s[0] == '$') return false; /* a typo of an attribute, not a field named "$…" */
    c->src = SRC_FIELD;
    c->arg = strdup(s);
    return c->arg != NULL;
}

static bool parse_string_list(const cJSON *j, char ***out, size_t *n)
{
    if (cJSON_IsString(j)) {
        *out = calloc(1, sizeof **out);
        if (!*out || !((*out)[0] = strdup(j->valuestring))) return false;
        *n = 1;
        return true;
    }
    if (!cJSON_IsArray(j)) return false;
    size_t k = (size_t)cJSON_GetArraySize(j);
    *out = calloc(k ? k : 1, sizeof **out);
    if (!*out) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsString(it) || !((*out)[*n] = strdup(it->valuestring))) return false;
        (*n)++;
    }
    return true;
}

#define RESTORE_MAX_ROWS_DEFAULT 1000000

/* `restore: {within: 48h, time_column: window_start, max_rows: N}` (every key optional). */
static const char *parse_restore(table_spec *t, const cJSON *j, const sl_api *api)
{
    if (!cJSON_IsObject(j)) return "restore: expected a map {within, time_column, max_rows}";
    t->restore = true;
    t->restore_max_rows = RESTORE_MAX_ROWS_DEFAULT;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (strcmp(k, "within") == 0) {
            if (cJSON_IsNumber(it) && it->valuedouble > 0) {
                t->restore_within_ms = (int64_t)it->valuedouble;
            } else if (!cJSON_IsString(it) ||
                       api->parse_duration(it->valuestring, &t->restore_within_ms) != SL_OK ||
                       t->restore_within_ms <= 0) {
                return "restore.within: expected a duration (\"15m\", \"48h\")";
            }
        } else if (strcmp(k, "time_column") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                return "restore.time_column: expected a column name";
            if (!(t->restore_time_col = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "max_rows") == 0) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 1e9)
                return "restore.max_rows: expected a number from 1 to 1000000000";
            t->restore_max_rows = (int64_t)it->valuedouble;
        } else {
            return "restore: unknown key (expected within, time_column, max_rows)";
        }
    }
    if (t->restore_within_ms && !t->restore_time_col) return "restore.within needs time_column";
    return NULL;
}

/* One `tables` entry. Returns NULL on success, else what is wrong (static text). */
static const char *parse_spec(table_spec *t, const cJSON *j, const sl_api *api)
{
    if (!cJSON_IsObject(j) && !cJSON_IsNull(j)) return "must be a map";
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (strcmp(k, "table") == 0 || strcmp(k, "schema") == 0) {
            if (!cJSON_IsString(it) || !it->valuestring[0]) return "table/schema: expected a name";
            char **dst = k[0] == 't' ? &t->table : &t->schema;
            if (!(*dst = strdup(it->valuestring))) return "out of memory";
        } else if (strcmp(k, "conflict") == 0) {
            if (!parse_string_list(it, &t->keys, &t->nkeys) || t->nkeys == 0)
                return "conflict: expected a column name or a list of them";
        } else if (strcmp(k, "on_conflict") == 0) {
            if (!cJSON_IsString(it)) return "on_conflict: expected ignore or update";
            if (strcmp(it->valuestring, "ignore") == 0) t->mode = ON_CONFLICT_IGNORE;
            else if (strcmp(it->valuestring, "update") == 0) t->mode = ON_CONFLICT_UPDATE;
            else return "on_conflict: expected ignore or update";
        } else if (strcmp(k, "columns") == 0) {
            size_t n = (size_t)cJSON_GetArraySize(it);
            if ((!cJSON_IsObject(it) && !cJSON_IsArray(it)) || n == 0)
                return "columns: expected a non-empty map (column: source) or list";
            if (!(t->cols = calloc(n, sizeof *t->cols))) return "out of memory";
            const cJSON *c;
            cJSON_ArrayForEach(c, it) {
                column *col = &t->cols[t->ncols++];
                const char *src;
                if (cJSON_IsArray(it)) { /* list form: column = same-named field */
                    if (!cJSON_IsString(c)) return "columns: list items must be names";
                    col->name = strdup(c->valuestring);
                    src = c->valuestring;
                } else {
                    col->name = strdup(c->string);
                    src = c->string;
                    if (cJSON_IsString(c)) {
                        src = c->valuestring;
                    } else if (cJSON_IsObject(c)) {
                        const cJSON *from = cJSON_GetObjectItemCaseSensitive(c, "from");
                        const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
                        if (cJSON_GetArraySize(c) != (from != NULL) + (type != NULL))
                            return "columns: a column spec has only `from` and `type`";
                        if (from && !cJSON_IsString(from)) return "columns: `from` must be text";
                        if (type && !cJSON_IsString(type)) return "columns: `type` must be text";
                        if (from) src = from->valuestring;
                        if (type && !(col->cfg_type = strdup(type->valuestring)))
                            return "out of memory";
                    } else if (!cJSON_IsNull(c)) {
                        return "columns: expected `column: source` or `column: {from, type}`";
                    }
                }
                if (!col->name) return "out of memory";
                if (!parse_source(col, src))
                    return "columns: unknown attribute (use $partition, $offset, $timestamp, "
                           "$key, $topic, $value or $header.NAME)";
                if (col->src == SRC_FIELD) t->needs_json = true;
            }
        } else if (strcmp(k, "restore") == 0) {
            const char *e = parse_restore(t, it, api);
            if (e) return e;
        } else {
            return "unknown key (expected table, schema, columns, conflict, on_conflict, "
                   "restore)";
        }
    }
    if (!t->table && strcmp(t->topic, "*") == 0) return "the \"*\" entry needs `table`";
    if (!t->table && !(t->table = strdup(t->topic))) return "out of memory";
    if (t->mode == ON_CONFLICT_UPDATE && t->nkeys == 0) return "on_conflict: update needs `conflict`";
    if (t->nkeys && t->mode == ON_CONFLICT_NONE) t->mode = ON_CONFLICT_IGNORE;
    t->auto_cols = t->ncols == 0;
    if (t->auto_cols) t->needs_json = true;
    return NULL;
}

static void free_columns(table_spec *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        free(t->cols[c].name);
        free(t->cols[c].cfg_type);
        free(t->cols[c].arg);
        free(t->cols[c].sql_type);
        free(t->cols[c].def_expr);
    }
    free(t->cols);
    t->cols = NULL;
    t->ncols = 0;
}

static void free_specs(table_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        table_spec *t = &specs[i];
        free_columns(t);
        for (size_t k = 0; k < t->nkeys; k++) free(t->keys[k]);
        free(t->keys);
        free(t->topic);
        free(t->schema);
        free(t->table);
        free(t->restore_time_col);
    }
    free(specs);
}

/* ---- SQL building (identifiers always through PQescapeIdentifier) --------------------- */

static bool put_ident(PGconn *conn, buf *b, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    if (!q) return false;
    buf_puts(b, q);
    PQfreemem(q);
    return true;
}

static bool put_table_name(PGconn *conn, buf *b, const table_spec *t)
{
    if (t->schema) {
        if (!put_ident(conn, b, t->schema)) return false;
        buf_putc(b, '.');
    }
    return put_ident(conn, b, t->table);
}

/* Staging table name: one per spec, in this session's temp schema. */
static void put_staging(buf *b, size_t i) { buf_printf(b, "pg_temp.sluice_stg_%zu", i); }

static const column *find_column(const table_spec *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (strcmp(t->cols[c].name, name) == 0) return &t->cols[c];
    return NULL;
}

static bool is_key(const table_spec *t, const char *name)
{
    for (size_t k = 0; k < t->nkeys; k++)
        if (strcmp(t->keys[k], name) == 0) return true;
    return false;
}

/* CREATE TEMP TABLE for staging, COPY and INSERT … SELECT … ON CONFLICT for spec i. */
static bool build_sql(PGconn *conn, const table_spec *t, size_t i, buf *cp, buf *ins, buf *create)
{
    cp->len = ins->len = create->len = 0;
    bool ok = true;

    buf_puts(create, "CREATE TEMP TABLE IF NOT EXISTS ");
    put_staging(create, i);
    buf_puts(create, " (");
    buf_puts(cp, "COPY ");
    put_staging(cp, i);
    buf_puts(cp, " (");
    for (size_t c = 0; c < t->ncols; c++) {
        ok = ok && put_ident(conn, create, t->cols[c].name);
        buf_printf(create, " %s, ", t->cols[c].sql_type);
        ok = ok && put_ident(conn, cp, t->cols[c].name);
        buf_puts(cp, ", ");
    }
    buf_puts(create, SEQ_COLUMN " bigint) ON COMMIT DELETE ROWS");
    buf_puts(cp, SEQ_COLUMN ") FROM STDIN");

    buf_puts(ins, "INSERT INTO ");
    ok = ok && put_table_name(conn, ins, t);
    buf_puts(ins, " (");
    for (size_t c = 0; c < t->ncols; c++) {
        if (c) buf_puts(ins, ", ");
        ok = ok && put_ident(conn, ins, t->cols[c].name);
    }
    buf_puts(ins, ") SELECT ");
    if (t->mode == ON_CONFLICT_UPDATE) {
        /* One statement may not update a row twice: keep the last arrival per key. */
        buf_puts(ins, "DISTINCT ON (");
        for (size_t k = 0; k < t->nkeys; k++) {
            if (k) buf_puts(ins, ", ");
            buf_puts(ins, "s.");
            ok = ok && put_ident(conn, ins, t->keys[k]);
        }
        buf_puts(ins, ") ");
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const column *col = &t->cols[c];
        if (c) buf_puts(ins, ", ");
        /* A missing value takes the column's default rather than overriding it with NULL. */
        if (col->def_expr) buf_puts(ins, "COALESCE(");
        buf_puts(ins, "s.");
        ok = ok && put_ident(conn, ins, col->name);
        if (col->def_expr) buf_printf(ins, ", %s)", col->def_expr);
    }
    buf_puts(ins, " FROM ");
    put_staging(ins, i);
    buf_puts(ins, " s");
    if (t->mode == ON_CONFLICT_UPDATE) {
        buf_puts(ins, " ORDER BY ");
        for (size_t k = 0; k < t->nkeys; k++) {
            buf_puts(ins, "s.");
            ok = ok && put_ident(conn, ins, t->keys[k]);
            buf_puts(ins, ", ");
        }
        buf_puts(ins, "s." SEQ_COLUMN " DESC");
    } else if (t->mode == ON_CONFLICT_IGNORE) {
        buf_puts(ins, " ORDER BY s." SEQ_COLUMN); /* within a flush the first arrival wins */
    }
    if (t->mode != ON_CONFLICT_NONE) {
        buf_puts(ins, " ON CONFLICT");
        if (t->nkeys) {
            buf_puts(ins, " (");
            for (size_t k = 0; k < t->nkeys; k++) {
                if (k) buf_puts(ins, ", ");
                ok = ok && put_ident(conn, ins, t->keys[k]);
            }
            buf_puts(ins, ")");
        }
        size_t nset = 0;
        if (t->mode == ON_CONFLICT_UPDATE) {
            for (size_t c = 0; c < t->ncols; c++) {
                if (is_key(t, t->cols[c].name)) continue;
                buf_puts(ins, nset++ ? ", " : " DO UPDATE SET ");
                ok = ok && put_ident(conn, ins, t->cols[c].name);
                buf_puts(ins, " = EXCLUDED.");
                ok = ok && put_ident(conn, ins, t->cols[c].name);
            }
        }
        if (nset == 0) buf_puts(ins, " DO NOTHING"); /* ignore, or every column is a key */
    }
    return ok && !cp->oom && !ins->oom && !create->oom;
}

/* ---- connection, catalog, errors ----------------------------------------------------- */

/* Data errors are the row's fault (bisect and reject it); transient ones are the server's or
 * the network's (keep the batch, retry later); anything else is a setup problem (stop). */
static wr_result classify(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK) return WR_RETRY;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return WR_RETRY;
    if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2) || !strncmp(st, "54", 2)) return WR_DATA;
    if (!strncmp(st, "08", 2) || !strncmp(st, "40", 2) || !strncmp(st, "53", 2) ||
        !strncmp(st, "57", 2) || !strncmp(st, "58", 2) || !strcmp(st, "55P03"))
        return WR_RETRY;
    return WR_FATAL;
}

/* Server and libpq messages span lines; a log line or a dead-letter header wants one. */
static void squeeze_spaces(char *s)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        bool space = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (space && (out == s || out[-1] == ' ')) continue;
        *out++ = space ? ' ' : *p;
    }
    while (out > s && out[-1] == ' ') out--;
    *out = '\0';
}

/* "SQLSTATE: message (detail)" of a failed result, one line. */
static void describe_error(pgc *l, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (!msg) msg = PQerrorMessage(l->conn);
    snprintf(l->reason, sizeof l->reason, "%s%s%s%s%s%s", st ? st : "", st ? ": " : "", msg,
             detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    squeeze_spaces(l->reason);
}

/* Runs a command that returns no rows; on failure fills l->reason and says what kind. */
static wr_result exec_cmd(pgc *l, const char *sql)
{
    PGresult *res = PQexec(l->conn, sql);
    wr_result r = WR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        describe_error(l, res);
        r = classify(l->conn, res);
    }
    PQclear(res);
    return r;
}

/* The host API is called from the task thread only, so the writer's log lines and reconnect
 * counts wait in s->notes until the task thread's next callback (report_notes). */
static void say(pg_sink *s, pgc *l, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(pg_sink *s, pgc *l, sl_log_level level, const char *fmt, ...)
{
    char msg[sizeof s->notes[0].msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!l->writer) {
        s->api->log(s->ctx, level, "%s", msg);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->nnotes < sizeof s->notes / sizeof s->notes[0]) { /* more is a flapping server */
        s->notes[s->nnotes].level = level;
        memcpy(s->notes[s->nnotes].msg, msg, sizeof msg);
        s->nnotes++;
    }
    pthread_mutex_unlock(&s->mu);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_down(pg_sink *s, pgc *l, size_t rows, const char *why)
{
    if (l->up != 0)
        say(s, l, SL_LOG_WARN,
            "PostgreSQL unavailable (%s); keeping %zu rows and retrying with backoff", why, rows);
    l->up = 0;
    l->attempts++;
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS) l->backoff_ms = BACKOFF_MAX_MS;
    l->next_try_ms = now_ms() + l->backoff_ms;
    if (l->conn && PQstatus(l->conn) != CONNECTION_OK) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
}

static void set_up(pg_sink *s, pgc *l)
{
    if (l->up == 0) {
        say(s, l, SL_LOG_INFO, "PostgreSQL available again after %d retries", l->attempts);
        if (l->writer) {
            pthread_mutex_lock(&s->mu);
            s->reconnects++;
            pthread_mutex_unlock(&s->mu);
        } else {
            s->api->count(s->ctx, "reconnects", 1);
        }
    }
    l->up = 1;
    l->attempts = 0;
    l->backoff_ms = 0;
    l->next_try_ms = 0;
}

/* Reads the target's columns (name, type, default). Explicit columns must exist; omitted
 * columns become every insertable column of the table. Task thread only: the specs are
 * read-only once loaded, which they are before any batch reaches the writer. */
static wr_result load_catalog(pgc *l, table_spec *t)
{
    buf qname = {0};
    if (!put_table_name(l->conn, &qname, t) || qname.oom) {
        buf_free(&qname);
        return WR_RETRY;
    }
    const char *params[1] = {qname.p};
    PGresult *res = PQexecParams(
        l->conn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),"
        " a.attidentity <> '' OR a.attgenerated <> ''"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        1, NULL, params, NULL, NULL, 0);
    buf_free(&qname);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    int n = PQntuples(res);
    if (n == 0) {
        snprintf(l->reason, sizeof l->reason,
                 "table %s%s%s does not exist (load pipelines/sql/schema.sql, or set "
                 "create_tables: true with typed columns)",
                 t->schema ? t->schema : "", t->schema ? "." : "", t->table);
        PQclear(res);
        return WR_FATAL;
    }
    if (t->auto_cols) {
        free_columns(t);
        if (!(t->cols = calloc((size_t)n, sizeof *t->cols))) {
            PQclear(res);
            return WR_FATAL;
        }
        for (int i = 0; i < n; i++) {
            if (PQgetvalue(res, i, 3)[0] == 't') continue; /* identity / generated */
            column *c = &t->cols[t->ncols++];
            c->src = SRC_FIELD;
            c->name = strdup(PQgetvalue(res, i, 0));
            c->arg = strdup(c->name);
        }
    }
    for (size_t c = 0; c < t->ncols; c++) {
        column *col = &t->cols[c];
        int i = 0;
        while (i < n && strcmp(PQgetvalue(res, i, 0), col->name ? col->name : "") != 0) i++;
        if (i == n || !col->name) {
            snprintf(l->reason, sizeof l->reason, "table %s has no column \"%s\"", t->table,
                     col->name ? col->name : "?");
            PQclear(res);
            return WR_FATAL;
        }
        free(col->sql_type);
        free(col->def_expr);
        col->sql_type = strdup(PQgetvalue(res, i, 1));
        col->def_expr = PQgetisnull(res, i, 2) ? NULL : strdup(PQgetvalue(res, i, 2));
        if (!col->sql_type) {
            PQclear(res);
            return WR_FATAL;
        }
        col->is_json = !strcmp(col->sql_type, "json") || !strcmp(col->sql_type, "jsonb");
        col->is_time = !strncmp(col->sql_type, "timestamp", 9) || !strcmp(col->sql_type, "date");
    }
    PQclear(res);
    for (size_t k = 0; k < t->nkeys; k++) {
        if (!find_column(t, t->keys[k])) {
            snprintf(l->reason, sizeof l->reason, "conflict key \"%s\" is not a mapped column of %s",
                     t->keys[k], t->table);
            return WR_FATAL;
        }
    }
    t->loaded = true;
    return WR_OK;
}

/* create_tables: the configured tables (typed columns, conflict keys as primary key) and the
 * offsets table, IF NOT EXISTS. */
static wr_result create_tables(pg_sink *s, pgc *l)
{
    buf sql = {0};
    wr_result r = WR_OK;
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_table_name(l->conn, &sql, t);
        buf_puts(&sql, " (");
        for (size_t c = 0; c < t->ncols; c++) {
            if (c) buf_puts(&sql, ", ");
            ok = ok && put_ident(l->conn, &sql, t->cols[c].name);
            /* The type is configuration (SQL type syntax), never a record's value. */
            buf_printf(&sql, " %s", t->cols[c].cfg_type ? t->cols[c].cfg_type : "text");
        }
        for (size_t k = 0; k < t->nkeys; k++) {
            buf_puts(&sql, k ? ", " : ", PRIMARY KEY (");
            ok = ok && put_ident(l->conn, &sql, t->keys[k]);
        }
        buf_puts(&sql, t->nkeys ? "))" : ")");
        r = ok && !sql.oom ? exec_cmd(l, sql.p) : WR_FATAL;
    }
    if (r == WR_OK && s->store_offsets) {
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_ident(l->conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " (pipeline text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL,"
                       " \"offset\" bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
                       " PRIMARY KEY (pipeline, topic, \"partition\"))");
        r = ok && !sql.oom ? exec_cmd(l, sql.p) : WR_FATAL;
    }
    buf_free(&sql);
    return r == WR_DATA ? WR_FATAL : r;
}

/* The statements on the offsets table, and a check that it exists (fail now, with advice,
 * rather than at the first flush). */
static wr_result prepare_offsets(pg_sink *s, pgc *l)
{
    const char *params[1] = {s->cfg->offsets_table};
    PGresult *res = PQexecParams(l->conn, "SELECT to_regclass(quote_ident($1))", 1, NULL, params,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    bool missing = PQgetisnull(res, 0, 0);
    PQclear(res);
    if (missing) {
        snprintf(l->reason, sizeof l->reason,
                 "table %s does not exist (load pipelines/sql/schema.sql, set create_tables: "
                 "true, or store_offsets: false)",
                 s->cfg->offsets_table);
        return WR_FATAL;
    }
    buf put = {0};
    buf_puts(&put, "INSERT INTO ");
    bool ok = put_ident(l->conn, &put, s->cfg->offsets_table);
    buf_puts(&put, " (pipeline, topic, \"partition\", \"offset\") VALUES ($1, $2, $3, $4)"
                   " ON CONFLICT (pipeline, topic, \"partition\") DO UPDATE"
                   " SET \"offset\" = EXCLUDED.\"offset\", updated_at = now()");
    free(l->offsets_put);
    l->offsets_put = put.p;
    return ok && !put.oom ? WR_OK : WR_FATAL;
}

/* Connect if needed: session setup, catalog (first time, task thread), statements and staging
 * tables. WR_RETRY while PostgreSQL is unreachable or during the backoff; WR_FATAL on a setup
 * problem (l->reason says which). `rows`: how many rows wait for it (for the log). */
static wr_result ensure_conn(pg_sink *s, pgc *l, size_t rows)
{
    if (now_ms() < l->next_try_ms) return WR_RETRY;
    if (l->conn && PQstatus(l->conn) == CONNECTION_OK && PQtransactionStatus(l->conn) == PQTRANS_IDLE)
        return WR_OK;
    if (l->conn) PQfinish(l->conn);
    l->conn = PQconnectdb(s->cfg->dsn ? s->cfg->dsn : "");
    if (!l->conn || PQstatus(l->conn) != CONNECTION_OK) {
        snprintf(l->reason, sizeof l->reason, "%s",
                 l->conn ? PQerrorMessage(l->conn) : "out of memory");
        squeeze_spaces(l->reason);
        set_down(s, l, rows, l->reason);
        return WR_RETRY;
    }
    wr_result r = WR_OK;
    if (PQsetClientEncoding(l->conn, "UTF8") != 0) r = WR_RETRY;
    /* The writer connects only once the task thread has done both (rows need the catalog). */
    if (r == WR_OK && !l->writer && s->cfg->create_tables && !s->tables_created) {
        r = create_tables(s, l);
        s->tables_created = r == WR_OK;
    }
    buf create = {0};
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        if (!t->loaded) r = l->writer ? WR_FATAL : load_catalog(l, t);
        if (r == WR_OK)
            r = build_sql(l->conn, t, i, &l->sql[2 * i], &l->sql[2 * i + 1], &create)
                    ? exec_cmd(l, create.p)
                    : WR_FATAL;
    }
    buf_free(&create);
    /* Timestamps read back (restore) come as RFC 3339 with +00:00, whatever the server's zone. */
    if (r == WR_OK) r = exec_cmd(l, "SET TIME ZONE 'UTC'");
    if (r == WR_OK && s->store_offsets) r = prepare_offsets(s, l);
    if (r == WR_FATAL) return WR_FATAL;
    if (r != WR_OK) {
        set_down(s, l, rows, l->reason);
        return WR_RETRY;
    }
    if (l->up == -1 && !l->writer)
        say(s, l, SL_LOG_INFO, "connected to PostgreSQL %s at %s:%s",
            PQparameterStatus(l->conn, "server_version"), PQhost(l->conn), PQport(l->conn));
    set_up(s, l);
    return WR_OK;
}

/* ---- buffered rows ------------------------------------------------------------------- */

static table_spec *route(pg_sink *s, const char *topic)
{
    table_spec *star = NULL;
    for (size_t i = 0; i < s->nspecs; i++) {
        if (strcmp(s->specs[i].topic, "*") == 0) star = &s->specs[i];
        else if (topic && strcmp(s->specs[i].topic, topic) == 0) return &s->specs[i];
    }
    return star;
}

static const sl_header *find_header(const sl_record *rec, const char *name)
{
    for (size_t i = 0; i < rec->n_headers; i++)
        if (strcmp(rec->headers[i].name, name) == 0) return &rec->headers[i];
    return NULL;
}

/* One column's value as a COPY field. */
static void put_field(pg_sink *s, buf *b, const column *col, const sl_record *rec,
                      const sl_json *root)
{
    const sl_api *api = s->api;
    switch (col->src) {
    case SRC_PARTITION:
        if (rec->partition < 0) buf_puts(b, "\\N");
        else buf_printf(b, "%d", (int)rec->partition);
        return;
    case SRC_OFFSET:
        if (rec->partition < 0) buf_puts(b, "\\N");
        else buf_printf(b, "%lld", (long long)rec->offset);
        return;
    case SRC_TIMESTAMP:
        if (col->is_time) buf_put_time(b, rec->timestamp_ms);
        else buf_printf(b, "%lld", (long long)rec->timestamp_ms);
        return;
    case SRC_KEY:
        if (rec->key) buf_put_copy(b, rec->key, rec->key_len);
        else buf_puts(b, "\\N");
        return;
    case SRC_TOPIC:
        if (rec->topic) buf_put_copy(b, rec->topic, strlen(rec->topic));
        else buf_puts(b, "\\N");
        return;
    case SRC_VALUE: {
        size_t n = 0;
        const void *v = api->value(s->ctx, rec, &n);
        if (v) buf_put_copy(b, v, n);
        else buf_puts(b, "\\N");
        return;
    }
    case SRC_HEADER: {
        const sl_header *h = find_header(rec, col->arg);
        if (h && h->value) buf_put_copy(b, h->value, h->value_len);
        else buf_puts(b, "\\N");
        return;
    }
    case SRC_FIELD: break;
    }
    const sl_json *n = root ? api->json_get(root, col->arg) : NULL;
    sl_json_type ty = n ? api->json_type(n) : SL_JSON_INVALID;
    if (ty == SL_JSON_INVALID || ty == SL_JSON_NULL) {
        buf_puts(b, "\\N");
    } else if (col->is_json || ty == SL_JSON_ARRAY || ty == SL_JSON_OBJECT) {
        s->scratch.len = 0;
        json_write(api, &s->scratch, n);
        if (s->scratch.oom) b->oom = true;
        else buf_put_copy(b, s->scratch.p, s->scratch.len);
    } else if (ty == SL_JSON_STRING) {
        const char *str = api->json_string(n);
        buf_put_copy(b, str, strlen(str));
    } else if (ty == SL_JSON_BOOL) {
        buf_puts(b, api->json_number(n) != 0 ? "true" : "false");
    } else {
        buf_put_number(b, api->json_number(n));
    }
}

/* Copies what the dead letter needs of a record into s->saved. */
static void save_record(pg_sink *s, batch *bt, row *r, const sl_record *rec)
{
    buf *b = &bt->saved;
    r->topic_len = rec->topic ? strlen(rec->topic) : SIZE_MAX;
    r->topic_off = b->len;
    if (rec->topic) buf_put(b, rec->topic, r->topic_len + 1);
    r->key_len = rec->key ? rec->key_len : SIZE_MAX;
    r->key_off = b->len;
    if (rec->key) buf_put(b, rec->key, rec->key_len);
    size_t vlen = 0;
    const void *v = s->api->value(s->ctx, rec, &vlen);
    r->val_off = b->len;
    r->val_len = v ? vlen : 0;
    if (v) buf_put(b, v, vlen);
    r->hdr_off = b->len;
    r->n_headers = rec->n_headers;
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        size_t lens[2] = {strlen(h->name), h->value ? h->value_len : 0};
        buf_put(b, lens, sizeof lens);
        buf_put(b, h->name, lens[0] + 1);
        if (lens[1]) buf_put(b, h->value, lens[1]);
    }
    r->ts = rec->timestamp_ms;
    r->partition = rec->partition;
    r->offset = rec->offset;
}

/* Sends a buffered row to the dead letter, rebuilt from its saved copy. The rebuilt record is
 * anchored to our held token; the host takes its own reference, then we release ours. */
static void reject_row(pg_sink *s, batch *b, row *r, const char *reason)
{
    const char *base = b->saved.p;
    sl_header *hdrs = r->n_headers ? calloc(r->n_headers, sizeof *hdrs) : NULL;
    size_t off = r->hdr_off, nh = 0;
    for (size_t i = 0; hdrs && i < r->n_headers; i++, nh++) {
        size_t lens[2];
        memcpy(lens, base + off, sizeof lens);
        off += sizeof lens;
        hdrs[i].name = base + off;
        off += lens[0] + 1;
        hdrs[i].value = base + off;
        hdrs[i].value_len = lens[1];
        off += lens[1];
    }
    sl_record rec = {
        .key = r->key_len == SIZE_MAX ? NULL : base + r->key_off,
        .key_len = r->key_len == SIZE_MAX ? 0 : r->key_len,
        .value = base + r->val_off,
        .value_len = r->val_len,
        .headers = hdrs,
        .n_headers = nh,
        .timestamp_ms = r->ts,
        .topic = r->topic_len == SIZE_MAX ? NULL : base + r->topic_off,
        .partition = r->partition,
        .offset = r->offset,
        .ack = r->ack,
    };
    char full[1200];
    snprintf(full, sizeof full, "pg-sink: %s", reason);
    s->api->reject(s->ctx, &rec, full);
    s->api->count(s->ctx, "rows_rejected", 1);
    free(hdrs);
    s->api->release(r->ack);
    r->ack = NULL;
    r->done = true;
}

/* Adds one record to the buffer: routes it, renders its COPY line, saves it, holds it. */
static sl_err add_record(pg_sink *s, const sl_record *rec)
{
    table_spec *t = route(s, rec->topic);
    if (!t) {
        char why[300];
        snprintf(why, sizeof why, "pg-sink: no table configured for topic '%.200s'",
                 rec->topic ? rec->topic : "(none)");
        s->api->reject(s->ctx, rec, why);
        s->api->count(s->ctx, "rows_rejected", 1);
        return SL_OK;
    }
    const sl_json *root = NULL;
    if (t->needs_json) {
        const char *err = NULL;
        root = s->api->json(s->ctx, rec, &err);
        if (!root || s->api->json_type(root) != SL_JSON_OBJECT) {
            char why[300];
            snprintf(why, sizeof why, "pg-sink: value is not a JSON object%s%.200s",
                     err ? ": " : "", err ? err : "");
            s->api->reject(s->ctx, rec, why);
            s->api->count(s->ctx, "rows_rejected", 1);
            return SL_OK;
        }
    }
    batch *b = s->fill;
    if (b->nrows == b->cap_rows) {
        size_t cap = b->cap_rows ? b->cap_rows * 2 : 1024;
        row *p = realloc(b->rows, cap * sizeof *p);
        if (!p) return SL_ENOMEM;
        b->rows = p;
        b->cap_rows = cap;
    }
    row *r = &b->rows[b->nrows];
    *r = (row){.table = (size_t)(t - s->specs), .line_off = b->lines.len};
    for (size_t c = 0; c < t->ncols; c++) {
        put_field(s, &b->lines, &t->cols[c], rec, root);
        buf_putc(&b->lines, '\t');
    }
    buf_printf(&b->lines, "%lld\n", (long long)s->seq++);
    r->line_len = b->lines.len - r->line_off;
    save_record(s, b, r, rec);
    if (b->lines.oom || b->saved.oom) return SL_ENOMEM;
    r->ack = s->api->hold(s->ctx, rec);
    if (b->nrows++ == 0) b->first_ms = now_ms();
    return SL_OK;
}

/* ---- writing (the writer thread) ----------------------------------------------------- */

/* Key of sluice_offsets for a row: the configured topic, else the record's own topic. */
static const char *offsets_topic(const pg_sink *s, const batch *b, const row *r)
{
    if (s->cfg->offsets_topic) return s->cfg->offsets_topic;
    return r->topic_len == SIZE_MAX ? "" : b->saved.p + r->topic_off;
}

/* Upserts the max offset per (topic, partition) of the rows of [lo, hi) that are pending (or,
 * with with_done, also those already finished: a rejected row's position). */
static wr_result write_offsets(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, bool with_done)
{
    if (!s->store_offsets) return WR_OK;
    for (size_t i = lo; i < hi; i++) {
        row *r = &b->rows[i];
        if ((r->done && !with_done) || r->partition < 0) continue;
        /* Rows of a partition arrive in offset order, so the last row of each (topic,
         * partition) in the range carries its max: write each pair only there. */
        const char *topic = offsets_topic(s, b, r);
        bool later = false;
        for (size_t j = i + 1; j < hi && !later; j++) {
            const row *q = &b->rows[j];
            later = (!q->done || with_done) && q->partition == r->partition &&
                    !strcmp(offsets_topic(s, b, q), topic);
        }
        if (later) continue;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", (int)r->partition);
        snprintf(off, sizeof off, "%lld", (long long)r->offset);
        const char *params[4] = {s->pipeline, topic, part, off};
        PGresult *res = PQexecParams(l->conn, l->offsets_put, 4, NULL, params, NULL, NULL, 0);
        wr_result w = WR_OK;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
        }
        PQclear(res);
        if (w != WR_OK) return w;
    }
    return WR_OK;
}

/* COPY the pending rows of [lo, hi) for table t into its staging table and move them into the
 * target. */
static wr_result write_table(pgc *l, batch *b, size_t t, size_t lo, size_t hi)
{
    PGresult *res = PQexec(l->conn, l->sql[2 * t].p);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        describe_error(l, res);
        wr_result r = classify(l->conn, res);
        PQclear(res);
        return r;
    }
    PQclear(res);
    bool sent = true;
    for (size_t i = lo; i < hi && sent; i++) {
        const row *r = &b->rows[i];
        if (!r->done && r->table == t)
            sent = PQputCopyData(l->conn, b->lines.p + r->line_off, (int)r->line_len) == 1;
    }
    if (PQputCopyEnd(l->conn, sent ? NULL : "client failed to send") != 1) sent = false;
    wr_result w = WR_OK;
    while ((res = PQgetResult(l->conn)) != NULL) {
        if (w == WR_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(l, res);
            w = classify(l->conn, res);
        }
        PQclear(res);
    }
    if (w == WR_OK && !sent) {
        snprintf(l->reason, sizeof l->reason, "%s", PQerrorMessage(l->conn));
        w = WR_RETRY;
    }
    return w == WR_OK ? exec_cmd(l, l->sql[2 * t + 1].p) : w;
}

/* One transaction for the pending rows of [lo, hi) and their positions; offsets_only: just the
 * positions of [lo, hi), finished rows included. */
static wr_result write_txn(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi, bool offsets_only)
{
    wr_result w = exec_cmd(l, "BEGIN");
    for (size_t t = 0; t < s->nspecs && w == WR_OK && !offsets_only; t++) {
        bool any = false;
        for (size_t i = lo; i < hi && !any; i++) any = !b->rows[i].done && b->rows[i].table == t;
        if (any) w = write_table(l, b, t, lo, hi);
    }
    if (w == WR_OK) w = write_offsets(s, l, b, lo, hi, offsets_only);
    if (w == WR_OK) w = exec_cmd(l, "COMMIT");
    if (w != WR_OK && PQstatus(l->conn) == CONNECTION_OK &&
        PQtransactionStatus(l->conn) != PQTRANS_IDLE) {
        char keep[sizeof l->reason];
        memcpy(keep, l->reason, sizeof keep);
        PQclear(PQexec(l->conn, "ROLLBACK"));
        memcpy(l->reason, keep, sizeof keep);
    }
    return w;
}

/* Writes [lo, hi); on a data error splits the range until the refused row is alone, and stops
 * there with WR_REFUSED: the task thread rejects it (only it may), then hands the batch back to
 * go on. The halves before it have committed, so every pending row is after it. */
static wr_result write_range(pg_sink *s, pgc *l, batch *b, size_t lo, size_t hi)
{
    size_t pending = 0, only = lo;
    for (size_t i = lo; i < hi; i++)
        if (!b->rows[i].done) pending++, only = i;
    if (pending == 0) return WR_OK;
    wr_result w = write_txn(s, l, b, lo, hi, false);
    if (w == WR_OK) {
        for (size_t i = lo; i < hi; i++) {
            row *r = &b->rows[i];
            if (r->done) continue;
            s->api->release(r->ack); /* thread-safe */
            r->ack = NULL;
            r->done = true;
        }
        b->written += pending;
        return WR_OK;
    }
    if (w != WR_DATA) return w;
    if (pending == 1) {
        b->refused = only;
        memcpy(b->reason, l->reason, sizeof b->reason);
        return WR_REFUSED;
    }
    size_t mid = lo + (hi - lo) / 2;
    w = write_range(s, l, b, lo, mid);
    return w == WR_OK ? write_range(s, l, b, mid, hi) : w;
}

static size_t pending_rows(const batch *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nrows; i++) n += !b->rows[i].done;
    return n;
}

/* Writes a batch until it is durable, a row is refused, or a setup error: a lost connection
 * is retried here, with backoff, redoing what has not committed. WR_STOPPED: close wants the
 * thread back. */
static wr_result write_batch(pg_sink *s, batch *b)
{
    pgc *l = &s->wr;
    for (;;) {
        wr_result w = ensure_conn(s, l, pending_rows(b));
        if (w == WR_OK) {
            int64_t t0 = now_ms();
            if (b->pos_row != NO_ROW) {
                /* Dead letter first (done by now), then its position: a crash in between
                 * re-rejects the row after a restart rather than losing it. A failure to
                 * store the position is harmless (the next commit of the partition moves it
                 * on) unless the connection is gone: then it is redone with the rest. */
                w = write_txn(s, l, b, b->pos_row, b->pos_row + 1, true);
                if (w != WR_RETRY) {
                    b->pos_row = NO_ROW;
                    w = WR_OK;
                }
            }
            if (w == WR_OK) w = write_range(s, l, b, 0, b->nrows);
            b->seconds += (double)(now_ms() - t0) / 1e3;
            b->flushes++;
            if (w == WR_RETRY) set_down(s, l, pending_rows(b), l->reason);
        }
        pthread_mutex_lock(&s->mu);
        s->wdown = l->up == 0;
        if (w == WR_RETRY) {
            /* Tell a waiting task thread that this will take a while, then sleep out the
             * backoff (close wakes us). */
            pthread_cond_broadcast(&s->done);
            int64_t wake = l->next_try_ms > now_ms() ? l->next_try_ms : now_ms() + BACKOFF_MIN_MS;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ms = wake - now_ms();
            ts.tv_sec += (time_t)(ms / 1000);
            ts.tv_nsec += (long)(ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            while (!s->stop && now_ms() < wake)
                if (pthread_cond_timedwait(&s->work, &s->mu, &ts) == ETIMEDOUT) break;
        }
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) return WR_STOPPED;
        if (w != WR_RETRY) return w;
    }
}

/* The writer: takes the batch the task thread hands over (wstate W_BUSY), writes it, hands it
 * back (W_DONE). One batch at a time, in the order they were handed over. */
static void *writer_main(void *arg)
{
    pg_sink *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->wstate != W_BUSY) pthread_cond_wait(&s->work, &s->mu);
        if (s->stop) break;
        batch *b = s->out;
        pthread_mutex_unlock(&s->mu);
        wr_result w = write_batch(s, b);
        pthread_mutex_lock(&s->mu);
        if (w == WR_STOPPED) break; /* close: the batch stays unacknowledged */
        b->result = w;
        if (w == WR_FATAL) memcpy(b->reason, s->wr.reason, sizeof b->reason);
        s->wstate = W_DONE;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the task thread's side ---------------------------------------------------------- */

static void batch_clear(batch *b)
{
    b->nrows = 0;
    b->lines.len = b->saved.len = 0;
    b->pos_row = NO_ROW;
}

/* Logs what the writer noted (task thread). Called with s->mu held; releases it meanwhile. */
static void report_notes(pg_sink *s)
{
    note notes[sizeof s->notes / sizeof s->notes[0]];
    size_t n = s->nnotes;
    uint64_t reconnects = s->reconnects;
    memcpy(notes, s->notes, n * sizeof notes[0]);
    s->nnotes = 0;
    s->reconnects = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) s->api->log(s->ctx, notes[i].level, "%s", notes[i].msg);
    if (reconnects) s->api->count(s->ctx, "reconnects", reconnects);
    pthread_mutex_lock(&s->mu);
}

/* Takes back what the writer finished: counts it, rejects a refused row and hands the batch
 * back to go on, or recycles it. With `wait`, first waits while the writer is busy and
 * PostgreSQL is up (while it is away the writer retries by itself and we return at once).
 * SL_FATAL after a setup error. */
static sl_err collect(pg_sink *s, bool wait)
{
    sl_err e = SL_OK;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (wait && s->wstate == W_BUSY && !s->wdown) pthread_cond_wait(&s->done, &s->mu);
        report_notes(s);
        if (s->wstate != W_DONE) break;
        batch *b = s->out;
        pthread_mutex_unlock(&s->mu);
        if (b->flushes) {
            s->api->count(s->ctx, "flushes", b->flushes);
            s->api->observe(s->ctx, "flush_seconds", b->seconds);
        }
        if (b->written) s->api->count(s->ctx, "rows_written", b->written);
        b->flushes = b->written = 0;
        b->seconds = 0;
        int next = W_IDLE;
        if (b->result == WR_REFUSED) {
            reject_row(s, b, &b->rows[b->refused], b->reason);
            if (s->store_offsets) b->pos_row = b->refused;
            next = W_BUSY;
        } else if (b->result == WR_FATAL) {
            s->api->log(s->ctx, SL_LOG_ERROR, "cannot write: %s", b->reason);
            s->failed = true;
            e = SL_FATAL;
            next = W_DONE; /* the writer keeps nothing; the rows stay unacknowledged */
        } else {
            batch_clear(b);
        }
        pthread_mutex_lock(&s->mu);
        s->wstate = next;
        if (next == W_BUSY) pthread_cond_signal(&s->work);
        if (next != W_BUSY) break;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Hands the filled batch to the writer if it is free; false if it is still busy. */
static bool submit(pg_sink *s)
{
    pthread_mutex_lock(&s->mu);
    bool idle = s->wstate == W_IDLE;
    if (idle) {
        batch *b = s->fill;
        s->fill = s->out;
        s->out = b;
        s->wstate = W_BUSY;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return idle;
}

/* ---- callbacks ----------------------------------------------------------------------- */

static sl_err pg_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const pg_config *cfg = config;
    pg_sink *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->ctx = ctx;
    s->cfg = cfg;
    s->pipeline = api->pipeline_name(ctx); /* borrowed for the instance's life; the writer uses it */
    s->task.up = s->wr.up = -1;
    s->wr.writer = true;
    s->fill = &s->bufs[0];
    s->out = &s->bufs[1];
    s->bufs[0].pos_row = s->bufs[1].pos_row = NO_ROW;

    cJSON *j = cJSON_Parse(cfg->tables ? cfg->tables : "");
    const char *err = NULL, *where = "";
    if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) == 0) {
        err = "tables: expected a map of topic to table spec";
    } else if (!(s->specs = calloc((size_t)cJSON_GetArraySize(j), sizeof *s->specs))) {
        err = "out of memory";
    } else {
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            table_spec *t = &s->specs[s->nspecs++];
            where = it->string;
            if (!(t->topic = strdup(it->string))) err = "out of memory";
            else err = parse_spec(t, it, api);
            if (!err && cfg->create_tables && t->auto_cols)
                err = "create_tables needs the table's `columns` (with their types)";
            if (err) break;
        }
    }
    /* A dead-letter sink sees the positions of other stages' records: it stores none. */
    s->store_offsets = cfg->store_offsets;
    if (!err && s->store_offsets && (!cfg->offsets_table || !cfg->offsets_table[0]))
        where = "", err = "offsets_table must name a table";
    if (err) {
        if (where[0]) api->log(ctx, SL_LOG_ERROR, "tables.%s: %s", where, err);
        else api->log(ctx, SL_LOG_ERROR, "%s", err);
        cJSON_Delete(j);
        free_specs(s->specs, s->nspecs);
        free(s);
        return SL_ECONFIG;
    }
    cJSON_Delete(j);
    s->task.sql = calloc(2 * s->nspecs, sizeof *s->task.sql);
    s->wr.sql = calloc(2 * s->nspecs, sizeof *s->wr.sql);
    /* The writer sleeps out its backoff on `work` with a monotonic deadline. */
    pthread_condattr_t ca;
    bool ok = s->task.sql && s->wr.sql && pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&s->work, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (ok) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->done, NULL);
        ok = pthread_create(&s->thread, NULL, writer_main, s) == 0;
        if (!ok) {
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->done);
            pthread_cond_destroy(&s->work);
        }
    }
    if (!ok) {
        api->log(ctx, SL_LOG_ERROR, "cannot start the writer thread");
        free(s->task.sql);
        free(s->wr.sql);
        free_specs(s->specs, s->nspecs);
        free(s);
        return SL_FATAL;
    }
    *self = s;
    return SL_OK;
}

static sl_err pg_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken || s->failed) return SL_FATAL;
    sl_err e = collect(s, false);
    if (e != SL_OK) return e;
    /* Both buffers full: wait for the writer, then hand it this one. If PostgreSQL is away,
     * refuse the batch (nothing held yet) so the host backs off and offers it again. */
    if ((int64_t)s->fill->nrows >= s->cfg->batch_size) {
        e = collect(s, true);
        if (e != SL_OK) return e;
        if (!submit(s)) return SL_RETRY;
    }
    /* Rendering a row needs the columns and their types from the catalog. */
    bool loaded = true;
    for (size_t i = 0; i < s->nspecs; i++) loaded = loaded && s->specs[i].loaded;
    if (!loaded) {
        wr_result w = ensure_conn(s, &s->task, 0);
        if (w == WR_RETRY) return SL_RETRY;
        if (w == WR_FATAL) {
            s->api->log(ctx, SL_LOG_ERROR, "%s", s->task.reason);
            return SL_FATAL;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (add_record(s, batch->recs[i]) != SL_OK) {
            s->api->log(ctx, SL_LOG_ERROR, "out of memory buffering rows");
            return SL_ENOMEM;
        }
    }
    /* A full buffer goes to the writer now if it is free, else at the next call. */
    if ((int64_t)s->fill->nrows >= s->cfg->batch_size) (void)submit(s);
    return SL_OK;
}

static sl_err pg_flush(void *self, sl_ctx *ctx, int final)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken || s->failed) return SL_FATAL;
    if (!final) {
        sl_err e = collect(s, false);
        if (e == SL_OK && s->fill->nrows &&
            ((int64_t)s->fill->nrows >= s->cfg->batch_size ||
             now_ms() - s->fill->first_ms >= s->cfg->flush_interval_ms))
            (void)submit(s); /* if the writer is busy, the next flush hands it over */
        return e;
    }
    /* Final: everything durable before returning SL_OK. While PostgreSQL is away the writer
     * keeps retrying and we return SL_RETRY at once; the host calls again. */
    for (;;) {
        sl_err e = collect(s, true);
        if (e != SL_OK) return e;
        if (s->fill->nrows == 0) {
            pthread_mutex_lock(&s->mu);
            bool idle = s->wstate == W_IDLE;
            pthread_mutex_unlock(&s->mu);
            return idle ? SL_OK : SL_RETRY;
        }
        if (!submit(s)) return SL_RETRY;
    }
}

/* ---- state restore on partition assignment ------------------------------------------ */

#define RESTORE_TIMEOUT_MS 60000 /* how long on_assign waits for PostgreSQL */
#define RESTORE_CHUNK 1024       /* state records per api->restore call */

/* The column of t fed from `src` ($partition / $offset); for the partition, else a column
 * named "partition". NULL if none. */
static const column *column_from(const table_spec *t, src_kind src)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (t->cols[c].src == src) return &t->cols[c];
    return src == SRC_PARTITION ? find_column(t, "partition") : NULL;
}

/* One query for the rows of spec t to restore for the assigned partitions (see README):
 *   with an $offset column: rows with offset <= the partition's committed offset, each record's
 *     offset = the row's;
 *   else: every row of the partitions, each record's offset = the position stored in
 *     offsets_table for (pipeline, the spec's topic, partition), -1 if none;
 * in both cases only rows whose time_column is within `within` of now(), the newest max_rows.
 * Result columns: partition, offset, timestamp ms, row as JSON text. */
static wr_result restore_query(pg_sink *s, const table_spec *t, const sl_position *parts,
                               size_t n, PGresult **out)
{
    *out = NULL;
    const column *pcol = column_from(t, SRC_PARTITION), *ocol = column_from(t, SRC_OFFSET);
    if (!pcol) {
        snprintf(s->task.reason, sizeof s->task.reason, "tables.%s: restore needs a column mapped from "
                 "$partition or named \"partition\"", t->topic);
        return WR_FATAL;
    }
    const char *tc = t->restore_time_col;
    const column *tcol = tc ? find_column(t, tc) : NULL;
    bool tc_is_time = !tcol || tcol->is_time; /* an unmapped column: assume a timestamp */

    /* $1 partitions, $2 their committed offsets (one per distinct partition: the smallest
     * among the positions of the spec's topic, or of any topic if none is the spec's). */
    bool topic_match = false;
    for (size_t i = 0; i < n; i++) topic_match |= parts[i].topic && !strcmp(parts[i].topic, t->topic);
    buf ps = {0}, cs = {0}, sql = {0};
    buf_putc(&ps, '{');
    buf_putc(&cs, '{');
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) seen = parts[j].partition == parts[i].partition;
        if (seen) continue;
        int64_t c = INT64_MAX;
        for (size_t j = i; j < n; j++) {
            if (parts[j].partition != parts[i].partition) continue;
            if (topic_match && !(parts[j].topic && !strcmp(parts[j].topic, t->topic))) continue;
            if (parts[j].offset < c) c = parts[j].offset;
        }
        if (c == INT64_MAX) c = -1;
        buf_printf(&ps, "%s%d", distinct ? "," : "", (int)parts[i].partition);
        buf_printf(&cs, "%s%lld", distinct ? "," : "", (long long)c);
        distinct++;
    }
    buf_putc(&ps, '}');
    buf_putc(&cs, '}');

    bool ok = true;
    buf_puts(&sql, "SELECT r.p, r.off, r.ms, r.v FROM (SELECT a.p, ");
    if (ocol) {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol->name);
    } else {
        buf_puts(&sql, s->store_offsets ? "coalesce(so.\"offset\", -1)" : "-1::bigint");
    }
    buf_puts(&sql, " AS off, ");
    if (!tc) {
        buf_puts(&sql, "0::bigint");
    } else if (tc_is_time) {
        buf_puts(&sql, "(extract(epoch FROM t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, ") * 1000)::bigint");
    } else {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, "::bigint");
    }
    buf_puts(&sql, " AS ms, row_to_json(t)::text AS v, ");
    if (ocol || tc) {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol ? ocol->name : tc);
    } else {
        buf_puts(&sql, "0");
    }
    buf_puts(&sql, " AS o FROM ");
    ok = ok && put_table_name(s->task.conn, &sql, t);
    buf_puts(&sql, " t JOIN unnest($1::int[], $2::bigint[]) AS a(p, c) ON t.");
    ok = ok && put_ident(s->task.conn, &sql, pcol->name);
    buf_puts(&sql, " = a.p");
    if (!ocol && s->store_offsets) {
        buf_puts(&sql, " LEFT JOIN ");
        ok = ok && put_ident(s->task.conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " so ON so.pipeline = $3 AND so.topic = $4 AND so.\"partition\" = a.p");
    }
    buf_puts(&sql, " WHERE true");
    if (ocol) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->task.conn, &sql, ocol->name);
        buf_puts(&sql, " <= a.c");
    }
    if (tc && t->restore_within_ms) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->task.conn, &sql, tc);
        buf_puts(&sql, tc_is_time ? " >= now() - $5::bigint * interval '1 millisecond'"
                                  : " >= (extract(epoch FROM now()) * 1000)::bigint - $5::bigint");
    }
    buf_puts(&sql, " ORDER BY o DESC LIMIT $6::bigint) r ORDER BY r.p, r.o");

    char within[24], limit[24];
    snprintf(within, sizeof within, "%lld", (long long)t->restore_within_ms);
    snprintf(limit, sizeof limit, "%lld", (long long)t->restore_max_rows);
    const char *params[6] = {ps.p, cs.p, s->pipeline, t->topic, within, limit};
    const Oid types[6] = {25, 25, 25, 25, 25, 25}; /* text: unused ones need a type too */
    wr_result w = WR_OK;
    if (!ok || ps.oom || cs.oom || sql.oom) {
        snprintf(s->task.reason, sizeof s->task.reason, "out of memory building the restore query");
        w = WR_FATAL;
    } else {
        PGresult *res = PQexecParams(s->task.conn, sql.p, 6, types, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            *out = res;
        } else {
            describe_error(&s->task, res);
            w = classify(s->task.conn, res);
            if (w == WR_DATA) w = WR_FATAL;
            PQclear(res);
        }
    }
    buf_free(&ps);
    buf_free(&cs);
    buf_free(&sql);
    return w;
}

/* Hands the rows of one restore result to the earlier stages, in chunks. */
static void restore_deliver(pg_sink *s, const table_spec *t, PGresult *res)
{
    sl_record recs[RESTORE_CHUNK];
    int rows = PQntuples(res), k = 0;
    for (int i = 0; i < rows; i++) {
        recs[k++] = (sl_record){
            .value = PQgetvalue(res, i, 3),
            .value_len = (size_t)PQgetlength(res, i, 3),
            .timestamp_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10),
            .topic = t->topic,
            .partition = (int32_t)strtol(PQgetvalue(res, i, 0), NULL, 10),
            .offset = strtoll(PQgetvalue(res, i, 1), NULL, 10),
        };
        if (k == RESTORE_CHUNK || i + 1 == rows) {
            s->api->restore(s->ctx, recs, (size_t)k);
            k = 0;
        }
    }
    s->api->count(s->ctx, "rows_restored", (uint64_t)rows);
    s->api->log(s->ctx, rows >= t->restore_max_rows ? SL_LOG_WARN : SL_LOG_INFO,
                "restored %d rows of %s for %s%s", rows, t->table, t->topic,
                rows >= t->restore_max_rows ? " (max_rows reached: older rows were left out)" : "");
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Partitions were assigned: read the state of every spec with `restore:` (one query each; all
 * read before any is handed over, so a retry never delivers a table twice) and hand it to the
 * earlier stages. While PostgreSQL is away it waits (bounded); if the state cannot be read, the
 * sink stops the pipeline at its next call rather than let stages run without their state. */
static sl_err pg_on_assign(void *self, sl_ctx *ctx, sl_position *parts, size_t n)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->failed) return SL_FATAL;
    /* The host has drained the chain; also let the writer finish, so what is read back
     * includes every committed batch. */
    sl_err e = collect(s, true);
    if (e != SL_OK) return e;
    size_t want = 0;
    for (size_t i = 0; i < s->nspecs; i++) want += s->specs[i].restore;
    if (want == 0 || n == 0) return SL_OK;
    PGresult **res = calloc(s->nspecs, sizeof *res);
    if (!res) {
        s->broken = true;
        return SL_ENOMEM;
    }
    int64_t deadline = s->api->monotonic_ms(ctx) + RESTORE_TIMEOUT_MS;
    wr_result w;
    for (;;) {
        w = ensure_conn(s, &s->task, 0);
        for (size_t i = 0; i < s->nspecs && w == WR_OK; i++)
            if (s->specs[i].restore) w = restore_query(s, &s->specs[i], parts, n, &res[i]);
        if (w == WR_OK || w == WR_FATAL || s->api->monotonic_ms(ctx) >= deadline) break;
        for (size_t i = 0; i < s->nspecs; i++) {
            PQclear(res[i]);
            res[i] = NULL;
        }
        if (s->task.up != 0) set_down(s, &s->task, 0, s->task.reason);
        sleep_ms(BACKOFF_MIN_MS);
    }
    for (size_t i = 0; i < s->nspecs; i++) {
        if (w == WR_OK && res[i]) restore_deliver(s, &s->specs[i], res[i]);
        PQclear(res[i]);
    }
    free(res);
    if (w == WR_OK) return SL_OK;
    s->api->log(ctx, SL_LOG_ERROR, "cannot restore state for %zu assigned partitions: %s; "
                "stopping the pipeline", n, s->task.reason);
    s->broken = true;
    return SL_FATAL;
}

static void pgc_free(pgc *l, size_t nspecs)
{
    if (l->conn) PQfinish(l->conn);
    for (size_t i = 0; l->sql && i < 2 * nspecs; i++) buf_free(&l->sql[i]);
    free(l->sql);
    free(l->offsets_put);
}

static void batch_free(batch *b)
{
    free(b->rows);
    buf_free(&b->lines);
    buf_free(&b->saved);
}

static void pg_close(void *self, sl_ctx *ctx)
{
    pg_sink *s = self;
    s->ctx = ctx;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* a transaction under way finishes first */
    pthread_mutex_lock(&s->mu);
    report_notes(s);
    pthread_mutex_unlock(&s->mu);
    /* Rows not written (buffered, or the writer's unfinished batch) keep their holds, so
     * their positions are never committed and a restart delivers them again. */
    size_t left = s->fill->nrows + (s->wstate != W_IDLE ? pending_rows(s->out) : 0);
    if (left)
        s->api->log(ctx, SL_LOG_WARN, "closing with %zu rows not written to PostgreSQL; they "
                    "stay unacknowledged and will be redelivered", left);
    pgc_free(&s->task, s->nspecs);
    pgc_free(&s->wr, s->nspecs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->done);
    free_specs(s->specs, s->nspecs);
    batch_free(&s->bufs[0]);
    batch_free(&s->bufs[1]);
    buf_free(&s->scratch);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry pg_config_table[] = {
    {.key = "dsn", .type = SL_T_STRING, .offset = offsetof(pg_config, dsn),
     .description = "libpq conninfo or URI; empty: the PG* environment variables"},
    {.key = "tables", .type = SL_T_JSON, .flags = SL_CFG_REQUIRED,
     .offset = offsetof(pg_config, tables),
     .description = "map of record topic (\"*\": any other) to {table, schema, columns, "
                    "conflict, on_conflict}"},
    {.key = "batch_size", .type = SL_T_INT, .flags = SL_CFG_BOUNDED, .default_value = "10000",
     .min = 1, .max = 1000000, .offset = offsetof(pg_config, batch_size),
     .description = "rows per transaction; a full buffer is written at once"},
    {.key = "flush_interval", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED,
     .default_value = "200ms", .min = 1, .max = 3600000,
     .offset = offsetof(pg_config, flush_interval_ms),
     .description = "longest time a row waits in the buffer"},
    {.key = "create_tables", .type = SL_T_BOOL, .default_value = "false",
     .offset = offsetof(pg_config, create_tables),
     .description = "CREATE TABLE IF NOT EXISTS from the typed columns (schema: pipelines/sql/)"},
    {.key = "store_offsets", .type = SL_T_BOOL, .default_value = "true",
     .offset = offsetof(pg_config, store_offsets),
     .description = "store source positions in offsets_table in each transaction and resume "
                    "from them; false on a dead-letter pg-sink"},
    {.key = "offsets_table", .type = SL_T_STRING, .default_value = "sluice_offsets",
     .offset = offsetof(pg_config, offsets_table),
     .description = "table of (pipeline, topic, partition, offset)"},
    {.key = "offsets_topic", .type = SL_T_STRING, .offset = offsetof(pg_config, offsets_topic),
     .description = "topic name stored with positions; default: the record's topic as the sink "
                    "sees it (set the source topic if a transform renames topics)"},
    {.key = NULL},
};

static const sl_stage_desc pg_sink_desc = {
    SL_STAGE_DESC_INIT,
    .name = "pg-sink",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "writes records to PostgreSQL tables: COPY + INSERT ON CONFLICT, acked after COMMIT",
    .config = pg_config_table,
    .config_size = sizeof(pg_config),
    .init = pg_init,
    .process = pg_process,
    .flush = pg_flush,
    .close = pg_close,
    .on_assign = pg_on_assign,
};

SL_STAGE_DEFINE(pg_sink_desc)
