#include "config.h"

#include "runtime.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERR_AT(n, ...) do { at_error(err, errlen, (n), __VA_ARGS__); return -1; } while (0)

static void at_error(char *err, size_t errlen, const ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void at_error(char *err, size_t errlen, const ynode *n, const char *fmt, ...)
{
    int k = snprintf(err, errlen, "%s:%d:%d: ", n->file, n->line, n->col);
    if (k < 0 || (size_t)k >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

/* "did you mean" for a misspelt key: the closest candidate within a third of its length. */
static const char *closest(const char *key, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int bestd = (int)strlen(key) / 3 + 1;
    if (bestd > 3) bestd = 3;
    for (size_t i = 0; i < n; i++) {
        int d = sl_edit_distance(key, cands[i]);
        if (d <= bestd) { bestd = d; best = cands[i]; }
    }
    return best;
}

static int parse_bool(const char *s, int *v)
{
    static const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, t[i])) { *v = 1; return 0; }
        if (!strcasecmp(s, f[i])) { *v = 0; return 0; }
    }
    return -1;
}

static int check_bounds(const sl_config_entry *e, double v, const ynode *n, const char *who,
                        const char *shown, char *err, size_t errlen)
{
    if ((e->flags & SL_CFG_BOUNDED) && (v < e->min || v > e->max))
        ERR_AT(n, "%s: '%s' = %s is out of range [%g, %g]", who, e->key, shown, e->min, e->max);
    return 0;
}

static int need_scalar(const sl_config_entry *e, const ynode *n, const char *who, char *err, size_t errlen)
{
    if (n->kind != YN_SCALAR)
        ERR_AT(n, "%s: '%s' must be a %s, not %s", who, e->key, type_name(e->type), ynode_kind_name(n));
    return 0;
}

/* Is `key` listed in a KEYS_LISTED `choices` string? 2: as "!key" (never), 1: as allowed, 0: not. */
static int key_listed(const char *choices, const char *key)
{
    size_t kl = strlen(key);
    for (const char *c = choices; c && *c;) {
        size_t l = strcspn(c, "|");
        int neg = *c == '!';
        if (l - (size_t)neg == kl && !strncmp(c + neg, key, kl)) return neg ? 2 : 1;
        c += l;
        if (*c == '|') c++;
    }
    return 0;
}

/* A SL_CFG_KEYS_LISTED map's key: the "!" keys never, unlisted keys only from the operator. */
static int check_map_key(const sl_config_entry *e, const ynode *k, const char *who, const cfg_policy *pol,
                         char *err, size_t errlen)
{
    if (!(e->flags & SL_CFG_KEYS_LISTED)) return 0;
    int l = key_listed(e->choices, k->str);
    if (l == 2)
        ERR_AT(k, "%s: '%s.%s' may not be overridden: sluice sets it to keep its delivery guarantees", who, e->key,
               ynode_text(k));
    if (l == 0 && pol && pol->untrusted)
        ERR_AT(k, "%s: '%s.%s' is not allowed in a pipeline created over REST (only harmless tuning settings are; "
               "see `sluice plugins describe`)", who, e->key, ynode_text(k));
    return 0;
}

