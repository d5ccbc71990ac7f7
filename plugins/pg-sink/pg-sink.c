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
 * On partition assignment, specs with `restore:` are read back (one query per table) and handed
 * to the earlier stages' on_restore (api->restore), so dedup and window-kpi rebuild their state
 * from what is durable; see README.md. The resume position is the source's own (never moved).
 */
#include <sluice/stage.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include <errno.h>
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
    buf copy_sql, insert_sql; /* rebuilt per connection (identifier quoting needs one) */
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
    size_t line_off, line_len; /* in pg_sink.lines */
    size_t topic_off, topic_len; /* in pg_sink.saved; topic_len SIZE_MAX: no topic */
    size_t key_off, key_len;     /* key_len SIZE_MAX: no key */
    size_t val_off, val_len;
    size_t hdr_off, n_headers;
    int64_t ts;
    int32_t partition;
    int64_t offset;
} row;

typedef enum wr_result { WR_OK, WR_DATA, WR_RETRY, WR_FATAL } wr_result;

typedef struct pg_sink {
    const sl_api *api;
    sl_ctx *ctx;
    const pg_config *cfg;
    table_spec *specs;
    size_t nspecs;

    PGconn *conn;
    int up;                 /* -1 never connected, 0 down, 1 up: logs once per change */
    int attempts;           /* failed tries since the last success */
    int64_t next_try_ms;    /* backoff: no connection attempt / flush before this */
    int64_t backoff_ms;
    bool tables_created;
    bool store_offsets;     /* store_offsets, and not the dead letter */
    bool broken;            /* state restore failed: stop rather than run without state */
    char *offsets_put;      /* upsert of the offsets table */

    row *rows;
    size_t nrows, cap_rows;
    buf lines, saved, scratch;
    int64_t seq;            /* arrival order inside the staging table */
    int64_t first_ms;       /* when the oldest buffered row arrived */
    char reason[1024];      /* the server's message for a refused row */
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
        buf_free(&t->copy_sql);
        buf_free(&t->insert_sql);
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
static bool build_sql(PGconn *conn, table_spec *t, size_t i, buf *create)
{
    buf *cp = &t->copy_sql, *ins = &t->insert_sql;
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
static void describe_error(pg_sink *s, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (!msg) msg = PQerrorMessage(s->conn);
    snprintf(s->reason, sizeof s->reason, "%s%s%s%s%s%s", st ? st : "", st ? ": " : "", msg,
             detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    squeeze_spaces(s->reason);
}

/* Runs a command that returns no rows; on failure fills s->reason and says what kind. */
static wr_result exec_cmd(pg_sink *s, const char *sql)
{
    PGresult *res = PQexec(s->conn, sql);
    wr_result r = WR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        describe_error(s, res);
        r = classify(s->conn, res);
    }
    PQclear(res);
    return r;
}

static void set_down(pg_sink *s, const char *why)
{
    if (s->up != 0)
        s->api->log(s->ctx, SL_LOG_WARN,
                    "PostgreSQL unavailable (%s); keeping %zu rows and retrying with backoff",
                    why, s->nrows);
    s->up = 0;
    s->attempts++;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS) s->backoff_ms = BACKOFF_MAX_MS;
    s->next_try_ms = s->api->monotonic_ms(s->ctx) + s->backoff_ms;
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

static void set_up(pg_sink *s)
{
    if (s->up == 0) {
        s->api->log(s->ctx, SL_LOG_INFO, "PostgreSQL available again after %d retries",
                    s->attempts);
        s->api->count(s->ctx, "reconnects", 1);
    }
    s->up = 1;
    s->attempts = 0;
    s->backoff_ms = 0;
    s->next_try_ms = 0;
}

/* Reads the target's columns (name, type, default). Explicit columns must exist; omitted
 * columns become every insertable column of the table. */
static wr_result load_catalog(pg_sink *s, table_spec *t)
{
    buf qname = {0};
    if (!put_table_name(s->conn, &qname, t) || qname.oom) {
        buf_free(&qname);
        return WR_RETRY;
    }
    const char *params[1] = {qname.p};
    PGresult *res = PQexecParams(
        s->conn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),"
        " a.attidentity <> '' OR a.attgenerated <> ''"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        1, NULL, params, NULL, NULL, 0);
    buf_free(&qname);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(s, res);
        wr_result r = classify(s->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    int n = PQntuples(res);
    if (n == 0) {
        snprintf(s->reason, sizeof s->reason,
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
            snprintf(s->reason, sizeof s->reason, "table %s has no column \"%s\"", t->table,
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
            snprintf(s->reason, sizeof s->reason, "conflict key \"%s\" is not a mapped column of %s",
                     t->keys[k], t->table);
            return WR_FATAL;
        }
    }
    t->loaded = true;
    return WR_OK;
}

/* create_tables: the configured tables (typed columns, conflict keys as primary key) and the
 * offsets table, IF NOT EXISTS. */
static wr_result create_tables(pg_sink *s)
{
    buf sql = {0};
    wr_result r = WR_OK;
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_table_name(s->conn, &sql, t);
        buf_puts(&sql, " (");
        for (size_t c = 0; c < t->ncols; c++) {
            if (c) buf_puts(&sql, ", ");
            ok = ok && put_ident(s->conn, &sql, t->cols[c].name);
            /* The type is configuration (SQL type syntax), never a record's value. */
            buf_printf(&sql, " %s", t->cols[c].cfg_type ? t->cols[c].cfg_type : "text");
        }
        for (size_t k = 0; k < t->nkeys; k++) {
            buf_puts(&sql, k ? ", " : ", PRIMARY KEY (");
            ok = ok && put_ident(s->conn, &sql, t->keys[k]);
        }
        buf_puts(&sql, t->nkeys ? "))" : ")");
        r = ok && !sql.oom ? exec_cmd(s, sql.p) : WR_FATAL;
    }
    if (r == WR_OK && s->store_offsets) {
        sql.len = 0;
        buf_puts(&sql, "CREATE TABLE IF NOT EXISTS ");
        bool ok = put_ident(s->conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " (pipeline text NOT NULL, topic text NOT NULL, \"partition\" integer NOT NULL,"
                       " \"offset\" bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
                       " PRIMARY KEY (pipeline, topic, \"partition\"))");
        r = ok && !sql.oom ? exec_cmd(s, sql.p) : WR_FATAL;
    }
    buf_free(&sql);
    return r == WR_DATA ? WR_FATAL : r;
}

/* The statements on the offsets table, and a check that it exists (fail now, with advice,
 * rather than at the first flush). */
static wr_result prepare_offsets(pg_sink *s)
{
    const char *params[1] = {s->cfg->offsets_table};
    PGresult *res = PQexecParams(s->conn, "SELECT to_regclass(quote_ident($1))", 1, NULL, params,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        describe_error(s, res);
        wr_result r = classify(s->conn, res);
        PQclear(res);
        return r == WR_DATA ? WR_FATAL : r;
    }
    bool missing = PQgetisnull(res, 0, 0);
    PQclear(res);
    if (missing) {
        snprintf(s->reason, sizeof s->reason,
                 "table %s does not exist (load pipelines/sql/schema.sql, set create_tables: "
                 "true, or store_offsets: false)",
                 s->cfg->offsets_table);
        return WR_FATAL;
    }
    buf put = {0};
    buf_puts(&put, "INSERT INTO ");
    bool ok = put_ident(s->conn, &put, s->cfg->offsets_table);
    buf_puts(&put, " (pipeline, topic, \"partition\", \"offset\") VALUES ($1, $2, $3, $4)"
                   " ON CONFLICT (pipeline, topic, \"partition\") DO UPDATE"
                   " SET \"offset\" = EXCLUDED.\"offset\", updated_at = now()");
    free(s->offsets_put);
    s->offsets_put = put.p;
    return ok && !put.oom ? WR_OK : WR_FATAL;
}

/* Connect if needed: session setup, catalog (first time), statements and staging tables.
 * WR_RETRY while PostgreSQL is unreachable or during the backoff; WR_FATAL on a setup problem
 * (s->reason says which). */
static wr_result ensure_conn(pg_sink *s)
{
    if (s->api->monotonic_ms(s->ctx) < s->next_try_ms) return WR_RETRY;
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) == PQTRANS_IDLE)
        return WR_OK;
    if (s->conn) PQfinish(s->conn);
    s->conn = PQconnectdb(s->cfg->dsn ? s->cfg->dsn : "");
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(s->reason, sizeof s->reason, "%s",
                 s->conn ? PQerrorMessage(s->conn) : "out of memory");
        squeeze_spaces(s->reason);
        set_down(s, s->reason);
        return WR_RETRY;
    }
    wr_result r = WR_OK;
    if (PQsetClientEncoding(s->conn, "UTF8") != 0) r = WR_RETRY;
    if (r == WR_OK && s->cfg->create_tables && !s->tables_created) {
        r = create_tables(s);
        s->tables_created = r == WR_OK;
    }
    buf create = {0};
    for (size_t i = 0; i < s->nspecs && r == WR_OK; i++) {
        table_spec *t = &s->specs[i];
        if (!t->loaded) r = load_catalog(s, t);
        if (r == WR_OK) r = build_sql(s->conn, t, i, &create) ? exec_cmd(s, create.p) : WR_FATAL;
    }
    buf_free(&create);
    /* Timestamps read back (restore) come as RFC 3339 with +00:00, whatever the server's zone. */
    if (r == WR_OK) r = exec_cmd(s, "SET TIME ZONE 'UTC'");
    if (r == WR_OK && s->store_offsets) r = prepare_offsets(s);
    if (r == WR_FATAL) return WR_FATAL;
    if (r != WR_OK) {
        set_down(s, s->reason);
        return WR_RETRY;
    }
    if (s->up == -1)
        s->api->log(s->ctx, SL_LOG_INFO, "connected to PostgreSQL %s at %s:%s",
                    PQparameterStatus(s->conn, "server_version"), PQhost(s->conn), PQport(s->conn));
    set_up(s);
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
static void save_record(pg_sink *s, row *r, const sl_record *rec)
{
    buf *b = &s->saved;
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
static void reject_row(pg_sink *s, row *r, const char *reason)
{
    const char *base = s->saved.p;
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
    if (s->nrows == s->cap_rows) {
        size_t cap = s->cap_rows ? s->cap_rows * 2 : 1024;
        row *p = realloc(s->rows, cap * sizeof *p);
        if (!p) return SL_ENOMEM;
        s->rows = p;
        s->cap_rows = cap;
    }
    row *r = &s->rows[s->nrows];
    *r = (row){.table = (size_t)(t - s->specs), .line_off = s->lines.len};
    for (size_t c = 0; c < t->ncols; c++) {
        put_field(s, &s->lines, &t->cols[c], rec, root);
        buf_putc(&s->lines, '\t');
    }
    buf_printf(&s->lines, "%lld\n", (long long)s->seq++);
    r->line_len = s->lines.len - r->line_off;
    save_record(s, r, rec);
    if (s->lines.oom || s->saved.oom) return SL_ENOMEM;
    r->ack = s->api->hold(s->ctx, rec);
    if (s->nrows++ == 0) s->first_ms = s->api->monotonic_ms(s->ctx);
    return SL_OK;
}

/* ---- writing ------------------------------------------------------------------------- */

/* Key of sluice_offsets for a row: the configured topic, else the record's own topic. */
static const char *offsets_topic(const pg_sink *s, const row *r)
{
    if (s->cfg->offsets_topic) return s->cfg->offsets_topic;
    return r->topic_len == SIZE_MAX ? "" : s->saved.p + r->topic_off;
}

/* Upserts the max offset per (topic, partition) of the rows of [lo, hi) that are pending (or,
 * with with_done, also those already finished: a rejected row's position). */
static wr_result write_offsets(pg_sink *s, size_t lo, size_t hi, bool with_done)
{
    if (!s->store_offsets) return WR_OK;
    const char *pipeline = s->api->pipeline_name(s->ctx);
    for (size_t i = lo; i < hi; i++) {
        row *r = &s->rows[i];
        if ((r->done && !with_done) || r->partition < 0) continue;
        /* Rows of a partition arrive in offset order, so the last row of each (topic,
         * partition) in the range carries its max: write each pair only there. */
        const char *topic = offsets_topic(s, r);
        bool later = false;
        for (size_t j = i + 1; j < hi && !later; j++) {
            const row *q = &s->rows[j];
            later = (!q->done || with_done) && q->partition == r->partition &&
                    !strcmp(offsets_topic(s, q), topic);
        }
        if (later) continue;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", (int)r->partition);
        snprintf(off, sizeof off, "%lld", (long long)r->offset);
        const char *params[4] = {pipeline, topic, part, off};
        PGresult *res = PQexecParams(s->conn, s->offsets_put, 4, NULL, params, NULL, NULL, 0);
        wr_result w = WR_OK;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(s, res);
            w = classify(s->conn, res);
        }
        PQclear(res);
        if (w != WR_OK) return w;
    }
    return WR_OK;
}

