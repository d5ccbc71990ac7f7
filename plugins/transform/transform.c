/*
 * transform — Kafka Connect's single message transforms, in YAML: an ordered list of operations
 * applied to each record's parsed JSON through the host API (set, rename, drop, keep, cast,
 * timestamp, key, topic, filter, mask, flatten; plugins/transform/README.md).
 *
 * This file reads the `ops` list (a YAML subtree the host hands over as JSON text) at init and
 * checks every operation, compiling expressions with the shared expression library
 * (plugins/common/sl_expr.h), so nothing is parsed per record; transform_ops.c applies them.
 * A record an operation cannot handle is dead-lettered with the op and the field in the reason.
 */
#include "transform.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {"set", "rename", "drop", "keep", "cast", "timestamp",
                                       "key", "topic", "filter", "mask", "flatten", NULL};

typedef struct cfgctx {
    char *err;
    size_t errlen;
    int index;
    const char *op;
} cfgctx;

static int bad(cfgctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int bad(cfgctx *c, const char *fmt, ...)
{
    int k = snprintf(c->err, c->errlen, "ops[%d]%s%s: ", c->index, c->op ? " " : "", c->op ? c->op : "");
    if (k < 0 || (size_t)k >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *jtype(const cJSON *j)
{
    return cJSON_IsString(j) ? "a string" : cJSON_IsNumber(j) ? "a number" : cJSON_IsBool(j) ? "a boolean"
         : cJSON_IsNull(j) ? "null" : cJSON_IsArray(j) ? "a list" : "a map";
}

/* Refuses keys of `params` not in the '|'-separated `allowed`. */
static int only_keys(cfgctx *c, const cJSON *params, const char *allowed)
{
    for (const cJSON *k = params->child; k; k = k->next) {
        const char *a = allowed;
        size_t n = strlen(k->string);
        int ok = 0;
        while (*a && !ok) {
            const char *e = strchr(a, '|');
            size_t len = e ? (size_t)(e - a) : strlen(a);
            ok = len == n && !memcmp(a, k->string, n);
            a += len + (e ? 1 : 0);
        }
        if (!ok) return bad(c, "unknown key '%s' (%s takes: %s)", k->string, c->op, allowed);
    }
    return 0;
}

/* A string parameter; *out stays NULL when absent and not required. */
static int get_str(cfgctx *c, const cJSON *params, const char *key, int req, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!v) return req ? bad(c, "'%s' is required", key) : 0;
    if (cJSON_IsNumber(v) || cJSON_IsBool(v)) { /* `separator: 1` and the like: YAML typed it */
        char *p = cJSON_PrintUnformatted(v);
        *out = p ? strdup(p) : NULL;
        cJSON_free(p); /* cJSON's allocator: the host may point it at a task arena */
        return 0;
    }
    if (!cJSON_IsString(v)) return bad(c, "'%s' must be a string, not %s", key, jtype(v));
    if (req && !*v->valuestring) return bad(c, "'%s' must not be empty", key);
    *out = strdup(v->valuestring);
    return 0;
}

static int get_bool(cfgctx *c, const cJSON *params, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return bad(c, "'%s' must be true or false, not %s", key, jtype(v));
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A field name or a list of them. */
static int get_names(cfgctx *c, const cJSON *v, const char *what, char ***out, size_t *n)
{
    if (cJSON_IsString(v)) {
        *out = calloc(1, sizeof **out);
        (*out)[0] = strdup(v->valuestring);
        *n = 1;
    } else if (cJSON_IsArray(v)) {
        size_t k = (size_t)cJSON_GetArraySize(v);
        *out = calloc(k ? k : 1, sizeof **out);
        *n = 0;
        for (const cJSON *i = v->child; i; i = i->next) {
            if (!cJSON_IsString(i)) return bad(c, "%s: every item must be a field name, not %s", what, jtype(i));
            (*out)[(*n)++] = strdup(i->valuestring);
        }
    } else {
        return bad(c, "%s must be a field name or a list of them, not %s", what, jtype(v));
    }
    if (!*n) return bad(c, "%s: the list is empty", what);
    for (size_t i = 0; i < *n; i++)
        if (!*(*out)[i]) return bad(c, "%s: a field name is empty", what);
    return 0;
}

static int compile(cfgctx *c, const char *key, const char *text, sl_expr_static want, sl_expr **out)
{
    sl_expr_error e;
    sl_expr_opts o = {.want = want};
    *out = sl_expr_compile(text, &o, &e);
    if (!*out) return bad(c, "%s: %d:%d: %s (in \"%s\")", key, e.line, e.col, e.msg, text);
    return 0;
}

static int parse_format(cfgctx *c, const cJSON *params, top *o)
{
    char *f = NULL;
    if (get_str(c, params, "format", 0, &f)) return -1;
    o->fmt = F_AUTO;
    if (!f || !strcmp(f, "auto")) o->fmt = F_AUTO;
    else if (!strcmp(f, "rfc3339") || !strcmp(f, "iso8601")) o->fmt = F_RFC3339;
    else if (!strcmp(f, "unix_ms")) o->fmt = F_UNIX_MS;
    else if (!strcmp(f, "unix_s")) o->fmt = F_UNIX_S;
    else if (strchr(f, '%')) {
        o->fmt = F_PATTERN;
        o->pattern = f;
        return 0;
    } else {
        int r = bad(c, "format '%s' is not auto, rfc3339, unix_ms, unix_s or a strptime pattern such as "
                       "\"%%Y-%%m-%%d %%H:%%M:%%S\"", f);
        free(f);
        return r;
    }
    free(f);
    return 0;
}

static int parse_set(cfgctx *c, const cJSON *p, top *o)
{
    if (only_keys(c, p, "field|value|expr|required") || get_str(c, p, "field", 1, &o->field) ||
        get_bool(c, p, "required", &o->required))
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "value");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "expr");
    if (!!v == !!x) return bad(c, "give exactly one of 'value' (a constant) and 'expr' (an expression)");
    if (x) {
        if (!cJSON_IsString(x)) return bad(c, "'expr' must be a string, not %s", jtype(x));
        return compile(c, "expr", x->valuestring, SL_EXPR_T_ANY, &o->expr);
    }
    o->has_value = 1;
    if (cJSON_IsString(v)) {
        o->value_str = strdup(v->valuestring);
        o->value = (sl_expr_value){.type = SL_EXPR_STRING, .str = o->value_str};
    } else if (cJSON_IsNumber(v)) {
        o->value = (sl_expr_value){.type = SL_EXPR_NUMBER, .num = v->valuedouble};
    } else if (cJSON_IsBool(v)) {
        o->value = (sl_expr_value){.type = SL_EXPR_BOOL, .b = cJSON_IsTrue(v)};
    } else if (cJSON_IsNull(v)) {
        o->value = (sl_expr_value){.type = SL_EXPR_NULL};
    } else {
        return bad(c, "'value' must be a string, number, boolean or null, not %s", jtype(v));
    }
    return 0;
}

static int parse_op(cfgctx *c, const cJSON *item, top *o)
{
    const cJSON *p = NULL;
    const char *name;
    if (cJSON_IsString(item)) { /* "- flatten" */
        name = item->valuestring;
    } else if (cJSON_IsObject(item) && item->child && !item->child->next) {
        name = item->child->string;
        p = item->child;
    } else {
        return bad(c, "an operation is a map with one key, the operation's name (one of set, rename, drop, keep, "
                      "cast, timestamp, key, topic, filter, mask, flatten), not %s",
                   cJSON_IsObject(item) && item->child ? "a map with several keys" : jtype(item));
    }
    int k = 0;
    while (op_names[k] && strcmp(op_names[k], name)) k++;
    if (!op_names[k])
        return bad(c, "unknown operation '%s' (one of set, rename, drop, keep, cast, timestamp, key, topic, filter, "
                      "mask, flatten)", name);
    c->op = op_names[k];
    o->kind = (op_kind)k;
    if (!p && o->kind != T_FLATTEN) return bad(c, "needs parameters (see plugins/transform/README.md)");
    int is_map = p && cJSON_IsObject(p);
    o->required = 1;
    switch (o->kind) {
    case T_SET:
        o->required = 0;
        if (!is_map) return bad(c, "needs a map: {field: ..., value: ...} or {field: ..., expr: ...}");
        return parse_set(c, p, o);
    case T_RENAME:
        if (!is_map) return bad(c, "needs a map: {from: old, to: new}");
        if (only_keys(c, p, "from|to|required") || get_str(c, p, "from", 1, &o->field) ||
            get_str(c, p, "to", 1, &o->to) || get_bool(c, p, "required", &o->required))
            return -1;
        return 0;
    case T_DROP:
    case T_KEEP:
        if (is_map) {
            if (only_keys(c, p, "fields")) return -1;
            p = cJSON_GetObjectItemCaseSensitive(p, "fields");
            if (!p) return bad(c, "'fields' is required");
        }
        return get_names(c, p, "fields", &o->fields, &o->nfields);
    case T_CAST: {
        if (!is_map) return bad(c, "needs a map: {field: ..., to: string|int|float|bool|timestamp}");
        char *to = NULL;
        if (only_keys(c, p, "field|to|format|required") || get_str(c, p, "field", 1, &o->field) ||
            get_bool(c, p, "required", &o->required) || get_str(c, p, "to", 1, &to))
            return -1;
        static const char *const casts[] = {"string", "int", "float", "bool", "timestamp"};
        int i = 0;
        while (i < 5 && strcmp(casts[i], to)) i++;
        free(to);
        if (i == 5) return bad(c, "'to' must be one of string, int, float, bool, timestamp");
        o->cast = (cast_to)i;
        if (o->cast != C_TIMESTAMP && cJSON_GetObjectItemCaseSensitive(p, "format"))
            return bad(c, "'format' applies only to 'to: timestamp'");
        return parse_format(c, p, o);
    }
    case T_TIMESTAMP: {
        char *f = NULL;
        if (cJSON_IsString(p)) {
            f = strdup(p->valuestring);
        } else if (is_map) {
            if (only_keys(c, p, "field|format|required") || get_str(c, p, "field", 1, &f) ||
                get_bool(c, p, "required", &o->required) || parse_format(c, p, o))
                return free(f), -1;
        } else {
            return bad(c, "needs a field name or a map {field: ..., format: ...}");
        }
        o->paths = calloc(1, sizeof *o->paths);
        o->npaths = 1;
        int r = compile(c, "field", f, SL_EXPR_T_ANY, &o->paths[0]);
        if (!r && !sl_expr_is_path(o->paths[0], NULL)) r = bad(c, "field: '%s' is not a field reference", f);
        free(f);
        return r;
    }
    case T_KEY: {
        const cJSON *fl = p;
        if (is_map) {
            if (only_keys(c, p, "fields|separator|required") || get_bool(c, p, "required", &o->required) ||
                get_str(c, p, "separator", 0, &o->sep))
                return -1;
            fl = cJSON_GetObjectItemCaseSensitive(p, "fields");
            if (!fl) return bad(c, "'fields' is required");
        }
        char **names = NULL;
        size_t n = 0;
        int r = get_names(c, fl, "fields", &names, &n);
        if (!r) {
            o->paths = calloc(n, sizeof *o->paths);
            o->npaths = n;
            for (size_t i = 0; i < n && !r; i++) {
                r = compile(c, "fields", names[i], SL_EXPR_T_ANY, &o->paths[i]);
                if (!r && !sl_expr_is_path(o->paths[i], NULL))
                    r = bad(c, "fields: '%s' is not a field reference", names[i]);
            }
        }
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        if (!o->sep) o->sep = strdup("|");
        return r;
    }
    case T_TOPIC: {
        if (cJSON_IsString(p)) return compile(c, "expr", p->valuestring, SL_EXPR_T_ANY, &o->expr);
        if (!is_map) return bad(c, "needs an expression or a map {expr: ..., prefix: ..., suffix: ...}");
        char *x = NULL;
        if (only_keys(c, p, "expr|prefix|suffix|required") || get_str(c, p, "expr", 1, &x) ||
            get_str(c, p, "prefix", 0, &o->prefix) || get_str(c, p, "suffix", 0, &o->suffix) ||
            get_bool(c, p, "required", &o->required))
            return free(x), -1;
        int r = 0;
        for (const char *s = o->prefix ? o->prefix : ""; *s && !r; s++)
            if (!(isalnum((unsigned char)*s) || strchr("._-", *s)))
                r = bad(c, "'prefix' may hold only letters, digits, '.', '_', '-'");
        for (const char *s = o->suffix ? o->suffix : ""; *s && !r; s++)
            if (!(isalnum((unsigned char)*s) || strchr("._-", *s)))
                r = bad(c, "'suffix' may hold only letters, digits, '.', '_', '-'");
        if (!r) r = compile(c, "expr", x, SL_EXPR_T_ANY, &o->expr);
        if (!r && (sl_expr_result_type(o->expr) == SL_EXPR_T_BOOL || sl_expr_result_type(o->expr) == SL_EXPR_T_NULL))
            r = bad(c, "expr: gives a %s, not a topic name",
                    sl_expr_result_type(o->expr) == SL_EXPR_T_BOOL ? "bool" : "null");
        free(x);
        return r;
    }
    case T_FILTER: {
        if (cJSON_IsString(p)) return compile(c, "where", p->valuestring, SL_EXPR_T_BOOL, &o->expr);
        if (!is_map) return bad(c, "needs a condition or a map {where: ..., else: drop|dead_letter}");
        char *x = NULL, *otherwise = NULL;
        if (only_keys(c, p, "where|else") || get_str(c, p, "where", 1, &x) || get_str(c, p, "else", 0, &otherwise))
            return free(x), -1;
        int r = 0;
        if (otherwise && strcmp(otherwise, "drop") && strcmp(otherwise, "dead_letter"))
            r = bad(c, "'else' must be drop or dead_letter, not '%s'", otherwise);
        o->dead_letter = otherwise && !strcmp(otherwise, "dead_letter");
        if (!r) r = compile(c, "where", x, SL_EXPR_T_BOOL, &o->expr);
        free(x);
        free(otherwise);
        return r;
    }
    case T_MASK: {
        if (!is_map) return bad(c, "needs a map {fields: ..., with: redact|hash}");
        char *with = NULL;
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(p, "fields");
        if (only_keys(c, p, "fields|with|replacement|salt") || get_str(c, p, "with", 0, &with) ||
            get_str(c, p, "replacement", 0, &o->replacement) || get_str(c, p, "salt", 0, &o->salt))
            return free(with), -1;
        int r = fl ? get_names(c, fl, "fields", &o->fields, &o->nfields) : bad(c, "'fields' is required");
        if (!r && with && strcmp(with, "redact") && strcmp(with, "hash"))
            r = bad(c, "'with' must be redact or hash, not '%s'", with);
        o->hash = with && !strcmp(with, "hash");
        if (!r && o->hash && o->replacement) r = bad(c, "'replacement' applies only to 'with: redact'");
        if (!r && !o->hash && o->salt) r = bad(c, "'salt' applies only to 'with: hash'");
        if (!o->hash && !o->replacement) o->replacement = strdup("***");
        free(with);
        return r;
    }
    case T_FLATTEN:
        if (p && !cJSON_IsNull(p) && !cJSON_IsTrue(p)) {
            if (!is_map) return bad(c, "takes nothing or a map {separator: ..., fields: ...}");
            const cJSON *fl = cJSON_GetObjectItemCaseSensitive(p, "fields");
            if (only_keys(c, p, "separator|fields") || get_str(c, p, "separator", 0, &o->sep) ||
                (fl && get_names(c, fl, "fields", &o->fields, &o->nfields)))
                return -1;
        }
        if (!o->sep) o->sep = strdup(".");
        return 0;
    }
    return bad(c, "unknown operation");
}

static void free_op(top *o)
{
    free(o->field);
    free(o->to);
    for (size_t i = 0; i < o->nfields; i++) free(o->fields[i]);
    free(o->fields);
    for (size_t i = 0; i < o->npaths; i++) sl_expr_free(o->paths[i]);
    free(o->paths);
    sl_expr_free(o->expr);
    free(o->value_str);
    free(o->pattern);
    free(o->replacement);
    free(o->salt);
    free(o->sep);
    free(o->prefix);
    free(o->suffix);
}

static void t_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    transform *t = self;
    if (!t) return;
    for (size_t i = 0; i < t->nops; i++) free_op(&t->ops[i]);
    free(t->ops);
    free(t->buf);
    free(t);
}