/* Converts one value and stores it at e->offset. */
static int set_value(const sl_config_entry *e, const ynode *n, const char *who, const cfg_policy *pol,
                     const char *dir, sl_arena *a, char *base, char *err, size_t errlen)
{
    void *dst = base + e->offset;
    switch (e->type) {
    case SL_T_BOOL: {
        int v;
        if (need_scalar(e, n, who, err, errlen)) return -1;
        if (parse_bool(n->str, &v))
            ERR_AT(n, "%s: '%s' must be true or false, not '%s'", who, e->key, ynode_text(n));
        *(int *)dst = v;
        return 0;
    }
    case SL_T_INT: {
        if (need_scalar(e, n, who, err, errlen)) return -1;
        char *end;
        errno = 0;
        long long v = strtoll(n->str, &end, 0);
        if (!*n->str || *end || errno)
            ERR_AT(n, "%s: '%s' must be an integer, not '%s'", who, e->key, ynode_text(n));
        if (check_bounds(e, (double)v, n, who, ynode_text(n), err, errlen)) return -1;
        *(int64_t *)dst = v;
        return 0;
    }
    case SL_T_DOUBLE: {
        if (need_scalar(e, n, who, err, errlen)) return -1;
        char *end;
        errno = 0;
        double v = strtod(n->str, &end);
        if (!*n->str || *end || errno || !isfinite(v))
            ERR_AT(n, "%s: '%s' must be a number, not '%s'", who, e->key, ynode_text(n));
        if (check_bounds(e, v, n, who, ynode_text(n), err, errlen)) return -1;
        *(double *)dst = v;
        return 0;
    }
    case SL_T_STRING:
        if (need_scalar(e, n, who, err, errlen)) return -1;
        *(char **)dst = arena_strdup(a, n->str);
        return 0;
    case SL_T_PATH: {
        if (need_scalar(e, n, who, err, errlen)) return -1;
        char why[512];
        char *abs = cfg_resolve_path(pol, dir, n->str, why, sizeof why);
        if (!abs) ERR_AT(n, "%s: '%s' = '%s' is refused: %s", who, e->key, ynode_text(n), why);
        *(char **)dst = arena_strdup(a, abs);
        free(abs);
        return 0;
    }
    case SL_T_DURATION:
    case SL_T_SIZE: {
        if (need_scalar(e, n, who, err, errlen)) return -1;
        int64_t v = 0;
        if ((e->type == SL_T_DURATION ? sl_parse_duration : sl_parse_size)(n->str, &v) != SL_OK)
            ERR_AT(n, "%s: '%s' must be a %s (%s), not '%s'", who, e->key, type_name(e->type),
                   e->type == SL_T_DURATION ? "e.g. 500ms, 10s, 5m, 1h" : "e.g. 512, 64KiB, 8MiB",
                   ynode_text(n));
        if (check_bounds(e, (double)v, n, who, ynode_text(n), err, errlen)) return -1;
        *(int64_t *)dst = v;
        return 0;
    }
    case SL_T_ENUM: {
        if (need_scalar(e, n, who, err, errlen)) return -1;
        int idx = 0;
        for (const char *c = e->choices; *c; idx++) {
            size_t l = strcspn(c, "|");
            if (strlen(n->str) == l && strncmp(c, n->str, l) == 0) {
                *(int *)dst = idx;
                return 0;
            }
            c += l;
            if (*c == '|') c++;
        }
        ERR_AT(n, "%s: '%s' must be one of %s, not '%s'", who, e->key, e->choices, ynode_text(n));
    }
    case SL_T_LIST: {
        sl_list *l = dst;
        size_t cnt = n->kind == YN_SEQ ? n->n : 1;
        if (n->kind == YN_MAP)
            ERR_AT(n, "%s: '%s' must be a list, not a map", who, e->key);
        const char **items = arena_alloc(a, (cnt ? cnt : 1) * sizeof *items);
        for (size_t i = 0; i < cnt; i++) {
            const ynode *it = n->kind == YN_SEQ ? n->items[i] : n;
            if (it->kind != YN_SCALAR)
                ERR_AT(it, "%s: items of '%s' must be scalars, not %s", who, e->key, ynode_kind_name(it));
            items[i] = arena_strdup(a, it->str);
        }
        if (check_bounds(e, (double)cnt, n, who, "(list length)", err, errlen)) return -1;
        l->items = items;
        l->n = cnt;
        return 0;
    }
    case SL_T_MAP: {
        if (n->kind != YN_MAP)
            ERR_AT(n, "%s: '%s' must be a map, not %s", who, e->key, ynode_kind_name(n));
        sl_map *m = dst;
        const char **k = arena_alloc(a, (n->n ? n->n : 1) * sizeof *k);
        const char **v = arena_alloc(a, (n->n ? n->n : 1) * sizeof *v);
        for (size_t i = 0; i < n->n; i++) {
            if (check_map_key(e, n->keys[i], who, pol, err, errlen)) return -1;
            if (n->items[i]->kind != YN_SCALAR)
                ERR_AT(n->items[i], "%s: values of '%s' must be scalars, not %s", who, e->key,
                       ynode_kind_name(n->items[i]));
            k[i] = arena_strdup(a, n->keys[i]->str);
            v[i] = arena_strdup(a, n->items[i]->str);
        }
        m->keys = k;
        m->values = v;
        m->n = n->n;
        return 0;
    }
    case SL_T_JSON: {
        sl_buf b = {0};
        ynode_to_json(n, &b);
        *(char **)dst = arena_strdup(a, buf_cstr(&b));
        buf_free(&b);
        return 0;
    }
    }
    ERR_AT(n, "%s: '%s' has an unsupported type", who, e->key);
}