/* COPY the pending rows of [lo, hi) for table t into its staging table and move them into the
 * target. */
static wr_result write_table(pg_sink *s, size_t t, size_t lo, size_t hi)
{
    table_spec *spec = &s->specs[t];
    PGresult *res = PQexec(s->conn, spec->copy_sql.p);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        describe_error(s, res);
        wr_result r = classify(s->conn, res);
        PQclear(res);
        return r;
    }
    PQclear(res);
    bool sent = true;
    for (size_t i = lo; i < hi && sent; i++) {
        const row *r = &s->rows[i];
        if (!r->done && r->table == t)
            sent = PQputCopyData(s->conn, s->lines.p + r->line_off, (int)r->line_len) == 1;
    }
    if (PQputCopyEnd(s->conn, sent ? NULL : "client failed to send") != 1) sent = false;
    wr_result w = WR_OK;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (w == WR_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            describe_error(s, res);
            w = classify(s->conn, res);
        }
        PQclear(res);
    }
    if (w == WR_OK && !sent) {
        snprintf(s->reason, sizeof s->reason, "%s", PQerrorMessage(s->conn));
        w = WR_RETRY;
    }
    return w == WR_OK ? exec_cmd(s, spec->insert_sql.p) : w;
}

/* One transaction for the pending rows of [lo, hi) and their positions; offsets_only: just the
 * positions of [lo, hi), finished rows included. */
