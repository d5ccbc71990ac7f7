/* spec.c — the window stage's YAML specs, compiled once at init:
 *
 *   windows:    "1m" (tumbling) | "1h every 5m" (hopping) — optionally "... as label"
 *   group_by:   "path" | "path as column"
 *   aggregates: column -> "count" | "count where COND" | "sum(path) [scale N] [where COND]" |
 *               min/max/avg/first/last(path) likewise | "distinct(path) [exact N] [sketch COL]" |
 *               "= EXPR [scale N | decimals N]" (a derived column)
 *
 * Conditions are the shared expression language (plugins/common/sl_expr.h). A derived EXPR is
 * + - * / and parentheses over numbers and aggregate columns, evaluated in exact rationals at
 * emit time (money never goes through a float), so it has its own tiny parser here. */
#include "window.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_expr.h"

/* ---- conditions ---------------------------------------------------------------------------- */

struct wcond {
    sl_expr *e;
    int eq_path; /* `path == "text"`: compared against the record's resolved field, no eval */
    char *eq_lit;
};

wcond *wcond_compile(const char *text, int base_col, char *err, size_t errlen)
{
    sl_expr_opts o = {.want = SL_EXPR_T_BOOL};
    sl_expr_error ee = {0};
    sl_expr *e = sl_expr_compile(text, &o, &ee);
    if (!e) {
        if (ee.line > 1)
            snprintf(err, errlen, "where, line %d column %d: %s", ee.line, ee.col, ee.msg);
        else
            snprintf(err, errlen, "column %d: %s", base_col + ee.col, ee.msg);
        return NULL;
    }
    wcond *c = malloc(sizeof *c);
    if (!c) {
        sl_expr_free(e);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->e = e;
    c->eq_path = -1;
    c->eq_lit = NULL;
    return c;
}

bool wcond_eval(const wcond *c, const sl_api *api, const sl_json *root, const sl_json *const *nodes)
{
    if (c->eq_lit) {
        const char *s = api->json_string(nodes[c->eq_path]);
        return s && !strcmp(s, c->eq_lit);
    }
    return sl_expr_eval_bool(c->e, api, root, NULL) == 1;
}

void wcond_free(wcond *c)
{
    if (c) {
        sl_expr_free(c->e);
        free(c->eq_lit);
        free(c);
    }
}

/* ---- paths --------------------------------------------------------------------------------- */

const sl_json *w_path_get(const wstage *k, const sl_json *root, const wpath *p)
{
    const sl_json *n = root;
    if (k->fast_keys) {
        for (int i = 0; i < p->n && n; i++)
            n = k->api->json_get_key(n, &p->key[i]);
    } else {
        for (int i = 0; i < p->n && n; i++)
            n = k->api->json_get(n, p->seg[i]);
    }
    return n;
}

static int path_index(wstage *k, const char *text, size_t len, char *err, size_t errlen)
{
    for (size_t i = 0; i < k->n_paths; i++)
        if (strlen(k->paths[i].text) == len && !strncmp(k->paths[i].text, text, len))
            return (int)i;
    if (k->n_paths == W_MAX_PATHS) {
        snprintf(err, errlen, "more than %d distinct fields", W_MAX_PATHS);
        return -1;
    }
    wpath *p = &k->paths[k->n_paths];
    if (!len || !(p->text = strndup(text, len))) {
        snprintf(err, errlen, "empty field path");
        return -1;
    }
    char *s = p->text;
    size_t total = len;
    /* segments point into a second copy with '.' replaced by NUL */
    char *segs = malloc(total + 1);
    if (!segs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(segs, s, total + 1);
    p->n = 0;
    for (char *q = segs;;) {
        if (p->n == 8 || !*q || *q == '.') {
            snprintf(err, errlen, "field path '%s': empty segment or deeper than 8", p->text);
            free(segs);
            free(p->text);
            p->text = NULL;
            return -1;
        }
        p->seg[p->n++] = q;
        char *dot = strchr(q, '.');
        if (!dot)
            break;
        *dot = 0;
        q = dot + 1;
    }
    k->n_paths++;
    return (int)(k->n_paths - 1);
}

static int cond_index(wstage *k, const char *text, int base_col, char *err, size_t errlen)
{
    for (size_t i = 0; i < k->n_conds; i++)
        if (!strcmp(k->cond_text[i], text))
            return (int)i;
    if (k->n_conds == W_MAX_CONDS) {
        snprintf(err, errlen, "more than %d distinct where conditions", W_MAX_CONDS);
        return -1;
    }
    wcond *c = wcond_compile(text, base_col, err, errlen);
    if (!c)
        return -1;
    /* The commonest condition, a field equal to a string literal without escapes, reads the
     * field the record resolved once for every aggregate and costs one strcmp. */
    const char *p = text, *q;
    while (*p == ' ')
        p++;
    for (q = p; isalnum((unsigned char)*q) || *q == '_' || *q == '.'; q++)
        ;
    size_t plen = (size_t)(q - p);
    while (*q == ' ')
        q++;
    if (plen && isalpha((unsigned char)*p) && q[0] == '=' && q[1] == '=') {
        q += 2;
        while (*q == ' ')
            q++;
        char quote = *q;
        const char *end = quote == '"' || quote == '\'' ? strchr(q + 1, quote) : NULL;
        const char *tail = end ? end + 1 : NULL;
        while (tail && *tail == ' ')
            tail++;
        if (end && !*tail && !memchr(q + 1, '\\', (size_t)(end - q - 1))) {
            char perr[200];
            int pi = path_index(k, p, plen, perr, sizeof perr);
            if (pi >= 0 && (c->eq_lit = strndup(q + 1, (size_t)(end - q - 1))))
                c->eq_path = pi;
        }
    }
    k->conds[k->n_conds] = c;
    k->cond_text[k->n_conds] = strdup(text);
    return (int)k->n_conds++;
}

/* ---- a small scanner ------------------------------------------------------------------------ */

typedef struct scan {
    const char *s, *p;
    char *err;
    size_t errlen;
} scan;

static void skip_ws(scan *sc)
{
    while (isspace((unsigned char)*sc->p))
        sc->p++;
}

static bool fail(scan *sc, const char *msg)
{
    if (!*sc->err)
        snprintf(sc->err, sc->errlen, "column %d: %s", (int)(sc->p - sc->s) + 1, msg);
    return false;
}

/* An identifier or a dotted path: [A-Za-z_$][A-Za-z0-9_.$-]* */
static size_t ident(scan *sc)
{
    skip_ws(sc);
    const char *q = sc->p;
    if (!(isalpha((unsigned char)*q) || *q == '_' || *q == '$'))
        return 0;
    while (isalnum((unsigned char)*q) || *q == '_' || *q == '.' || *q == '$' || *q == '-')
        q++;
    return (size_t)(q - sc->p);
}

static bool word(scan *sc, const char *w)
{
    skip_ws(sc);
    size_t n = strlen(w);
    if (strncmp(sc->p, w, n) || isalnum((unsigned char)sc->p[n]) || sc->p[n] == '_')
        return false;
    sc->p += n;
    return true;
}

static bool integer(scan *sc, int lo, int hi, int *out)
{
    skip_ws(sc);
    char *end;
    long v = strtol(sc->p, &end, 10);
    if (end == sc->p || v < lo || v > hi) {
        char m[80];
        snprintf(m, sizeof m, "expected an integer in %d..%d", lo, hi);
        return fail(sc, m);
    }
    sc->p = end;
    *out = (int)v;
    return true;
}

/* ---- derived expressions: shunting-yard into reverse Polish --------------------------------- */

typedef struct dbuild {
    dstep *v;
    int n, cap;
} dbuild;

static bool push_step(dbuild *b, dstep s)
{
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        dstep *v = realloc(b->v, (size_t)cap * sizeof *v);
        if (!v)
            return false;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = s;
    return true;
}

static bool d_expr(wstage *k, scan *sc, dbuild *b, int depth);

static bool d_primary(wstage *k, scan *sc, dbuild *b, int depth)
{
    skip_ws(sc);
    if (depth > 32)
        return fail(sc, "expression nested too deep");
    if (*sc->p == '(') {
        sc->p++;
        if (!d_expr(k, sc, b, depth + 1))
            return false;
        skip_ws(sc);
        if (*sc->p != ')')
            return fail(sc, "expected ')'");
        sc->p++;
        return true;
    }
    if (*sc->p == '-') {
        sc->p++;
        if (!d_primary(k, sc, b, depth + 1))
            return false;
        return push_step(b, (dstep){.op = 'n'}) || fail(sc, "out of memory");
    }
    if (isdigit((unsigned char)*sc->p)) {
        /* a decimal literal, exactly: digits [. digits] */
        __int128 num = 0, den = 1;
        const char *q = sc->p;
        for (; isdigit((unsigned char)*q); q++)
            num = num * 10 + (*q - '0');
        if (*q == '.')
            for (q++; isdigit((unsigned char)*q); q++)
                num = num * 10 + (*q - '0'), den *= 10;
        if (q - sc->p > 30)
            return fail(sc, "number too long");
        sc->p = q;
        return push_step(b, (dstep){.op = 'c', .num = num, .den = den}) || fail(sc, "out of memory");
    }
    size_t n = ident(sc);
    if (!n)
        return fail(sc, "expected a column name, a number or '('");
    for (size_t i = 0; i < k->n_aggs; i++)
        if (strlen(k->aggs[i].name) == n && !strncmp(k->aggs[i].name, sc->p, n)) {
            if (k->aggs[i].op == A_DERIVED)
                return fail(sc, "a derived column cannot refer to another derived column");
            sc->p += n;
            return push_step(b, (dstep){.op = 'v', .col = (int)i}) || fail(sc, "out of memory");
        }
    char m[160];
    snprintf(m, sizeof m, "'%.*s' is not an aggregate column defined before this one", (int)n, sc->p);
    return fail(sc, m);
}

static bool d_term(wstage *k, scan *sc, dbuild *b, int depth)
{
    if (!d_primary(k, sc, b, depth))
        return false;
    for (;;) {
        skip_ws(sc);
        char op = *sc->p;
        if (op != '*' && op != '/')
            return true;
        sc->p++;
        if (!d_primary(k, sc, b, depth) || !push_step(b, (dstep){.op = op}))
            return fail(sc, "out of memory");
    }
}

static bool d_expr(wstage *k, scan *sc, dbuild *b, int depth)
{
    if (!d_term(k, sc, b, depth))
        return false;
    for (;;) {
        skip_ws(sc);
        char op = *sc->p;
        if (op != '+' && op != '-')
            return true;
        sc->p++;
        if (!d_term(k, sc, b, depth) || !push_step(b, (dstep){.op = op}))
            return fail(sc, "out of memory");
    }
}

/* ---- one aggregate -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    aop op;
    int nslots;
} OPS[] = {
    {"count", A_COUNT, 1}, {"sum", A_SUM, 1},   {"min", A_MIN, 2},   {"max", A_MAX, 2},
    {"avg", A_AVG, 2},     {"first", A_FIRST, 3}, {"last", A_LAST, 3}, {"distinct", A_DISTINCT, 1},
};

static bool parse_agg(wstage *k, wagg *a, const char *spec, char *err, size_t errlen)
{
    scan sc = {.s = spec, .p = spec, .err = err, .errlen = errlen};
    *err = 0;
    a->path = a->cond = -1;
    a->scale = 6;
    a->pow10 = 1000000;
    a->exact = 100;
    a->decimals = 6;
    skip_ws(&sc);
    if (*sc.p == '=') {
        sc.p++;
        a->op = A_DERIVED;
        dbuild b = {0};
        if (!d_expr(k, &sc, &b, 0)) {
            free(b.v);
            return false;
        }
        a->rpn = b.v;
        a->nrpn = b.n;
        a->scale = -1;
        for (;;) {
            if (word(&sc, "scale")) {
                if (!integer(&sc, 0, 12, &a->scale))
                    return false;
            } else if (word(&sc, "decimals")) {
                if (!integer(&sc, 0, 17, &a->decimals))
                    return false;
            } else {
                break;
            }
        }
        skip_ws(&sc);
        return !*sc.p || fail(&sc, "expected '+', '-', '*', '/', 'scale N', 'decimals N' or the end");
    }
    size_t n = ident(&sc);
    size_t oi = 0;
    while (oi < sizeof OPS / sizeof *OPS && !(strlen(OPS[oi].name) == n && !strncmp(OPS[oi].name, sc.p, n)))
        oi++;
    if (oi == sizeof OPS / sizeof *OPS)
        return fail(&sc, "expected count, sum, min, max, avg, first, last, distinct or '= expression'");
    sc.p += n;
    a->op = OPS[oi].op;
    a->nslots = OPS[oi].nslots;
    skip_ws(&sc);
    if (*sc.p == '(') {
        sc.p++;
        size_t pn = ident(&sc);
        if (!pn)
            return fail(&sc, "expected a field path");
        char perr[200];
        if ((a->path = path_index(k, sc.p, pn, perr, sizeof perr)) < 0)
            return fail(&sc, perr);
        sc.p += pn;
        skip_ws(&sc);
        if (*sc.p != ')')
            return fail(&sc, "expected ')'");
        sc.p++;
    } else if (a->op != A_COUNT) {
        return fail(&sc, "expected '(' and a field path");
    }
    for (;;) {
        if (word(&sc, "scale")) {
            if (a->op == A_COUNT || a->op == A_DISTINCT)
                return fail(&sc, "scale applies to sum, min, max, avg, first and last");
            if (!integer(&sc, 0, 12, &a->scale))
                return false;
            a->fixed = true;
        } else if (word(&sc, "exact")) {
            if (a->op != A_DISTINCT)
                return fail(&sc, "exact applies to distinct");
            if (!integer(&sc, 0, 100000, &a->exact))
                return false;
        } else if (word(&sc, "sketch")) {
            size_t sn = ident(&sc);
            if (a->op != A_DISTINCT || !sn)
                return fail(&sc, "sketch applies to distinct and names a column");
            a->sketch = strndup(sc.p, sn);
            sc.p += sn;
        } else if (word(&sc, "where")) {
            skip_ws(&sc);
            if ((a->cond = cond_index(k, sc.p, (int)(sc.p - sc.s), err, errlen)) < 0)
                return false;
            break;
        } else {
            skip_ws(&sc);
            if (*sc.p)
                return fail(&sc, "expected scale, exact, sketch, where or the end");
            break;
        }
    }
    a->pow10 = 1;
    for (int i = 0; i < a->scale; i++)
        a->pow10 *= 10;
    return true;
}

/* A config error: the message, and the JSON Pointer (in `with:`) of the value to blame, which
 * the host turns into file:line:column (check) or init logs. */
static void w_err(wstage *k, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void w_err(wstage *k, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (k->why && k->why_len)
        vsnprintf(k->why, k->why_len, fmt, ap);
    va_end(ap);
    if (k->where && k->where_len)
        snprintf(k->where, k->where_len, "%s", where); /* callers escape member names */
}

static void ptr_member(char *out, size_t n, const char *key, const char *name)
{
    size_t o = (size_t)snprintf(out, n, "/%s/", key);
    for (const char *c = name; *c && o + 3 < n; c++) {
        if (*c == '~' || *c == '/') {
            out[o++] = '~';
            out[o++] = *c == '~' ? '0' : '1';
        } else {
            out[o++] = *c;
        }
    }
    out[o < n ? o : n - 1] = 0;
}

/* "1m" | "1h every 5m", then optionally "as label" */
static bool parse_window(wstage *k, size_t idx, const char *text, wsize *w)
{
    const sl_api *api = k->api;
    char buf[160], wp[32];
    snprintf(wp, sizeof wp, "/windows/%zu", idx);
    snprintf(buf, sizeof buf, "%s", text);
    char *label = strstr(buf, " as ");
    if (label) {
        *label = 0;
        label += 4;
        while (*label == ' ')
            label++;
    }
    char *every = strstr(buf, " every "), *gap = !strncmp(buf, "session ", 8) ? buf + 8 : NULL;
    if (every) {
        *every = 0;
        every += 7;
    }
    if (gap) {
        w->kind = WK_SESSION;
        if (every || api->parse_duration(gap, &w->size) != SL_OK || w->size <= 0) {
            w_err(k, wp, "windows: '%s' is not 'session GAP' (a positive duration)", text);
            return false;
        }
        w->slide = 0;
        if (label)
            snprintf(w->label, sizeof w->label, "%s", label);
        else
            snprintf(w->label, sizeof w->label, "session_%.40s", gap);
        goto check_label;
    }
    w->kind = every ? WK_HOPPING : WK_TUMBLING;
    if (api->parse_duration(buf, &w->size) != SL_OK || w->size <= 0 ||
        (every && (api->parse_duration(every, &w->slide) != SL_OK || w->slide <= 0 || w->slide > w->size))) {
        w_err(k, wp, "windows: '%s' is not 'SIZE' or 'SIZE every SLIDE' (positive durations, slide <= size)", text);
        return false;
    }
    if (!every)
        w->slide = w->size;
    if (every && w->size / w->slide > 1024) {
        w_err(k, wp, "windows: '%s': more than 1024 windows per event", text);
        return false;
    }
    if (label) {
        snprintf(w->label, sizeof w->label, "%s", label);
    } else {
        char a[24], b[24];
        int64_t v[2] = {w->size, w->slide};
        char *o[2] = {a, b};
        for (int i = 0; i < 2; i++) {
            int64_t ms = v[i];
            if (ms % 3600000 == 0)
                snprintf(o[i], 24, "%lldh", (long long)(ms / 3600000));
            else if (ms % 60000 == 0)
                snprintf(o[i], 24, "%lldm", (long long)(ms / 60000));
            else if (ms % 1000 == 0)
                snprintf(o[i], 24, "%llds", (long long)(ms / 1000));
            else
                snprintf(o[i], 24, "%lldms", (long long)ms);
        }
        if (every)
            snprintf(w->label, sizeof w->label, "%s_every_%s", a, b);
        else
            snprintf(w->label, sizeof w->label, "%s", a);
    }
check_label:
    for (const char *c = w->label; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_-.", *c)) {
            w_err(k, wp, "windows: label '%s': letters, digits, '_', '-', '.' only", w->label);
            return false;
        }
    snprintf(w->topic, sizeof w->topic, "%s%s", k->conf->topic_prefix, w->label);
    return true;
}

/* Column names go into rows unescaped and must not collide: [A-Za-z0-9_.-], not a row field. */
static const char *bad_name(const wstage *k, const char *name, size_t upto_aggs)
{
    static const char *const reserved[] = {"window", "window_start", "window_end", "source_topic", "partition",
                                           "final", "revision"};
    if (!*name || strlen(name) > 100)
        return "a column name needs 1..100 characters";
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_.-", *c))
            return "a column name has letters, digits, '_', '.', '-' only";
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (!strcmp(name, reserved[i]))
            return "the name of a field every row has";
    for (size_t i = 0; i < k->n_group; i++)
        if (k->group_name[i] && !strcmp(name, k->group_name[i]))
            return "already a group_by column";
    for (size_t i = 0; i < upto_aggs; i++)
        if (!strcmp(name, k->aggs[i].name) || (k->aggs[i].sketch && !strcmp(name, k->aggs[i].sketch)))
            return "already a column";
    return NULL;
}

sl_err w_spec_compile(wstage *k)
{
    const wconf *c = k->conf;
    char err[400], wp[160];
    if (c->windows.n == 0 || c->windows.n > W_MAX_SIZES) {
        w_err(k, "/windows", "windows: between 1 and %d windows", W_MAX_SIZES);
        return SL_ECONFIG;
    }
    k->n_sizes = c->windows.n;
    for (size_t i = 0; i < k->n_sizes; i++) {
        if (!parse_window(k, i, c->windows.items[i], &k->sz[i]))
            return SL_ECONFIG;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(k->sz[j].label, k->sz[i].label)) {
                snprintf(wp, sizeof wp, "/windows/%zu", i);
                w_err(k, wp, "windows: '%s' is listed twice (give one 'as LABEL')", k->sz[i].label);
                return SL_ECONFIG;
            }
    }
    /* the time field first: path 0 */
    if (path_index(k, c->time_field, strlen(c->time_field), err, sizeof err) != 0) {
        w_err(k, "/time_field", "time_field: %s", err);
        return SL_ECONFIG;
    }
    if (c->group_by.n > W_MAX_GROUP) {
        w_err(k, "/group_by", "group_by: at most %d fields", W_MAX_GROUP);
        return SL_ECONFIG;
    }
    k->n_group = c->group_by.n;
    for (size_t i = 0; i < k->n_group; i++) {
        const char *t = c->group_by.items[i], *as = strstr(t, " as ");
        size_t pn = as ? (size_t)(as - t) : strlen(t);
        int pi = path_index(k, t, pn, err, sizeof err);
        if (pi < 0) {
            snprintf(wp, sizeof wp, "/group_by/%zu", i);
            w_err(k, wp, "group_by: '%s': %s", t, err);
            return SL_ECONFIG;
        }
        k->group_path[i] = pi;
        const char *gname = as ? as + 4 : k->paths[pi].text, *why = bad_name(k, gname, 0);
        if (why) {
            snprintf(wp, sizeof wp, "/group_by/%zu", i);
            w_err(k, wp, "group_by: '%s': %s", t, why);
            return SL_ECONFIG;
        }
        k->group_name[i] = strdup(gname);
    }
    if (c->aggregates.n == 0 || c->aggregates.n > W_MAX_AGGS) {
        w_err(k, "/aggregates", "aggregates: between 1 and %d columns", W_MAX_AGGS);
        return SL_ECONFIG;
    }
    int slot = 0;
    for (size_t i = 0; i < c->aggregates.n; i++) {
        wagg *a = &k->aggs[i];
        const char *why = bad_name(k, c->aggregates.keys[i], i);
        if (why) {
            ptr_member(wp, sizeof wp, "aggregates", c->aggregates.keys[i]);
            w_err(k, wp, "aggregates: %s: %s", c->aggregates.keys[i], why);
            return SL_ECONFIG;
        }
        a->name = strdup(c->aggregates.keys[i]);
        if (!parse_agg(k, a, c->aggregates.values[i], err, sizeof err) ||
            (a->sketch && (why = bad_name(k, a->sketch, i)) && snprintf(err, sizeof err, "sketch %s: %s", a->sketch, why))) {
            ptr_member(wp, sizeof wp, "aggregates", c->aggregates.keys[i]);
            w_err(k, wp, "aggregates: %s: '%s': %s", a->name, c->aggregates.values[i], err);
            k->n_aggs = i + 1;
            return SL_ECONFIG;
        }
        a->slot = slot;
        slot += a->nslots;
        k->n_aggs = i + 1;
    }
    k->n_slots = (size_t)slot;
    /* one hash compare per member instead of a string compare, when the host can */
    if (k->api && SL_HAS(k->api, json_key_init) && SL_HAS(k->api, json_get_key)) {
        for (size_t i = 0; i < k->n_paths; i++)
            for (int j = 0; j < k->paths[i].n; j++)
                k->api->json_key_init(&k->paths[i].key[j], k->paths[i].seg[j]);
        k->fast_keys = true;
    }
    k->contrib_size = (sizeof(contrib) + k->n_aggs * sizeof(int64_t) + (k->n_group ? W_KEY_MAX : 0) + 7) & ~(size_t)7;
    return SL_OK;
}

void w_spec_free(wstage *k)
{
    for (size_t i = 0; i < k->n_paths; i++) {
        free(k->paths[i].text);
        if (k->paths[i].n)
            free(k->paths[i].seg[0]);
    }
    for (size_t i = 0; i < k->n_conds; i++) {
        wcond_free(k->conds[i]);
        free(k->cond_text[i]);
    }
    for (size_t i = 0; i < k->n_group; i++)
        free(k->group_name[i]);
    for (size_t i = 0; i < k->n_aggs; i++) {
        free(k->aggs[i].name);
        free(k->aggs[i].sketch);
        free(k->aggs[i].rpn);
    }
}
