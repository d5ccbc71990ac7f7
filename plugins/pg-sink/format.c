/*
 * format.c — pg-sink: COPY text and JSON text of a record's values, and the
 * buffered rows (route, render, save for the dead letter, hold).
 */
#include "pg-sink.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


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

/* Shortest decimal text that reads back as the same double (integers without exponent) into
 * tmp[40]; returns its length. Finite numbers only (check.c refuses the others). */
static size_t number_text(double d, char *tmp)
{
    if (d == floor(d) && fabs(d) < 9007199254740992.0) return (size_t)snprintf(tmp, 40, "%.0f", d);
    snprintf(tmp, 40, "%.15g", d);
    if (strtod(tmp, NULL) != d) snprintf(tmp, 40, "%.17g", d);
    return strlen(tmp);
}

/* Bytes as a bytea COPY field: "\\x" and hex (COPY turns the doubled backslash into one). */
static void buf_put_bytea(buf *b, const void *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!sl_gbuf_reserve(b, 3 + 2 * n)) return;
    char *o = b->p + b->len;
    *o++ = '\\';
    *o++ = '\\';
    *o++ = 'x';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = ((const unsigned char *)s)[i];
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

/* RFC 3339 with milliseconds, which PostgreSQL reads as timestamptz (and date/timestamp). The
 * years sl_time.h covers (1970..9999) take its formatter; others (PostgreSQL keeps 4713 BC to
 * 294276 AD) go through gmtime. */