static wr_result write_txn(pg_sink *s, size_t lo, size_t hi, bool offsets_only)
{
    wr_result w = exec_cmd(s, "BEGIN");
    for (size_t t = 0; t < s->nspecs && w == WR_OK && !offsets_only; t++) {
        bool any = false;
        for (size_t i = lo; i < hi && !any; i++) any = !s->rows[i].done && s->rows[i].table == t;
        if (any) w = write_table(s, t, lo, hi);
    }
    if (w == WR_OK) w = write_offsets(s, lo, hi, offsets_only);
    if (w == WR_OK) w = exec_cmd(s, "COMMIT");
    if (w != WR_OK && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        char keep[sizeof s->reason];
        memcpy(keep, s->reason, sizeof keep);
        PQclear(PQexec(s->conn, "ROLLBACK"));
        memcpy(s->reason, keep, sizeof keep);
    }
    return w;
}

/* Writes [lo, hi); on a data error splits the range until the refused row is alone, rejects it
 * and commits the rest. */
static wr_result write_range(pg_sink *s, size_t lo, size_t hi)
{
    size_t pending = 0, only = lo;
    for (size_t i = lo; i < hi; i++)
        if (!s->rows[i].done) pending++, only = i;
    if (pending == 0) return WR_OK;
    wr_result w = write_txn(s, lo, hi, false);
    if (w == WR_OK) {
        for (size_t i = lo; i < hi; i++) {
            row *r = &s->rows[i];
            if (r->done) continue;
            s->api->release(r->ack);
            r->ack = NULL;
            r->done = true;
        }
        s->api->count(s->ctx, "rows_written", pending);
        return WR_OK;
    }
    if (w != WR_DATA) return w;
    if (pending == 1) {
        /* Dead letter first, then its position: a crash in between re-rejects the row after a
         * restart rather than losing it. A failure to store the position is harmless (the
         * next commit of the partition moves it on). */
        reject_row(s, &s->rows[only], s->reason);
        (void)write_txn(s, only, only + 1, true);
        return WR_OK;
    }
    size_t mid = lo + (hi - lo) / 2;
    w = write_range(s, lo, mid);
    return w == WR_OK ? write_range(s, mid, hi) : w;
}