int stage_config_build(const sl_stage_desc *d, const ynode *with, const ynode *at, const char *who,
                       sl_arena *arena, void **out, char *err, size_t errlen)
{
    return stage_config_build_ex(d, with, at, who, NULL, NULL, arena, out, err, errlen);
}

int stage_config_build_ex(const sl_stage_desc *d, const ynode *with, const ynode *at, const char *who,
                          const cfg_policy *pol, const char *dir, sl_arena *arena, void **out, char *err,
                          size_t errlen)
{
    char *base = arena_alloc(arena, d->config_size ? d->config_size : 1);
    memset(base, 0, d->config_size ? d->config_size : 1);
    *out = base;
    if (with && with->kind != YN_MAP)
        ERR_AT(with, "%s: 'with' must be a map of settings, not %s", who, ynode_kind_name(with));
    /* Unknown keys first: a typo is the likeliest mistake and the message says what was meant. */
    for (size_t i = 0; with && i < with->n; i++) {
        const char *k = with->keys[i]->str;
        const sl_config_entry *e = d->config;
        while (e && e->key && strcmp(e->key, k) != 0) e++;
        if (e && e->key) continue;
        const char *cands[128];
        size_t nc = 0;
        for (e = d->config; e && e->key && nc < 128; e++) cands[nc++] = e->key;
        const char *hint = closest(k, cands, nc);
        if (hint)
            ERR_AT(with->keys[i], "%s: unknown key '%s' (did you mean '%s'?)", who, k, hint);
        ERR_AT(with->keys[i], "%s: unknown key '%s' (see `sluice plugins describe %s`)", who, k, d->name);
    }
    for (const sl_config_entry *e = d->config; e && e->key; e++) {
        const ynode *v = ynode_get(with, e->key);
        if (v) {
            if ((e->flags & SL_CFG_OPERATOR_ONLY) && pol && pol->untrusted)
                ERR_AT(ynode_get_key(with, e->key), "%s: '%s' may be set only in the operator's own pipeline files, "
                       "not in a pipeline created over REST", who, e->key);
            if (set_value(e, v, who, pol, dir, arena, base, err, errlen)) return -1;
            continue;
        }
        if (e->flags & SL_CFG_REQUIRED)
            ERR_AT(with ? with : at, "%s: missing required key '%s' (%s: %s)", who, e->key,
                   type_name(e->type), e->description ? e->description : "");
        if (e->default_value) {
            /* Defaults are YAML text parsed like user input, so a broken default in a plugin
             * is reported as such rather than silently becoming zero. */
            char derr[512];
            char *name = xasprintf("<default of %s.%s>", d->name, e->key);
            ytree *t = ytree_load(name, e->default_value, derr, sizeof derr);
            free(name);
            if (!t) {
                snprintf(err, errlen, "%s: plugin bug: default of '%s' does not parse: %s", who, e->key, derr);
                return -1;
            }
            int rc = set_value(e, t->root, who, pol, dir, arena, base, err, errlen);
            ytree_free(t);
            if (rc) return -1;
        }
    }
    return 0;
}

/* The node a JSON Pointer ("/tables/events/tabel", RFC 6901) names inside `with`: the deepest
 * node it reaches; a last segment naming a map key gives the key itself (a misspelt key is
 * where the mistake is). */
static const ynode *node_at_pointer(const ynode *with, const char *ptr)
{
    const ynode *n = with;
    while (n && *ptr == '/') {
        ptr++;
        size_t l = strcspn(ptr, "/");
        char seg[256];
        size_t k = 0;
        for (size_t i = 0; i < l && k + 1 < sizeof seg; i++) {
            if (ptr[i] == '~' && i + 1 < l && (ptr[i + 1] == '0' || ptr[i + 1] == '1')) {
                seg[k++] = ptr[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                seg[k++] = ptr[i];
            }
        }
        seg[k] = 0;
        ptr += l;
        const ynode *next = NULL;
        if (n->kind == YN_MAP) {
            next = *ptr ? ynode_get(n, seg) : ynode_get_key(n, seg);
        } else if (n->kind == YN_SEQ) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            if (*seg && !*end && i < n->n) next = n->items[i];
        }
        if (!next) break;
        n = next;
    }
    return n;
}