static void buf_put_time(buf *b, int64_t ms)
{
    if (ms >= 0 && ms < SL_TS_MAX_MS) {
        char ts[32];
        buf_put(b, ts, (size_t)sl_ts_format(ms, 1, ts));
        return;
    }
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


/* False if the tree holds a number that is not finite (JSON has no text for it). */
static bool json_write(const sl_api *api, buf *b, const sl_json *n)
{
    char tmp[40];
    switch (api->json_type(n)) {
    case SL_JSON_BOOL: buf_puts(b, api->json_number(n) != 0 ? "true" : "false"); break;
    case SL_JSON_NUMBER: {
        double d = api->json_number(n);
        if (!isfinite(d)) return false;
        buf_put(b, tmp, number_text(d, tmp));
        break;
    }
    case SL_JSON_STRING: {
        const char *str = api->json_string(n);
        sl_gbuf_json_str(b, str, strlen(str), false);
        break;
    }
    case SL_JSON_ARRAY:
    case SL_JSON_OBJECT: {
        bool obj = api->json_type(n) == SL_JSON_OBJECT;
        size_t k = api->json_size(n);
        buf_putc(b, obj ? '{' : '[');
        size_t i = 0;
        for (const sl_json *item = k ? api->json_at(n, 0) : NULL; item;
             item = api->json_next(item), i++) {
            if (i) buf_putc(b, ',');
            if (obj) {
                const char *key = api->json_key(item);
                sl_gbuf_json_str(b, key ? key : "", key ? strlen(key) : 0, false);
                buf_putc(b, ':');
            }
            if (!json_write(api, b, item)) return false;
        }
        buf_putc(b, obj ? '}' : ']');
        break;
    }
    default: buf_puts(b, "null"); break;
    }
    return true;
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

/* Text bytes for column col: hex for bytea, else checked (check.c) and COPY-escaped. */
static const char *put_text(buf *b, const column *col, const char *v, size_t n, char *why,
                            size_t wn)
{
    if (col->kind == CK_BYTEA) {
        buf_put_bytea(b, v, n);
        return NULL;
    }
    if (text_fits(col, v, n, why, wn)) return why;
    buf_put_copy(b, v, n);
    return NULL;
}

/* One column's value as a COPY field. NULL, or why the column cannot hold the value exactly
 * (in why; the caller drops what was appended). */
static const char *put_field(pg_sink *s, buf *b, const column *col, const sl_record *rec,
                      const sl_json *root, char *why, size_t wn)
{
    const sl_api *api = s->api;
    switch (col->src) {
    case SRC_PARTITION:
        if (rec->partition < 0) buf_puts(b, "\\N");
        else buf_printf(b, "%d", (int)rec->partition);
        return NULL;
    case SRC_OFFSET:
        if (rec->partition < 0) buf_puts(b, "\\N");
        else buf_printf(b, "%lld", (long long)rec->offset);
        return NULL;
    case SRC_TIMESTAMP:
        if (col->is_time) buf_put_time(b, rec->timestamp_ms);
        else buf_printf(b, "%lld", (long long)rec->timestamp_ms);
        return NULL;
    case SRC_KEY:
        if (!rec->key) break;
        return put_text(b, col, rec->key, rec->key_len, why, wn);
    case SRC_TOPIC:
        if (!rec->topic) break;
        return put_text(b, col, rec->topic, strlen(rec->topic), why, wn);
    case SRC_VALUE: {
        size_t n = 0;
        const void *v = api->value(s->ctx, rec, &n);
        if (!v) break;
        return put_text(b, col, v, n, why, wn);
    }
    case SRC_HEADER: {
        const sl_header *h = find_header(rec, col->arg);
        if (!h || !h->value) break;
        return put_text(b, col, h->value, h->value_len, why, wn);
    }
    case SRC_FIELD: {
        const sl_json *n = root ? api->json_get(root, col->arg) : NULL;
        sl_json_type ty = n ? api->json_type(n) : SL_JSON_INVALID;
        if (ty == SL_JSON_INVALID || ty == SL_JSON_NULL) break;
        if (col->is_json || ty == SL_JSON_ARRAY || ty == SL_JSON_OBJECT) {
            s->scratch.len = 0;
            if (!json_write(api, &s->scratch, n)) {
                snprintf(why, wn, "holds a number that is not finite (NaN or infinity)");
                return why;
            }
            if (s->scratch.oom) {
                b->oom = true;
                return NULL;
            }
            return put_text(b, col, s->scratch.p, s->scratch.len, why, wn);
        }
        if (ty == SL_JSON_STRING) {
            const char *str = api->json_string(n);
            return put_text(b, col, str, strlen(str), why, wn);
        }
        if (ty == SL_JSON_BOOL) {
            buf_puts(b, api->json_number(n) != 0 ? "true" : "false");
            return NULL;
        }
        double d = api->json_number(n);
        char tmp[40];
        size_t len = isfinite(d) ? number_text(d, tmp) : 0;
        if (number_fits(col, d, tmp, len, why, wn)) return why;
        if (col->kind == CK_BYTEA) buf_put_bytea(b, tmp, len);
        else buf_put(b, tmp, len);
        return NULL;
    }
    }
    buf_puts(b, "\\N");
    return NULL;
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
void reject_row(pg_sink *s, batch *b, row *r, const char *reason)
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
    utf8_clip(full);
    s->api->reject(s->ctx, &rec, full);
    s->api->count(s->ctx, "rows_rejected", 1);
    free(hdrs);
    s->api->release(r->ack);
    r->ack = NULL;
    r->done = true;
}

/* The source topic a row of spec t names in its coverage column (table_spec.cov_col): a string
 * field, a header or the key; "" when absent. NULL (and why) when it is something else. */
static const char *source_topic(pg_sink *s, const table_spec *t, const sl_record *rec,
                                const sl_json *root, size_t *n, const char **why)
{
    const column *col = &t->cols[t->cov_col];
    const char *v = NULL;
    *n = 0;
    if (col->src == SRC_FIELD) {
        const sl_json *j = root ? s->api->json_get(root, col->arg) : NULL;
        sl_json_type ty = j ? s->api->json_type(j) : SL_JSON_INVALID;
        if (ty == SL_JSON_STRING) v = s->api->json_string(j), *n = strlen(v);
        else if (ty != SL_JSON_INVALID && ty != SL_JSON_NULL) {
            *why = "not a string (restore.topic_column names the source topic)";
            return NULL;
        }
    } else if (col->src == SRC_HEADER) {
        const sl_header *h = find_header(rec, col->arg);
        if (h && h->value) v = h->value, *n = h->value_len;
    } else if (rec->key) { /* SRC_KEY (sql.c allows no other source) */
        v = rec->key, *n = rec->key_len;
    }
    if (v && memchr(v, '\0', *n)) {
        *why = "holds a NUL byte (restore.topic_column names the source topic)";
        return NULL;
    }
    return v ? v : "";
}

/* Adds one record to the buffer: routes it, renders its COPY line, saves it, holds it. */
sl_err add_record(pg_sink *s, const sl_record *rec)
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
    char why[400];
    const char *bad = NULL, *bad_col = NULL;
    if (root) {
        size_t vlen = 0;
        const char *v = s->api->value(s->ctx, rec, &vlen);
        if (v && json_has_nul_escape(v, vlen)) {
            bad = "a string of the value holds a NUL character (\\u0000), which PostgreSQL "
                  "text cannot hold";
        }
    }
    const char *src_topic = "";
    size_t src_len = 0;
    if (!bad && coverage_by_topic(s, t) &&
        !(src_topic = source_topic(s, t, rec, root, &src_len, &bad)))
        bad_col = t->cols[t->cov_col].name;
    for (size_t c = 0; c < t->ncols && !bad; c++) {
        bad = put_field(s, &b->lines, &t->cols[c], rec, root, why, sizeof why);
        if (bad) bad_col = t->cols[c].name;
        buf_putc(&b->lines, '\t');
    }
    if (bad) {
        /* Stored differently from what the record says: refuse it rather than change it. */
        b->lines.len = r->line_off;
        char reason[600];
        if (bad_col)
            snprintf(reason, sizeof reason, "pg-sink: column %.100s of %.100s: %.350s", bad_col,
                     t->table, bad);
        else
            snprintf(reason, sizeof reason, "pg-sink: %.350s", bad);
        utf8_clip(reason);
        s->api->reject(s->ctx, rec, reason);
        s->api->count(s->ctx, "rows_rejected", 1);
        return SL_OK;
    }
    buf_printf(&b->lines, "%lld\n", (long long)s->seq++);
    r->line_len = b->lines.len - r->line_off;
    save_record(s, b, r, rec);
    r->okey_off = r->stopic_off = SIZE_MAX;
    if (src_len) { /* its position is keyed by "<spec topic>|<source topic>" (README) */
        r->okey_off = b->saved.len;
        buf_puts(&b->saved, t->topic);
        buf_putc(&b->saved, '|');
        r->stopic_off = b->saved.len;
        buf_put(&b->saved, src_topic, src_len);
        buf_putc(&b->saved, '\0');
    }
    if (b->lines.oom || b->saved.oom) return SL_ENOMEM;
    r->ack = s->api->hold(s->ctx, rec);
    if (b->nrows++ == 0) b->first_ms = mono_ms();
    return SL_OK;
}