/* Makes every buffered row durable (or rejected). SL_RETRY keeps the rest for later. */
static sl_err flush_now(pg_sink *s)
{
    if (s->nrows == 0) return SL_OK;
    wr_result w = ensure_conn(s); /* logs and backs off itself */
    if (w == WR_OK) {
        int64_t t0 = s->api->monotonic_ms(s->ctx);
        w = write_range(s, 0, s->nrows);
        s->api->observe(s->ctx, "flush_seconds",
                        (double)(s->api->monotonic_ms(s->ctx) - t0) / 1e3);
        s->api->count(s->ctx, "flushes", 1);
        if (w == WR_RETRY) set_down(s, s->reason);
    }
    size_t keep = 0;
    for (size_t i = 0; i < s->nrows; i++)
        if (!s->rows[i].done) s->rows[keep++] = s->rows[i];
    s->nrows = keep;
    if (keep == 0) s->lines.len = s->saved.len = 0;
    if (w == WR_OK || w == WR_DATA) return SL_OK;
    if (w == WR_RETRY) return SL_RETRY;
    s->api->log(s->ctx, SL_LOG_ERROR, "cannot write: %s", s->reason);
    return SL_FATAL;
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
    s->up = -1;

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
    s->store_offsets = cfg->store_offsets && strcmp(api->stage_name(ctx), "dead_letter") != 0;
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
    *self = s;
    return SL_OK;
}

