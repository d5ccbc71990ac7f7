/* transform_ops.c — applies the transform stage's operations to one record (see transform.c).
 *
 * Each op reads the record's parsed JSON through the host accessors and changes it through
 * api->json_set_* / json_remove / json_set_json / set_key / set_topic, so the value is parsed once
 * per chain and re-serialised at most once. A failure dead-letters the record as it entered the
 * stage: its original bytes are captured (api->value, no copy unless an earlier stage changed the
 * JSON) before the first change. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/sl_sha256.h"
#include "../common/sl_time.h"
#include "transform.h"

static const char *const names[] = {"set", "rename", "drop", "keep", "cast", "timestamp",
                                    "key", "topic", "filter", "mask", "flatten"};

typedef struct run {
    transform *t;
    const sl_api *api;
    sl_ctx *ctx;
    const sl_record *rec;
    sl_json *root;
    int changed;
    sl_record orig; /* the record as it entered, once `changed` */
    char reason[600];
} run;

/* Captures the record as it entered before the first change, for a dead letter. */
static void before_change(run *r)
{
    if (r->changed) return;
    r->changed = 1;
    r->orig = *r->rec;
    r->orig.value = r->api->value(r->ctx, r->rec, &r->orig.value_len);
}

static int fail(run *r, const top *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(run *r, const top *o, const char *fmt, ...)
{
    int k = snprintf(r->reason, sizeof r->reason, "ops[%d] %s: ", o->index, names[o->kind]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason + k, sizeof r->reason - (size_t)k, fmt, ap);
    va_end(ap);
    r->api->reject(r->ctx, r->changed ? &r->orig : r->rec, r->reason);
    return -1;
}

/* Scratch text of t->buf: grows as needed; NULL when out of memory. */
static char *scratch(transform *t, size_t need)
{
    if (need > t->bufcap) {
        size_t cap = t->bufcap ? t->bufcap : 256;
        while (cap < need) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) return NULL;
        t->buf = b;
        t->bufcap = cap;
    }
    return t->buf;
}

static sl_err set_value(run *r, const char *field, const sl_expr_value *v)
{
    const sl_api *a = r->api;
    before_change(r);
    switch (v->type) {
    case SL_EXPR_STRING: return a->json_set_string(r->ctx, r->rec, field, v->str);
    case SL_EXPR_NUMBER: return a->json_set_number(r->ctx, r->rec, field, v->num);
    case SL_EXPR_BOOL: return a->json_set_bool(r->ctx, r->rec, field, v->b);
    case SL_EXPR_NULL: return a->json_set_null(r->ctx, r->rec, field);
    case SL_EXPR_OTHER: return a->json_set_json(r->ctx, r->rec, field, v->node);
    default: return SL_EINVAL;
    }
}

/* ---- time ---------------------------------------------------------------------------------- */

static int strict_number(const char *s, double *d)
{
    char *end;
    if (!*s || isspace((unsigned char)*s)) return 0;
    *d = strtod(s, &end);
    return !*end && isfinite(*d);
}

const char *tf_parse_time(const sl_api *api, const sl_json *n, ts_fmt fmt, const char *pattern, int64_t *ms)
{
    sl_json_type ty = api->json_type(n);
    double d;
    if (ty == SL_JSON_STRING) {
        const char *s = api->json_string(n);
        if (fmt == F_AUTO || fmt == F_RFC3339) {
            switch (sl_ts_parse(s, ms)) {
            case SL_TS_OK: return NULL;
            case SL_TS_NO_ZONE: return "is not an RFC 3339 timestamp: no time zone (Z or +hh:mm)";
            case SL_TS_BEFORE_1970: return "is before 1970";
            case SL_TS_AFTER_9999: return "is after 9999";
            default: return "is not an RFC 3339 timestamp";
            }
        }
        if (fmt == F_PATTERN) {
            struct tm tm;
            memset(&tm, 0, sizeof tm);
            const char *end = strptime(s, pattern, &tm);
            if (!end || *end) return "does not match the format";
            int64_t sec = (int64_t)timegm(&tm);
            if (sec < 0 || sec >= SL_TS_MAX_MS / 1000) return "is outside 1970..9999";
            *ms = sec * 1000;
            return NULL;
        }
        if (!strict_number(s, &d)) return "is not a number";
    } else if (ty == SL_JSON_NUMBER) {
        if (fmt == F_RFC3339 || fmt == F_PATTERN) return "is a number, but the format reads strings";
        d = api->json_number(n);
    } else {
        return ty == SL_JSON_NULL ? "is null" : "is not a string or a number";
    }
    if (fmt == F_UNIX_S) d *= 1000;
    if (!(d >= 0 && d < (double)SL_TS_MAX_MS)) return "is outside 1970..9999";
    *ms = (int64_t)d;
    return NULL;
}