int stage_config_check(const sl_stage_desc *d, const void *config, const ynode *with, const ynode *at,
                       const char *who, const char *dir, char *where, size_t wherelen, char *err, size_t errlen)
{
    if (where && wherelen) where[0] = 0;
    if (!d->check) return 0;
    char why[1024] = "", ptr[512] = "";
    sl_check c = {.api = &sl_host_api, .config_dir = dir, .why = why, .why_len = sizeof why,
                  .where = ptr, .where_len = sizeof ptr};
    sl_err rc = d->check(config, &c);
    if (rc == SL_OK) return 0;
    why[sizeof why - 1] = ptr[sizeof ptr - 1] = 0;
    if (where && wherelen) snprintf(where, wherelen, "%s", ptr);
    const ynode *n = with && ptr[0] == '/' ? node_at_pointer(with, ptr) : NULL;
    ERR_AT(n ? n : with ? with : at, "%s: %s", who, why[0] ? why : sl_strerror(rc));
}

int stage_config_check_text(const sl_stage_desc *d, const char *text, const cfg_policy *pol, char *key,
                            size_t keylen, char *err, size_t errlen)
{
    key[0] = 0;
    if (!d->check) return 0;
    ytree *t = ytree_load_opts("request", text, YT_NO_ENV, err, errlen);
    if (!t) return -1;
    sl_arena a = {0};
    void *cfg;
    char where[512];
    int rc = stage_config_build_ex(d, t->root, t->root, d->name, pol, NULL, &a, &cfg, err, errlen);
    if (!rc) rc = stage_config_check(d, cfg, t->root, t->root, d->name, NULL, where, sizeof where, err, errlen);
    if (rc && where[0] == '/') snprintf(key, keylen, "%.*s", (int)strcspn(where + 1, "/"), where + 1);
    arena_free(&a);
    ytree_free(t);
    return rc;
}

static const char *const top_keys[] = {"pipeline", "description", "tasks", "batch_size",
                                       "commit_interval", "stages", "dead_letter", "errors"};

static int parse_int_node(const ynode *n, const char *what, long lo, long hi, long *out, char *err,
                          size_t errlen)
{
    if (n->kind != YN_SCALAR) ERR_AT(n, "'%s' must be an integer, not %s", what, ynode_kind_name(n));
    char *end;
    errno = 0;
    long v = strtol(n->str, &end, 10);
    if (!*n->str || *end || errno) ERR_AT(n, "'%s' must be an integer, not '%s'", what, n->str);
    if (v < lo || v > hi) ERR_AT(n, "'%s' = %ld is out of range [%ld, %ld]", what, v, lo, hi);
    *out = v;
    return 0;
}

/* Over REST a stage may only name an installed plugin: a path would let a client load any
 * shared object into the host (remote code execution). */
static int untrusted_use(const ynode *use, char *err, size_t errlen)
{
    if (use && use->kind == YN_SCALAR && (strchr(use->str, '/') || strstr(use->str, ".so")))
        ERR_AT(use, "'use: %.200s' names a file; pipelines created over REST may only use installed plugins by "
               "name (see GET /connector-plugins)", use->str);
    return 0;
}

