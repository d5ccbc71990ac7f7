/* mockhost — see mockhost.h. Test code: clarity over speed, except on the record path the
 * benchmark uses (emit/forward, lazy JSON), which stays allocation-light. */
#include "mockhost.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int mh_last_init_err;
size_t mh_inputs_created, mh_inputs_finished;
int64_t mh_fake_now_ms = -1;
int mh_log_level = SL_LOG_WARN;

enum { ACK_INPUT = 1, ACK_GROUP = 2 };

struct mh_ack {
    int kind;
    long refs;
    bool finished, owner_alive;
    mh_ack **members;
    size_t n, cap;
};

typedef struct counter {
    char name[64];
    uint64_t v;
} counter;

struct mh_stage {
    const sl_stage_desc *desc;
    void *dl;
    void *self;
    void *config;
    char *strings[64]; /* strings and arrays we allocated for the config */
    size_t n_strings;
    counter counters[32];
    size_t n_counters;
    char name[64];
    char config_dir[512];
    /* during a callback */
    sl_record *const *batch;
    size_t batch_n, cursor;
    mh_list *emit_to, *dlq;
};

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "mockhost: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    return p;
}

/* ---- acks ---------------------------------------------------------------------------- */

static void ack_unref(mh_ack *a)
{
    if (!a || --a->refs > 0)
        return;
    if (a->kind == ACK_GROUP) {
        for (size_t i = 0; i < a->n; i++)
            ack_unref(a->members[i]);
        free(a->members);
        free(a);
        return;
    }
    a->finished = true;
    mh_inputs_finished++;
    if (!a->owner_alive)
        free(a);
}

static void ack_ref(mh_ack *a)
{
    if (a)
        a->refs++;
}

bool mh_input_finished(const mh_rec *r) { return ((mh_ack *)r->r.ack)->finished; }

/* ---- records and lists ---------------------------------------------------------------- */

mh_rec *mh_input(const char *value, size_t len, int32_t partition, int64_t offset)
{
    mh_rec *r = xmalloc(sizeof *r);
    r->value = xstrndup(value, len);
    r->r.value = r->value;
    r->r.value_len = len;
    r->r.partition = partition;
    r->r.offset = offset;
    r->r.timestamp_ms = 0;
    r->refs = 1;
    mh_ack *a = xmalloc(sizeof *a);
    a->kind = ACK_INPUT;
    a->refs = 1; /* the in-flight reference, dropped after the first stage */
    a->owner_alive = true;
    r->r.ack = (sl_ack *)a;
    mh_inputs_created++;
    return r;
}

static void rec_unref(mh_rec *r)
{
    if (--r->refs > 0)
        return;
    mh_ack *a = (mh_ack *)r->r.ack;
    if (a && a->kind == ACK_INPUT && a->owner_alive) {
        a->owner_alive = false;
        if (a->refs <= 0)
            free(a);
    }
    cJSON_Delete(r->root);
    free(r->value);
    free(r->key);
    free(r->topic);
    free(r);
}

void mh_rec_free(mh_rec *r) { rec_unref(r); }

static void list_push(mh_list *l, mh_rec *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            abort();
    }
    r->refs++;
    l->v[l->n++] = r;
}

/* Drop the list's references on records and (ack = true) on their ack tokens. */
static void list_clear(mh_list *l, bool ack)
{
    for (size_t i = 0; i < l->n; i++) {
        if (ack)
            ack_unref((mh_ack *)l->v[i]->r.ack);
        rec_unref(l->v[i]);
    }
    l->n = 0;
}

void mh_list_ack_clear(mh_list *l) { list_clear(l, true); }