/* ---- the operations -------------------------------------------------------------------------- */

static int op_cast(run *r, const top *o)
{
    const sl_api *a = r->api;
    sl_json *n = a->json_get(r->root, o->field);
    if (!n) return o->required ? fail(r, o, "field '%s' is missing", o->field) : 0;
    sl_json_type ty = a->json_type(n);
    if (ty == SL_JSON_NULL) return 0; /* null stays null, whatever the type */
    if (ty == SL_JSON_ARRAY || ty == SL_JSON_OBJECT)
        return fail(r, o, "field '%s' is %s, not a scalar", o->field, ty == SL_JSON_ARRAY ? "an array" : "an object");
    const char *s = ty == SL_JSON_STRING ? a->json_string(n) : NULL;
    double d = ty == SL_JSON_STRING ? NAN : a->json_number(n);
    sl_err e = SL_OK;
    switch (o->cast) {
    case C_STRING: {
        if (s) return 0;
        char buf[64];
        sl_expr_value v = {.type = ty == SL_JSON_BOOL ? SL_EXPR_BOOL : SL_EXPR_NUMBER, .b = d != 0, .num = d};
        sl_expr_value_format(&v, buf, sizeof buf);
        before_change(r);
        e = a->json_set_string(r->ctx, r->rec, o->field, buf);
        break;
    }
    case C_INT:
    case C_FLOAT:
        if (s && !strict_number(s, &d)) return fail(r, o, "field '%s': \"%.80s\" is not a number", o->field, s);
        if (o->cast == C_INT) {
            d = trunc(d);
            if (fabs(d) > 9007199254740992.0)
                return fail(r, o, "field '%s': %g is beyond the integers a JSON number holds exactly", o->field, d);
        }
        if (!s && ty == SL_JSON_NUMBER && d == a->json_number(n)) return 0;
        before_change(r);
        e = a->json_set_number(r->ctx, r->rec, o->field, d);
        break;
    case C_BOOL: {
        int b;
        if (ty == SL_JSON_BOOL) return 0;
        if (!s) {
            b = d != 0;
        } else if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
            b = 1;
        } else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
            b = 0;
        } else {
            return fail(r, o, "field '%s': \"%.80s\" is not a boolean (true/false, 1/0, yes/no)", o->field, s);
        }
        before_change(r);
        e = a->json_set_bool(r->ctx, r->rec, o->field, b);
        break;
    }
    case C_TIMESTAMP: {
        int64_t ms;
        const char *why = tf_parse_time(a, n, o->fmt, o->pattern, &ms);
        if (why) {
            if (s) return fail(r, o, "field '%s': \"%.80s\" %s", o->field, s, why);
            return fail(r, o, "field '%s' %s", o->field, why);
        }
        before_change(r);
        e = a->json_set_number(r->ctx, r->rec, o->field, (double)ms);
        break;
    }
    }
    return e == SL_OK ? 0 : fail(r, o, "field '%s': the host refused the change (%s)", o->field, sl_strerror(e));
}