static int load_stage(pipeline_cfg *p, const ynode *sn, stage_cfg *sc, int is_dlq, char *err, size_t errlen)
{
    static const char *const stage_keys[] = {"name", "use", "with"};
    if (sn->kind != YN_MAP)
        ERR_AT(sn, "a stage must be a map with name, use and with, not %s", ynode_kind_name(sn));
    for (size_t i = 0; i < sn->n; i++) {
        const char *k = sn->keys[i]->str;
        if (!strcmp(k, "name") || !strcmp(k, "use") || !strcmp(k, "with")) continue;
        const char *hint = closest(k, stage_keys, 3);
        if (hint) ERR_AT(sn->keys[i], "unknown stage key '%s' (did you mean '%s'?)", k, hint);
        ERR_AT(sn->keys[i], "unknown stage key '%s' (a stage has name, use, with)", k);
    }
    const ynode *name = ynode_get(sn, "name"), *use = ynode_get(sn, "use"), *with = ynode_get(sn, "with");
    if (!use) ERR_AT(sn, "stage is missing 'use' (the plugin to run, e.g. use: file-source)");
    if (use->kind != YN_SCALAR) ERR_AT(use, "'use' must be a plugin name or path");
    if (name && name->kind != YN_SCALAR) ERR_AT(name, "'name' must be a string");
    /* Names end up in log lines, metrics labels and file names: they are data, not text. */
    if (name && !cfg_valid_name(name->str)) ERR_AT(name, "stage name is invalid: %s", CFG_NAME_RULE);
    if (p->policy.untrusted && untrusted_use(use, err, errlen)) return -1;
    sc->name = xstrdup(name ? name->str : is_dlq ? "dead_letter" : use->str);
    sc->line = sn->line;
    sc->col = sn->col;
    char lerr[1024];
    sc->plugin = loader_find(use->str, lerr, sizeof lerr);
    if (!sc->plugin) ERR_AT(use, "stage '%s': %s", sc->name, lerr);
    if (with && with->kind == YN_SCALAR && !*with->str) with = NULL; /* `with:` left empty */
    char who[256];
    snprintf(who, sizeof who, "stage '%s' (%s)", sc->name, sc->plugin->desc->name);
    if (stage_config_build_ex(sc->plugin->desc, with, sn, who, &p->policy, p->dir, &sc->arena, &sc->config, err,
                              errlen))
        return -1;
    return stage_config_check(sc->plugin->desc, sc->config, with, sn, who, p->dir, NULL, 0, err, errlen);
}

pipeline_cfg *pipeline_load(const char *path, char *err, size_t errlen)
{
    return pipeline_load_ex(path, cfg_policy_default(), err, errlen);
}