void mh_list_free(mh_list *l)
{
    list_clear(l, true);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

static void ensure_parsed(mh_rec *r)
{
    if (r->parsed)
        return;
    r->parsed = true;
    const char *end = NULL, *stop = r->value + r->r.value_len;
    r->root = cJSON_ParseWithLengthOpts(r->value, r->r.value_len, &end, 0);
    while (r->root && end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (r->root && end != stop) { /* trailing bytes (or an embedded NUL) */
        cJSON_Delete(r->root);
        r->root = NULL;
    }
    if (!r->root)
        r->json_err = "syntax error";
}

const char *mh_value(mh_rec *r)
{
    if (r->dirty && r->root) {
        char *s = cJSON_PrintUnformatted(r->root);
        if (!s)
            abort();
        free(r->value);
        r->value = s;
        r->r.value = s;
        r->r.value_len = strlen(s);
        r->dirty = false;
    }
    return r->value;
}

/* Copy a record a stage built (or any record) into a new mh_rec. */
static mh_rec *rec_copy(const sl_record *src)
{
    mh_rec *r = xmalloc(sizeof *r);
    r->r = *src;
    r->value = xstrndup(src->value ? src->value : "", src->value ? src->value_len : 0);
    r->r.value = r->value;
    if (src->key) {
        r->key = xstrndup(src->key, src->key_len);
        r->r.key = r->key;
    }
    if (src->topic) {
        r->topic = xstrndup(src->topic, strlen(src->topic));
        r->r.topic = r->topic;
    }
    r->r.headers = NULL;
    r->r.n_headers = 0;
    return r;
}

/* ---- the API ----------------------------------------------------------------------------- */

#define ST(ctx) ((mh_stage *)(ctx))

static void api_log(sl_ctx *ctx, sl_log_level level, const char *fmt, ...)
{
    if ((int)level < mh_log_level)
        return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "level=%s stage=%s msg=\"", names[level & 3], ST(ctx)->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\"\n");
}

static void api_count(sl_ctx *ctx, const char *name, uint64_t n)
{
    mh_stage *st = ST(ctx);
    for (size_t i = 0; i < st->n_counters; i++)
        if (!strcmp(st->counters[i].name, name)) {
            st->counters[i].v += n;
            return;
        }
    if (st->n_counters < 32) {
        snprintf(st->counters[st->n_counters].name, 64, "%s", name);
        st->counters[st->n_counters++].v = n;
    }
}

uint64_t mh_counter(mh_stage *st, const char *name)
{
    for (size_t i = 0; i < st->n_counters; i++)
        if (!strcmp(st->counters[i].name, name))
            return st->counters[i].v;
    return 0;
}

static void api_observe(sl_ctx *ctx, const char *name, double v) { (void)ctx, (void)name, (void)v; }

/* Is `rec` one of the current batch's records? Stages usually emit in order: try the cursor. */
static bool in_batch(mh_stage *st, const sl_record *rec)
{
    for (size_t k = st->cursor; k < st->batch_n; k++)
        if (st->batch[k] == rec) {
            st->cursor = k + 1;
            return true;
        }
    for (size_t k = 0; k < st->cursor && k < st->batch_n; k++)
        if (st->batch[k] == rec)
            return true;
    return false;
}

static sl_err api_emit(sl_ctx *ctx, const sl_record *rec)
{
    mh_stage *st = ST(ctx);
    if (!st->emit_to)
        return SL_EINVAL;
    mh_rec *r;
    if (in_batch(st, rec)) {
        r = (mh_rec *)rec; /* forwarded as is, with its parsed JSON */
    } else {
        r = rec_copy(rec);
    }
    ack_ref((mh_ack *)rec->ack);
    list_push(st->emit_to, r);
    return SL_OK;
}

static sl_ack *api_hold(sl_ctx *ctx, const sl_record *rec)
{
    (void)ctx;
    ack_ref((mh_ack *)rec->ack);
    return rec->ack;
}

static void api_release(sl_ack *ack) { ack_unref((mh_ack *)ack); }

static void api_reject(sl_ctx *ctx, const sl_record *rec, const char *reason)
{
    mh_stage *st = ST(ctx);
    sl_record copy = *rec;
    if (in_batch(st, rec)) {
        size_t n;
        copy.value = mh_value((mh_rec *)rec);
        n = strlen(copy.value);
        copy.value_len = n;
    }
    mh_rec *r = rec_copy(&copy);
    r->r.ack = NULL; /* the dead-letter sink "has it" at once */
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    snprintf(r->stage, sizeof r->stage, "%s", st->name);
    api_count(ctx, "rejected", 1);
    if (st->dlq)
        list_push(st->dlq, r);
    else {
        r->refs = 1;
        rec_unref(r);
    }
}

static sl_ack *api_ack_group(sl_ctx *ctx)
{
    (void)ctx;
    mh_ack *a = xmalloc(sizeof *a);
    a->kind = ACK_GROUP;
    a->refs = 1;
    return (sl_ack *)a;
}

static void api_ack_group_add(sl_ack *group, sl_ack *member)
{
    mh_ack *g = (mh_ack *)group, *m = (mh_ack *)member;
    if (!g || !m)
        return;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->members = realloc(g->members, g->cap * sizeof *g->members);
        if (!g->members)
            abort();
    }
    m->refs++;
    g->members[g->n++] = m;
}