static int op_key(run *r, const top *o)
{
    transform *t = r->t;
    size_t len = 0, seplen = strlen(o->sep);
    for (size_t i = 0; i < o->npaths; i++) {
        sl_expr_value v = sl_expr_eval(o->paths[i], r->api, r->root, NULL);
        const char *p = NULL;
        sl_expr_is_path(o->paths[i], &p);
        char num[64];
        const char *txt = "";
        if (v.type == SL_EXPR_STRING) {
            txt = v.str;
        } else if (v.type == SL_EXPR_MISSING || v.type == SL_EXPR_OTHER) {
            if (o->required)
                return fail(r, o, "field '%s' is %s", p, v.type == SL_EXPR_MISSING ? "missing" : "an array or object");
        } else {
            sl_expr_value_format(&v, num, sizeof num);
            txt = num;
        }
        size_t n = strlen(txt);
        char *b = scratch(t, len + n + seplen + 1);
        if (!b) return fail(r, o, "out of memory");
        if (i) {
            memcpy(b + len, o->sep, seplen);
            len += seplen;
        }
        memcpy(b + len, txt, n);
        len += n;
    }
    before_change(r);
    sl_err e = r->api->set_key(r->ctx, r->rec, t->buf, len);
    return e == SL_OK ? 0 : fail(r, o, "the host refused the key (%s)", sl_strerror(e));
}

static int valid_topic(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!(isalnum((unsigned char)s[n]) || s[n] == '.' || s[n] == '_' || s[n] == '-')) return 0;
    return n > 0 && n <= 249 && strcmp(s, ".") && strcmp(s, "..");
}

static int op_topic(run *r, const top *o)
{
    sl_expr_value v = sl_expr_eval(o->expr, r->api, r->root, NULL);
    char val[256];
    if (v.type == SL_EXPR_MISSING || v.type == SL_EXPR_OTHER || v.type == SL_EXPR_NULL) {
        if (!o->required) return 0;
        return fail(r, o, "\"%s\" gave %s, not a topic name", sl_expr_text(o->expr), sl_expr_type_name(v.type));
    }
    sl_expr_value_format(&v, val, sizeof val);
    char *b = scratch(r->t, strlen(val) + (o->prefix ? strlen(o->prefix) : 0) + (o->suffix ? strlen(o->suffix) : 0) + 1);
    if (!b) return fail(r, o, "out of memory");
    sprintf(b, "%s%s%s", o->prefix ? o->prefix : "", val, o->suffix ? o->suffix : "");
    if (!valid_topic(b))
        return fail(r, o, "\"%.100s\" is not a valid topic name (1..249 of letters, digits, '.', '_', '-')", b);
    before_change(r);
    sl_err e = r->api->set_topic(r->ctx, r->rec, b);
    return e == SL_OK ? 0 : fail(r, o, "the host refused the topic (%s)", sl_strerror(e));
}

static int op_mask(run *r, const top *o)
{
    const sl_api *a = r->api;
    for (size_t i = 0; i < o->nfields; i++) {
        sl_json *n = a->json_get(r->root, o->fields[i]);
        if (!n || a->json_type(n) == SL_JSON_NULL) continue; /* nothing to hide */
        sl_err e;
        before_change(r);
        if (!o->hash) {
            e = a->json_set_string(r->ctx, r->rec, o->fields[i], o->replacement);
        } else {
            sl_expr_value v = {.type = SL_EXPR_MISSING};
            switch (a->json_type(n)) {
            case SL_JSON_STRING: v = (sl_expr_value){.type = SL_EXPR_STRING, .str = a->json_string(n)}; break;
            case SL_JSON_NUMBER: v = (sl_expr_value){.type = SL_EXPR_NUMBER, .num = a->json_number(n)}; break;
            case SL_JSON_BOOL: v = (sl_expr_value){.type = SL_EXPR_BOOL, .b = a->json_number(n) != 0}; break;
            default: return fail(r, o, "field '%s' is an array or object: only scalars can be hashed", o->fields[i]);
            }
            char num[64], hex[65];
            const char *txt = v.str;
            if (v.type != SL_EXPR_STRING) {
                sl_expr_value_format(&v, num, sizeof num);
                txt = num;
            }
            sl_sha256 c;
            sl_sha256_init(&c);
            if (o->salt) sl_sha256_update(&c, o->salt, strlen(o->salt));
            sl_sha256_update(&c, txt, strlen(txt));
            sl_sha256_hex(&c, hex);
            e = a->json_set_string(r->ctx, r->rec, o->fields[i], hex);
        }
        if (e != SL_OK) return fail(r, o, "field '%s': the host refused the change (%s)", o->fields[i], sl_strerror(e));
    }
    return 0;
}