static sl_err t_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const tconf *conf = config;
    if (api->struct_size < offsetof(sl_api, set_key) + sizeof api->set_key) {
        api->log(ctx, SL_LOG_ERROR, "transform needs a host with stage ABI 1.3 or newer");
        return SL_ECONFIG;
    }
    cJSON *ops = cJSON_Parse(conf->ops ? conf->ops : "null");
    if (!ops || !cJSON_IsArray(ops) || !cJSON_GetArraySize(ops)) {
        api->log(ctx, SL_LOG_ERROR, "'ops' must be a non-empty list of operations (see plugins/transform/README.md)");
        cJSON_Delete(ops);
        return SL_ECONFIG;
    }
    transform *t = calloc(1, sizeof *t);
    t->api = api;
    t->nops = (size_t)cJSON_GetArraySize(ops);
    t->ops = calloc(t->nops, sizeof *t->ops);
    char err[1024];
    cfgctx c = {.err = err, .errlen = sizeof err};
    size_t i = 0;
    for (const cJSON *it = ops->child; it; it = it->next, i++) {
        c.index = (int)i;
        c.op = NULL;
        t->ops[i].index = (int)i;
        if (parse_op(&c, it, &t->ops[i])) {
            api->log(ctx, SL_LOG_ERROR, "%s", err);
            cJSON_Delete(ops);
            t_close(t, ctx);
            return SL_ECONFIG;
        }
    }
    cJSON_Delete(ops);
    *self = t;
    return SL_OK;
}

static sl_err t_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    transform *t = self;
    uint64_t filtered = 0, dead = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        int r = tf_apply(t, ctx, rec);
        if (r == 0) {
            if (t->api->emit(ctx, rec) != SL_OK) return SL_ENOMEM;
        } else if (r > 0) {
            filtered++;
        } else {
            dead++;
        }
    }
    if (filtered) t->api->count(ctx, "filtered", filtered);
    if (dead) t->api->count(ctx, "dead_lettered", dead);
    return SL_OK;
}

static const sl_config_entry t_config[] = {
    {.key = "ops", .type = SL_T_JSON, .flags = SL_CFG_REQUIRED, .offset = offsetof(tconf, ops),
     .description = "ordered list of operations: set, rename, drop, keep, cast, timestamp, key, topic, filter, mask, "
                    "flatten (see the README)"},
    {0},
};

static const sl_stage_desc t_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_JSON_ONLY,
    .name = "transform",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "ordered field operations on JSON records (Kafka Connect SMTs in YAML)",
    .config = t_config,
    .config_size = sizeof(tconf),
    .init = t_init,
    .process = t_process,
    .close = t_close,
};

SL_STAGE_DEFINE(t_desc)