static int64_t clock_ms(clockid_t id)
{
    if (mh_fake_now_ms >= 0)
        return mh_fake_now_ms;
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static int64_t api_now_ms(sl_ctx *ctx) { (void)ctx; return clock_ms(CLOCK_REALTIME); }
static int64_t api_monotonic_ms(sl_ctx *ctx) { (void)ctx; return clock_ms(CLOCK_MONOTONIC); }

static sl_json *api_json(sl_ctx *ctx, const sl_record *rec, const char **err)
{
    mh_stage *st = ST(ctx);
    if (!in_batch(st, rec)) {
        if (err)
            *err = "not an input record";
        return NULL;
    }
    mh_rec *r = (mh_rec *)rec;
    ensure_parsed(r);
    if (!r->root && err)
        *err = r->json_err;
    return (sl_json *)r->root;
}

static sl_json *api_json_get(const sl_json *obj, const char *key)
{
    const cJSON *o = (const cJSON *)obj;
    if (!cJSON_IsObject(o))
        return NULL;
    return (sl_json *)cJSON_GetObjectItemCaseSensitive(o, key);
}

static sl_json_type api_json_type(const sl_json *n)
{
    const cJSON *j = (const cJSON *)n;
    if (!j)
        return SL_JSON_INVALID;
    switch (j->type & 0xFF) {
    case cJSON_NULL: return SL_JSON_NULL;
    case cJSON_True:
    case cJSON_False: return SL_JSON_BOOL;
    case cJSON_Number: return SL_JSON_NUMBER;
    case cJSON_String: return SL_JSON_STRING;
    case cJSON_Array: return SL_JSON_ARRAY;
    case cJSON_Object: return SL_JSON_OBJECT;
    default: return SL_JSON_INVALID;
    }
}

static const char *api_json_string(const sl_json *n)
{
    const cJSON *j = (const cJSON *)n;
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static double api_json_number(const sl_json *n)
{
    const cJSON *j = (const cJSON *)n;
    if (cJSON_IsNumber(j))
        return j->valuedouble;
    if (cJSON_IsBool(j))
        return cJSON_IsTrue(j) ? 1 : 0;
    return NAN;
}

static size_t api_json_size(const sl_json *n)
{
    const cJSON *j = (const cJSON *)n;
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return 0;
    return (size_t)cJSON_GetArraySize(j);
}

/* Sequential json_at calls are O(1) thanks to a one-entry cache. */
static sl_json *api_json_at(const sl_json *n, size_t i)
{
    static const cJSON *c_parent, *c_node;
    static size_t c_index;
    const cJSON *j = (const cJSON *)n;
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return NULL;
    const cJSON *it;
    size_t k;
    if (c_parent == j && c_node && c_index <= i) {
        it = c_node;
        k = c_index;
    } else {
        it = j->child;
        k = 0;
    }
    for (; it && k < i; k++)
        it = it->next;
    c_parent = j;
    c_node = it;
    c_index = k;
    return (sl_json *)it;
}

static const char *api_json_key(const sl_json *n) { return n ? ((const cJSON *)n)->string : NULL; }

static sl_err json_set(sl_ctx *ctx, const sl_record *rec, const char *key, cJSON *item)
{
    mh_stage *st = ST(ctx);
    if (!item)
        return SL_ENOMEM;
    if (!in_batch(st, rec)) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    mh_rec *r = (mh_rec *)rec;
    ensure_parsed(r);
    if (!cJSON_IsObject(r->root)) {
        cJSON_Delete(item);
        return SL_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(r->root, key))
        cJSON_ReplaceItemInObjectCaseSensitive(r->root, key, item);
    else
        cJSON_AddItemToObject(r->root, key, item);
    r->dirty = true;
    return SL_OK;
}

static sl_err api_json_set_string(sl_ctx *ctx, const sl_record *rec, const char *key, const char *v)
{
    return json_set(ctx, rec, key, cJSON_CreateString(v));
}
static sl_err api_json_set_number(sl_ctx *ctx, const sl_record *rec, const char *key, double v)
{
    return json_set(ctx, rec, key, cJSON_CreateNumber(v));
}
static sl_err api_json_set_null(sl_ctx *ctx, const sl_record *rec, const char *key)
{
    return json_set(ctx, rec, key, cJSON_CreateNull());
}

static const void *api_value(sl_ctx *ctx, const sl_record *rec, size_t *len)
{
    mh_stage *st = ST(ctx);
    if (!in_batch(st, rec)) {
        *len = rec->value_len;
        return rec->value;
    }
    mh_rec *r = (mh_rec *)rec;
    mh_value(r);
    *len = r->r.value_len;
    return r->value;
}

static sl_err api_set_topic(sl_ctx *ctx, const sl_record *rec, const char *topic)
{
    mh_stage *st = ST(ctx);
    if (!in_batch(st, rec))
        return SL_EINVAL;
    mh_rec *r = (mh_rec *)rec;
    free(r->topic);
    r->topic = xstrndup(topic, strlen(topic));
    r->r.topic = r->topic;
    return SL_OK;
}

static void api_parts_assigned(sl_ctx *c, sl_position *p, size_t n) { (void)c, (void)p, (void)n; }
static void api_parts_revoked(sl_ctx *c, const sl_position *p, size_t n) { (void)c, (void)p, (void)n; }
static const char *api_pipeline_name(sl_ctx *ctx) { (void)ctx; return "mock"; }
static const char *api_stage_name(sl_ctx *ctx) { return ST(ctx)->name; }
static int api_task_index(sl_ctx *ctx) { (void)ctx; return 0; }
static const char *api_config_dir(sl_ctx *ctx) { return ST(ctx)->config_dir; }

static sl_err parse_unit(const char *text, int64_t *out, const char *const *units,
                         const double *mult)
{
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || errno || v < 0)
        return SL_EINVAL;
    while (*end == ' ')
        end++;
    if (!*end) {
        *out = (int64_t)v;
        return SL_OK;
    }
    for (size_t i = 0; units[i]; i++)
        if (!strcmp(end, units[i])) {
            *out = (int64_t)(v * mult[i]);
            return SL_OK;
        }
    return SL_EINVAL;
}

static sl_err api_parse_duration(const char *text, int64_t *ms)
{
    static const char *const u[] = {"ms", "s", "m", "h", "d", NULL};
    static const double m[] = {1, 1000, 60000, 3600000, 86400000};
    return parse_unit(text, ms, u, m);
}

static sl_err api_parse_size(const char *text, int64_t *bytes)
{
    static const char *const u[] = {"B", "kB", "KiB", "MB", "MiB", "GB", "GiB", NULL};
    static const double m[] = {1, 1e3, 1024, 1e6, 1048576, 1e9, 1073741824};
    return parse_unit(text, bytes, u, m);
}

static const sl_api mock_api = {
    .struct_size = sizeof(sl_api),
    .abi_minor = SL_ABI_MINOR,
    .log = api_log,
    .count = api_count,
    .observe = api_observe,
    .emit = api_emit,
    .hold = api_hold,
    .release = api_release,
    .reject = api_reject,
    .ack_group = api_ack_group,
    .ack_group_add = api_ack_group_add,
    .now_ms = api_now_ms,
    .monotonic_ms = api_monotonic_ms,
    .json = api_json,
    .json_get = api_json_get,
    .json_type = api_json_type,
    .json_string = api_json_string,
    .json_number = api_json_number,
    .json_size = api_json_size,
    .json_at = api_json_at,
    .json_key = api_json_key,
    .json_set_string = api_json_set_string,
    .json_set_number = api_json_set_number,
    .json_set_null = api_json_set_null,
    .value = api_value,
    .set_topic = api_set_topic,
    .partitions_assigned = api_parts_assigned,
    .partitions_revoked = api_parts_revoked,
    .pipeline_name = api_pipeline_name,
    .stage_name = api_stage_name,
    .task_index = api_task_index,
    .config_dir = api_config_dir,
    .parse_duration = api_parse_duration,
    .parse_size = api_parse_size,
};

/* ---- config -------------------------------------------------------------------------- */

static char *keep(mh_stage *st, char *p)
{
    if (st->n_strings < 64)
        st->strings[st->n_strings++] = p;
    return p;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static int set_value(mh_stage *st, const sl_config_entry *e, const char *text)
{
    char *base = (char *)st->config + e->offset;
    int64_t i64;
    double d = 0;
    switch (e->type) {
    case SL_T_BOOL: {
        int b = !strcmp(text, "true") || !strcmp(text, "yes") || !strcmp(text, "1") ||
                !strcmp(text, "on");
        if (!b && strcmp(text, "false") && strcmp(text, "no") && strcmp(text, "0") &&
            strcmp(text, "off"))
            return -1;
        memcpy(base, &b, sizeof b);
        return 0;
    }
    case SL_T_INT:
    case SL_T_DURATION:
    case SL_T_SIZE:
        if (e->type == SL_T_INT) {
            char *end;
            i64 = strtoll(text, &end, 10);
            if (*end)
                return -1;
        } else if ((e->type == SL_T_DURATION ? api_parse_duration : api_parse_size)(text, &i64))
            return -1;
        d = (double)i64;
        if ((e->flags & SL_CFG_BOUNDED) && (d < e->min || d > e->max))
            return -1;
        memcpy(base, &i64, sizeof i64);
        return 0;
    case SL_T_DOUBLE: {
        char *end;
        d = strtod(text, &end);
        if (*end || ((e->flags & SL_CFG_BOUNDED) && (d < e->min || d > e->max)))
            return -1;
        memcpy(base, &d, sizeof d);
        return 0;
    }
    case SL_T_STRING:
    case SL_T_JSON: {
        char *s = keep(st, xstrndup(text, strlen(text)));
        memcpy(base, &s, sizeof s);
        return 0;
    }
    case SL_T_ENUM: {
        size_t n = strlen(text);
        int idx = 0;
        for (const char *c = e->choices; c && *c; idx++) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !memcmp(c, text, n)) {
                memcpy(base, &idx, sizeof idx);
                return 0;
            }
            c = bar ? bar + 1 : c + len;
        }
        return -1;
    }
    case SL_T_LIST: {
        char *s = keep(st, xstrndup(text, strlen(text)));
        char *p = trim(s);
        if (*p == '[') {
            p++;
            size_t n = strlen(p);
            if (n && p[n - 1] == ']')
                p[n - 1] = 0;
        }
        const char **items = (const char **)keep(st, xmalloc(64 * sizeof(char *)));
        size_t n = 0;
        for (char *tok = strtok(p, ","); tok && n < 64; tok = strtok(NULL, ","))
            items[n++] = trim(tok);
        if ((e->flags & SL_CFG_BOUNDED) && (n < e->min || n > e->max))
            return -1;
        sl_list l = {items, n};
        memcpy(base, &l, sizeof l);
        return 0;
    }
    case SL_T_MAP:
        return 0;
    }
    return -1;
}