/* Copies the top-level member names into t->buf (NUL-separated) so members can be removed while
 * the list is walked; returns the count, or (size_t)-1 when out of memory. */
static size_t member_names(run *r, size_t *bytes)
{
    const sl_api *a = r->api;
    size_t len = 0, n = 0;
    for (sl_json *m = a->json_at(r->root, 0); m; m = a->json_next(m)) {
        const char *k = a->json_key(m);
        size_t kl = strlen(k) + 1;
        if (!scratch(r->t, len + kl)) return (size_t)-1;
        memcpy(r->t->buf + len, k, kl);
        len += kl;
        n++;
    }
    *bytes = len;
    return n;
}

static int listed(const top *o, const char *k)
{
    for (size_t i = 0; i < o->nfields; i++)
        if (!strcmp(o->fields[i], k)) return 1;
    return 0;
}

static int op_keep(run *r, const top *o)
{
    const sl_api *a = r->api;
    /* The next member is taken before this one is removed (its key is read before it is freed). */
    for (sl_json *m = a->json_at(r->root, 0), *next; m; m = next) {
        next = a->json_next(m);
        const char *k = a->json_key(m);
        if (listed(o, k)) continue;
        before_change(r);
        a->json_remove(r->ctx, r->rec, k);
    }
    return 0;
}

#define FLATTEN_DEPTH 32

/* Sets prefix+sep+key for every leaf under `n`; the name is built in t->buf from `len`. */
static int flatten_into(run *r, const top *o, const sl_json *n, size_t len, int depth)
{
    const sl_api *a = r->api;
    if (a->json_type(n) != SL_JSON_OBJECT || !a->json_size(n) || depth >= FLATTEN_DEPTH) {
        if (a->json_get(r->root, r->t->buf))
            return fail(r, o, "'%.200s' already exists: flattening would overwrite it", r->t->buf);
        before_change(r);
        sl_err e = a->json_set_json(r->ctx, r->rec, r->t->buf, n);
        return e == SL_OK ? 0 : fail(r, o, "'%.200s': the host refused the change (%s)", r->t->buf, sl_strerror(e));
    }
    size_t seplen = strlen(o->sep);
    for (const sl_json *m = a->json_at(n, 0); m; m = a->json_next(m)) {
        const char *k = a->json_key(m);
        size_t kl = strlen(k);
        if (!scratch(r->t, len + seplen + kl + 1)) return fail(r, o, "out of memory");
        memcpy(r->t->buf + len, o->sep, seplen);
        memcpy(r->t->buf + len + seplen, k, kl + 1);
        if (flatten_into(r, o, m, len + seplen + kl, depth + 1)) return -1;
        r->t->buf[len] = 0;
    }
    return 0;
}

static int op_flatten(run *r, const top *o)
{
    const sl_api *a = r->api;
    size_t bytes, n = member_names(r, &bytes);
    if (n == (size_t)-1) return fail(r, o, "out of memory");
    /* The names move to a copy: flatten_into builds the new names in t->buf. */
    char *names = malloc(bytes ? bytes : 1);
    if (!names) return fail(r, o, "out of memory");
    memcpy(names, r->t->buf, bytes);
    int rc = 0;
    for (size_t off = 0; off < bytes && !rc; off += strlen(names + off) + 1) {
        const char *k = names + off;
        if (o->nfields && !listed(o, k)) continue;
        sl_json *m = a->json_get(r->root, k);
        if (a->json_type(m) != SL_JSON_OBJECT) continue;
        size_t kl = strlen(k);
        if (!scratch(r->t, kl + 1)) {
            rc = fail(r, o, "out of memory");
            break;
        }
        memcpy(r->t->buf, k, kl + 1);
        if (!a->json_size(m)) continue; /* {} stays as it is */
        rc = flatten_into(r, o, m, kl, 1);
        if (!rc) a->json_remove(r->ctx, r->rec, k);
    }
    free(names);
    return rc;
}