static sl_err pg_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken) return SL_FATAL;
    /* A full buffer must go first; if it cannot, refuse this batch (nothing held yet) so the
     * host backs off and offers it again. */
    if ((int64_t)s->nrows >= s->cfg->batch_size) {
        sl_err e = flush_now(s);
        if (e != SL_OK) return e;
    }
    /* Rendering a row needs the columns and their types from the catalog. */
    bool loaded = true;
    for (size_t i = 0; i < s->nspecs; i++) loaded = loaded && s->specs[i].loaded;
    if (!loaded) {
        wr_result w = ensure_conn(s);
        if (w == WR_RETRY) return SL_RETRY;
        if (w == WR_FATAL) {
            s->api->log(ctx, SL_LOG_ERROR, "%s", s->reason);
            return SL_FATAL;
        }
    }
    for (size_t i = 0; i < batch->n; i++) {
        if (add_record(s, batch->recs[i]) != SL_OK) {
            s->api->log(ctx, SL_LOG_ERROR, "out of memory buffering rows");
            return SL_ENOMEM;
        }
    }
    if ((int64_t)s->nrows >= s->cfg->batch_size) {
        sl_err e = flush_now(s);
        if (e == SL_FATAL) return e; /* SL_RETRY: the rows are held; flush tries again */
    }
    return SL_OK;
}