pipeline_cfg *pipeline_load_ex(const char *path, const cfg_policy *pol, char *err, size_t errlen)
{
    /* Untrusted text is never interpolated: ${HOME} from a REST caller stays "${HOME}". */
    ytree *t = ytree_load_opts(path, pol->text, pol->untrusted ? YT_NO_ENV : 0, err, errlen);
    if (!t) return NULL;
    pipeline_cfg *p = xcalloc(1, sizeof *p);
    p->policy = (cfg_policy){.untrusted = pol->untrusted, .data_dir = pol->data_dir};
    p->tree = t;
    p->file = xstrdup(path);
    char *tmp = xstrdup(path);
    p->dir = xstrdup(dirname(tmp));
    free(tmp);
    p->tasks_min = p->tasks_max = 1;
    p->batch_size = 1024;
    p->commit_interval_ms = 1000;
    const ynode *root = t->root;
#define FAIL(n, ...) do { at_error(err, errlen, (n), __VA_ARGS__); goto fail; } while (0)
    if (root->kind != YN_MAP) FAIL(root, "a pipeline file must be a map (pipeline:, stages:, ...)");
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i]->str;
        size_t nk = sizeof top_keys / sizeof top_keys[0], j;
        for (j = 0; j < nk && strcmp(k, top_keys[j]); j++) {}
        if (j < nk) continue;
        const char *hint = closest(k, top_keys, nk);
        if (hint) FAIL(root->keys[i], "unknown key '%s' (did you mean '%s'?)", k, hint);
        FAIL(root->keys[i], "unknown key '%s' (a pipeline has: pipeline, tasks, stages, dead_letter, errors, batch_size, commit_interval, description)", k);
    }
    const ynode *n = ynode_get(root, "pipeline");
    if (!n) FAIL(root, "missing 'pipeline' (the pipeline's name)");
    if (n->kind != YN_SCALAR || !*n->str) FAIL(n, "'pipeline' must be a non-empty name");
    if (!cfg_valid_name(n->str)) FAIL(n, "pipeline name is invalid: %s", CFG_NAME_RULE);
    p->name = xstrdup(n->str);
    if ((n = ynode_get(root, "tasks"))) {
        long lo, hi;
        if (n->kind == YN_MAP) {
            const ynode *mn = ynode_get(n, "min"), *mx = ynode_get(n, "max");
            if (!mn || !mx || n->n != 2) FAIL(n, "'tasks' as a map needs exactly min and max");
            if (parse_int_node(mn, "tasks.min", 1, 1024, &lo, err, errlen)) goto fail;
            if (parse_int_node(mx, "tasks.max", 1, 1024, &hi, err, errlen)) goto fail;
            if (lo > hi) FAIL(n, "tasks.min (%ld) is greater than tasks.max (%ld)", lo, hi);
        } else {
            if (parse_int_node(n, "tasks", 1, 1024, &lo, err, errlen)) goto fail;
            hi = lo;
        }
        p->tasks_min = (int)lo;
        p->tasks_max = (int)hi;
    }
    if ((n = ynode_get(root, "batch_size"))) {
        long v;
        if (parse_int_node(n, "batch_size", 1, 1000000, &v, err, errlen)) goto fail;
        p->batch_size = (int)v;
    }
    if ((n = ynode_get(root, "commit_interval"))) {
        if (n->kind != YN_SCALAR || sl_parse_duration(n->str, &p->commit_interval_ms) != SL_OK)
            FAIL(n, "'commit_interval' must be a duration (e.g. 1s)");
    }
    if ((n = ynode_get(root, "errors"))) {
        /* Kafka Connect's errors.tolerance: what happens to a record nobody can take. */
        const ynode *tol = n->kind == YN_MAP ? ynode_get(n, "tolerance") : NULL;
        if (!tol || n->n != 1) FAIL(n, "'errors' must be a map with one key, tolerance: none|all");
        if (tol->kind != YN_SCALAR || (strcmp(tol->str, "none") && strcmp(tol->str, "all")))
            FAIL(tol, "'errors.tolerance' must be none or all");
        p->errors_tolerance_all = !strcmp(tol->str, "all");
    }
    const ynode *stages = ynode_get(root, "stages");
    if (!stages) FAIL(root, "missing 'stages' (a list: one source, transforms, one sink)");
    if (stages->kind != YN_SEQ) FAIL(stages, "'stages' must be a list, not %s", ynode_kind_name(stages));
    if (stages->n < 2) FAIL(stages, "a pipeline needs at least a source and a sink (%zu stage%s given)",
                            stages->n, stages->n == 1 ? "" : "s");
    /* Every `use:` first, before any plugin is looked up or loaded. */
    for (size_t i = 0; p->policy.untrusted && i <= stages->n; i++) {
        const ynode *st = i < stages->n ? stages->items[i] : ynode_get(root, "dead_letter");
        if (untrusted_use(ynode_get(st, "use"), err, errlen)) goto fail;
    }
    p->stages = xcalloc(stages->n, sizeof *p->stages);
    for (size_t i = 0; i < stages->n; i++) {
        p->nstages++;
        if (load_stage(p, stages->items[i], &p->stages[i], 0, err, errlen)) goto fail;
        sl_kind want = i == 0 ? SL_KIND_SOURCE : i == stages->n - 1 ? SL_KIND_SINK : SL_KIND_TRANSFORM;
        sl_kind got = p->stages[i].plugin->desc->kind;
        if (got != want)
            FAIL(stages->items[i], "stage '%s' (%s) is a %s, but the %s stage must be a %s", p->stages[i].name,
                 p->stages[i].plugin->desc->name, kind_name(got),
                 i == 0 ? "first" : i == stages->n - 1 ? "last" : "middle", kind_name(want));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p->stages[j].name, p->stages[i].name))
                FAIL(stages->items[i], "duplicate stage name '%s'", p->stages[i].name);
        if (p->tasks_max > 1 && (p->stages[i].plugin->desc->flags & SL_STAGE_SINGLE_TASK))
            FAIL(stages->items[i], "stage '%s' (%s) cannot run in more than one task (tasks: %d)",
                 p->stages[i].name, p->stages[i].plugin->desc->name, p->tasks_max);
    }
    if ((n = ynode_get(root, "dead_letter"))) {
        p->dead_letter = xcalloc(1, sizeof *p->dead_letter);
        if (load_stage(p, n, p->dead_letter, 1, err, errlen)) goto fail;
        if (p->dead_letter->plugin->desc->kind != SL_KIND_SINK)
            FAIL(n, "dead_letter '%s' is a %s; it must be a sink", p->dead_letter->plugin->desc->name,
                 kind_name(p->dead_letter->plugin->desc->kind));
    }
#undef FAIL
    return p;
fail:
    pipeline_free(p);
    return NULL;
}

static void stage_cfg_free(stage_cfg *s)
{
    free(s->name);
    arena_free(&s->arena);
}

void pipeline_free(pipeline_cfg *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nstages; i++) stage_cfg_free(&p->stages[i]);
    free(p->stages);
    if (p->dead_letter) {
        stage_cfg_free(p->dead_letter);
        free(p->dead_letter);
    }
    ytree_free(p->tree);
    free(p->name);
    free(p->file);
    free(p->dir);
    free(p);
}