const char *mh_plugin_path(const char *name)
{
    static char buf[1024];
    const char *b = getenv("SLUICE_BUILD_DIR");
    snprintf(buf, sizeof buf, "%s/plugins/%s/%s.so", b ? b : ".", name, name);
    return buf;
}

mh_stage *mh_open(const sl_stage_desc *desc, const char *so_path, const char *name,
                  const char *config_dir, const char *const *kv)
{
    mh_stage *st = xmalloc(sizeof *st);
    if (!desc) {
        st->dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
        sl_stage_entry_fn fn = st->dl ? (sl_stage_entry_fn)dlsym(st->dl, SL_STAGE_ENTRY_SYMBOL) : NULL;
        if (!fn) {
            fprintf(stderr, "mockhost: cannot load %s: %s\n", so_path, dlerror());
            mh_last_init_err = SL_FATAL;
            free(st);
            return NULL;
        }
        desc = fn();
    }
    st->desc = desc;
    snprintf(st->name, sizeof st->name, "%s", name ? name : desc->name);
    snprintf(st->config_dir, sizeof st->config_dir, "%s", config_dir ? config_dir : ".");
    st->config = xmalloc(desc->config_size);
    for (const sl_config_entry *e = desc->config; e && e->key; e++) {
        const char *text = e->default_value;
        for (size_t i = 0; kv && kv[i]; i += 2)
            if (!strcmp(kv[i], e->key))
                text = kv[i + 1];
        if (text && set_value(st, e, text)) {
            fprintf(stderr, "mockhost: %s: bad value for %s: %s\n", st->name, e->key, text);
            mh_last_init_err = SL_ECONFIG;
            st->self = NULL;
            st->desc = NULL;
            mh_close(st);
            return NULL;
        }
    }
    for (size_t i = 0; kv && kv[i]; i += 2) {
        bool known = false;
        for (const sl_config_entry *e = desc->config; e && e->key; e++)
            known |= !strcmp(kv[i], e->key);
        if (!known) {
            fprintf(stderr, "mockhost: %s: unknown key %s\n", st->name, kv[i]);
            mh_last_init_err = SL_ECONFIG;
            st->desc = NULL;
            mh_close(st);
            return NULL;
        }
    }
    mh_last_init_err = desc->init((sl_ctx *)st, &mock_api, st->config, &st->self);
    if (mh_last_init_err != SL_OK) {
        st->desc = NULL; /* close is not called after a failed init */
        mh_close(st);
        return NULL;
    }
    return st;
}