int tf_apply(transform *t, sl_ctx *ctx, const sl_record *rec)
{
    const sl_api *a = t->api;
    run r = {.t = t, .api = a, .ctx = ctx, .rec = rec};
    const char *why = NULL;
    r.root = a->json(ctx, rec, &why);
    if (!r.root || a->json_type(r.root) != SL_JSON_OBJECT) {
        if (!r.root)
            snprintf(r.reason, sizeof r.reason, "value is not JSON: %s", why ? why : "unknown reason");
        else
            snprintf(r.reason, sizeof r.reason, "value is not a JSON object");
        a->reject(ctx, rec, r.reason);
        return -1;
    }
    for (size_t i = 0; i < t->nops; i++) {
        const top *o = &t->ops[i];
        sl_err e = SL_OK;
        switch (o->kind) {
        case T_SET: {
            sl_expr_value v = o->has_value ? o->value : sl_expr_eval(o->expr, a, r.root, NULL);
            if (v.type == SL_EXPR_MISSING) {
                if (o->required)
                    return fail(&r, o, "\"%s\" gave no value (a field it reads is missing)", sl_expr_text(o->expr));
                break;
            }
            e = set_value(&r, o->field, &v);
            if (e != SL_OK) return fail(&r, o, "field '%s': the host refused the change (%s)", o->field, sl_strerror(e));
            break;
        }
        case T_RENAME: {
            sl_json *n = a->json_get(r.root, o->field);
            if (!n) {
                if (o->required) return fail(&r, o, "field '%s' is missing", o->field);
                break;
            }
            if (!strcmp(o->field, o->to)) break;
            before_change(&r);
            e = a->json_set_json(ctx, rec, o->to, n);
            if (e == SL_OK) e = a->json_remove(ctx, rec, o->field);
            if (e != SL_OK) return fail(&r, o, "field '%s': the host refused the change (%s)", o->field, sl_strerror(e));
            break;
        }
        case T_DROP:
            for (size_t k = 0; k < o->nfields; k++) {
                if (!a->json_get(r.root, o->fields[k])) continue;
                before_change(&r);
                a->json_remove(ctx, rec, o->fields[k]);
            }
            break;
        case T_KEEP:
            if (op_keep(&r, o)) return -1;
            break;
        case T_CAST:
            if (op_cast(&r, o)) return -1;
            break;
        case T_TIMESTAMP: {
            sl_expr_value v = sl_expr_eval(o->paths[0], a, r.root, NULL);
            const char *p = NULL;
            sl_expr_is_path(o->paths[0], &p);
            if (v.type == SL_EXPR_MISSING) {
                if (o->required) return fail(&r, o, "field '%s' is missing", p);
                break;
            }
            int64_t ms;
            why = tf_parse_time(a, v.node, o->fmt, o->pattern, &ms);
            if (why && v.type == SL_EXPR_STRING) return fail(&r, o, "field '%s': \"%.80s\" %s", p, v.str, why);
            if (why) return fail(&r, o, "field '%s' %s", p, why);
            before_change(&r);
            sl_err e = r.api->set_timestamp(r.ctx, rec, ms);
            if (e != SL_OK) return fail(&r, o, "cannot set the timestamp: %s", sl_strerror(e));
            break;
        }
        case T_KEY:
            if (op_key(&r, o)) return -1;
            break;
        case T_TOPIC:
            if (op_topic(&r, o)) return -1;
            break;
        case T_FILTER:
            if (sl_expr_eval_bool(o->expr, a, r.root, NULL)) break;
            if (o->dead_letter) return fail(&r, o, "condition is not true: %s", sl_expr_text(o->expr));
            return 1;
        case T_MASK:
            if (op_mask(&r, o)) return -1;
            break;
        case T_FLATTEN:
            if (op_flatten(&r, o)) return -1;
            break;
        }
    }
    return 0;
}