static sl_err pg_flush(void *self, sl_ctx *ctx, int final)
{
    pg_sink *s = self;
    s->ctx = ctx;
    if (s->broken) return SL_FATAL;
    if (s->nrows == 0) return SL_OK;
    if (!final && (int64_t)s->nrows < s->cfg->batch_size &&
        s->api->monotonic_ms(ctx) - s->first_ms < s->cfg->flush_interval_ms)
        return SL_OK;
    sl_err e = flush_now(s);
    /* While PostgreSQL is away the rows stay held and the next flush retries (after the
     * backoff); only the final flush reports it, so the host knows the drain is incomplete. */
    return e == SL_RETRY && !final ? SL_OK : e;
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
        snprintf(s->reason, sizeof s->reason, "tables.%s: restore needs a column mapped from "
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
        ok = ok && put_ident(s->conn, &sql, ocol->name);
    } else {
        buf_puts(&sql, s->store_offsets ? "coalesce(so.\"offset\", -1)" : "-1::bigint");
    }
    buf_puts(&sql, " AS off, ");
    if (!tc) {
        buf_puts(&sql, "0::bigint");
    } else if (tc_is_time) {
        buf_puts(&sql, "(extract(epoch FROM t.");
        ok = ok && put_ident(s->conn, &sql, tc);
        buf_puts(&sql, ") * 1000)::bigint");
    } else {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->conn, &sql, tc);
        buf_puts(&sql, "::bigint");
    }
    buf_puts(&sql, " AS ms, row_to_json(t)::text AS v, ");
    if (ocol || tc) {
        buf_puts(&sql, "t.");
        ok = ok && put_ident(s->conn, &sql, ocol ? ocol->name : tc);
    } else {
        buf_puts(&sql, "0");
    }
    buf_puts(&sql, " AS o FROM ");
    ok = ok && put_table_name(s->conn, &sql, t);
    buf_puts(&sql, " t JOIN unnest($1::int[], $2::bigint[]) AS a(p, c) ON t.");
    ok = ok && put_ident(s->conn, &sql, pcol->name);
    buf_puts(&sql, " = a.p");
    if (!ocol && s->store_offsets) {
        buf_puts(&sql, " LEFT JOIN ");
        ok = ok && put_ident(s->conn, &sql, s->cfg->offsets_table);
        buf_puts(&sql, " so ON so.pipeline = $3 AND so.topic = $4 AND so.\"partition\" = a.p");
    }
    buf_puts(&sql, " WHERE true");
    if (ocol) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->conn, &sql, ocol->name);
        buf_puts(&sql, " <= a.c");
    }
    if (tc && t->restore_within_ms) {
        buf_puts(&sql, " AND t.");
        ok = ok && put_ident(s->conn, &sql, tc);
        buf_puts(&sql, tc_is_time ? " >= now() - $5::bigint * interval '1 millisecond'"
                                  : " >= (extract(epoch FROM now()) * 1000)::bigint - $5::bigint");
    }
    buf_puts(&sql, " ORDER BY o DESC LIMIT $6::bigint) r ORDER BY r.p, r.o");

    char within[24], limit[24];
    snprintf(within, sizeof within, "%lld", (long long)t->restore_within_ms);
    snprintf(limit, sizeof limit, "%lld", (long long)t->restore_max_rows);
    const char *params[6] = {ps.p, cs.p, s->api->pipeline_name(s->ctx), t->topic, within, limit};
    const Oid types[6] = {25, 25, 25, 25, 25, 25}; /* text: unused ones need a type too */
    wr_result w = WR_OK;
    if (!ok || ps.oom || cs.oom || sql.oom) {
        snprintf(s->reason, sizeof s->reason, "out of memory building the restore query");
        w = WR_FATAL;
    } else {
        PGresult *res = PQexecParams(s->conn, sql.p, 6, types, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            *out = res;
        } else {
            describe_error(s, res);
            w = classify(s->conn, res);
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
        w = ensure_conn(s);
        for (size_t i = 0; i < s->nspecs && w == WR_OK; i++)
            if (s->specs[i].restore) w = restore_query(s, &s->specs[i], parts, n, &res[i]);
        if (w == WR_OK || w == WR_FATAL || s->api->monotonic_ms(ctx) >= deadline) break;
        for (size_t i = 0; i < s->nspecs; i++) {
            PQclear(res[i]);
            res[i] = NULL;
        }
        if (s->up != 0) set_down(s, s->reason);
        sleep_ms(BACKOFF_MIN_MS);
    }
    for (size_t i = 0; i < s->nspecs; i++) {
        if (w == WR_OK && res[i]) restore_deliver(s, &s->specs[i], res[i]);
        PQclear(res[i]);
    }
    free(res);
    if (w == WR_OK) return SL_OK;
    s->api->log(ctx, SL_LOG_ERROR, "cannot restore state for %zu assigned partitions: %s; "
                "stopping the pipeline", n, s->reason);
    s->broken = true;
    return SL_FATAL;
}

static void pg_close(void *self, sl_ctx *ctx)
{
    pg_sink *s = self;
    /* Rows still buffered were never written: their holds are deliberately not released, so
     * their positions are never committed and a restart delivers them again. */
    if (s->nrows)
        s->api->log(ctx, SL_LOG_WARN, "closing with %zu rows not written to PostgreSQL; they "
                    "stay unacknowledged and will be redelivered", s->nrows);
    if (s->conn) PQfinish(s->conn);
    free_specs(s->specs, s->nspecs);
    free(s->offsets_put);
    free(s->rows);
    buf_free(&s->lines);
    buf_free(&s->saved);
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