void mh_close(mh_stage *st)
{
    if (!st)
        return;
    if (st->desc && st->desc->close)
        st->desc->close(st->self, (sl_ctx *)st);
    for (size_t i = 0; i < st->n_strings; i++)
        free(st->strings[i]);
    free(st->config);
    if (st->dl)
        dlclose(st->dl);
    free(st);
}

/* ---- running a chain -------------------------------------------------------------------- */

/* Push `cur` (records entering stage i, each holding one in-flight ack ref) through stages
 * i..n. Consumes `cur`'s in-flight refs. */
static sl_err run_from(mh_stage **stages, size_t i, size_t n, mh_list *cur, mh_list *out,
                       mh_list *dlq)
{
    for (; i < n; i++) {
        mh_stage *st = stages[i];
        mh_list next = {0};
        st->batch = (sl_record *const *)cur->v;
        st->batch_n = cur->n;
        st->cursor = 0;
        st->emit_to = &next;
        st->dlq = dlq;
        sl_batch b = {(sl_record *const *)cur->v, cur->n};
        sl_err e = st->desc->process(st->self, (sl_ctx *)st, &b);
        st->emit_to = NULL;
        st->batch = NULL;
        st->batch_n = 0;
        list_clear(cur, true); /* in-flight refs of the batch that entered this stage */
        free(cur->v);
        *cur = next;
        if (e != SL_OK) {
            list_clear(cur, true);
            free(cur->v);
            return e;
        }
    }
    for (size_t k = 0; k < cur->n; k++)
        list_push(out, cur->v[k]);
    list_clear(cur, false); /* the out list keeps the ack refs */
    free(cur->v);
    *cur = (mh_list){0};
    return SL_OK;
}

sl_err mh_process(mh_stage **stages, size_t n, mh_rec **in, size_t nin, mh_list *out, mh_list *dlq)
{
    mh_list cur = {0};
    for (size_t k = 0; k < nin; k++)
        list_push(&cur, in[k]);
    return run_from(stages, 0, n, &cur, out, dlq);
}

sl_err mh_flush(mh_stage **stages, size_t n, int final, mh_list *out, mh_list *dlq)
{
    for (size_t i = 0; i < n; i++) {
        mh_stage *st = stages[i];
        if (!st->desc->flush)
            continue;
        mh_list next = {0};
        st->emit_to = &next;
        st->dlq = dlq;
        sl_err e = st->desc->flush(st->self, (sl_ctx *)st, final);
        st->emit_to = NULL;
        if (e != SL_OK) {
            mh_list_free(&next);
            return e;
        }
        if ((e = run_from(stages, i + 1, n, &next, out, dlq)) != SL_OK)
            return e;
    }
    return SL_OK;
}

void mh_shutdown(void) {}
