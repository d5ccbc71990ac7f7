/* testrun.c — `sluice test [--json] PATH...`: finds test files, runs every case through the
 * harness (testrun_harness.c) and reports PASS/FAIL with a diff, like a test runner.
 *
 * A test file (`*_test.yaml`, or the `tests:` section of a pipeline file) names a pipeline and
 * lists cases; docs/testing-pipelines.md describes the format. Every mistake in a test file is
 * reported as file:line:column before anything runs. */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../plugins/common/sl_time.h"
#include "log.h"
#include "testrun.h"

/* One `sluice test` invocation. */
typedef struct run {
    case_result *r;
    size_t n;
    int bad_files;
    cJSON *errors; /* the messages of bad test files, for --json */
    int json;
} run;

#define DEFAULT_NOW 1704067200000LL /* 2024-01-01T00:00:00Z: cases are reproducible */

/* ---- errors at a node ----------------------------------------------------------------------- */

char tr_err[1024];

int tr_bad(const ynode *n, const char *fmt, ...)
{
    int k = snprintf(tr_err, sizeof tr_err, "%s:%d:%d: ", n ? n->file : "?", n ? n->line : 0, n ? n->col : 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr_err + k, sizeof tr_err - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static int only_keys(const ynode *map, const char *what, const char *const *keys)
{
    if (!map || map->kind != YN_MAP) return tr_bad(map, "%s must be a map, not %s", what, ynode_kind_name(map));
    for (size_t i = 0; i < map->n; i++) {
        size_t j = 0;
        while (keys[j] && strcmp(keys[j], map->keys[i]->str)) j++;
        if (keys[j]) continue;
        char list[300] = "";
        for (j = 0; keys[j]; j++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", keys[j]);
        return tr_bad(map->keys[i], "unknown key '%s' in %s (known: %s)", map->keys[i]->str, what, list);
    }
    return 0;
}

static int scalar(const ynode *n, const char *what)
{
    return n->kind == YN_SCALAR ? 0 : tr_bad(n, "%s must be a scalar, not %s", what, ynode_kind_name(n));
}

static int get_int(const ynode *n, const char *what, int64_t *out)
{
    if (scalar(n, what)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(n->str, &end, 10);
    if (errno || end == n->str || *end) return tr_bad(n, "%s must be an integer, not '%s'", what, ynode_text(n));
    *out = v;
    return 0;
}

/* ms since the epoch, or RFC 3339 */
int tr_get_time(const ynode *n, const char *what, int64_t *out)
{
    if (scalar(n, what)) return -1;
    char *end;
    long long v = strtoll(n->str, &end, 10);
    if (end != n->str && !*end) {
        *out = v;
        return 0;
    }
    if (sl_ts_parse(n->str, out) != SL_TS_OK)
        return tr_bad(n, "%s must be ms since the epoch or an RFC 3339 time, not '%s'", what, ynode_text(n));
    return 0;
}

/* ---- what a case contains --------------------------------------------------------------------- */

static const char *const record_keys[] = {"value", "key", "headers", "timestamp", "topic", "partition", "offset", NULL};
static const char *const expect_keys[] = {"topic", "where", "count", "records", "fields", "contains", "all",
                                          "reasons", NULL};

static int check_records(const ynode *list, const char *what, int expected)
{
    if (list->kind != YN_SEQ) return tr_bad(list, "%s must be a list of records", what);
    for (size_t i = 0; i < list->n; i++) {
        const ynode *r = list->items[i];
        static const char *const ek[] = {"value", "key", "headers", "timestamp", "topic", "partition", "offset",
                                         "stage", "reason", NULL};
        if (only_keys(r, "a record", expected ? ek : record_keys)) return -1;
        if (!expected && !ynode_get(r, "value")) return tr_bad(r, "an input record needs 'value'");
        const ynode *h = ynode_get(r, "headers");
        if (h && h->kind != YN_MAP) return tr_bad(h, "headers must be a map of names to values");
        int64_t x;
        const ynode *n;
        if ((n = ynode_get(r, "timestamp")) && tr_get_time(n, "timestamp", &x)) return -1;
        if ((n = ynode_get(r, "partition")) && get_int(n, "partition", &x)) return -1;
        if ((n = ynode_get(r, "offset")) && get_int(n, "offset", &x)) return -1;
        if ((n = ynode_get(r, "key")) && scalar(n, "key")) return -1;
        if ((n = ynode_get(r, "topic")) && scalar(n, "topic")) return -1;
    }
    return 0;
}

static int check_expect(const ynode *e, const char *what)
{
    if (e->kind == YN_SEQ) {
        for (size_t i = 0; i < e->n; i++)
            if (check_expect(e->items[i], what)) return -1;
        return 0;
    }
    if (only_keys(e, what, expect_keys)) return -1;
    int64_t x;
    const ynode *n;
    if ((n = ynode_get(e, "count")) && get_int(n, "count", &x)) return -1;
    if ((n = ynode_get(e, "topic")) && scalar(n, "topic")) return -1;
    for (int i = 0; i < 2; i++)
        if ((n = ynode_get(e, i ? "all" : "where")) && tr_check_expr(n)) return -1;
    const char *lists[] = {"records", "fields", "contains"};
    for (int i = 0; i < 3; i++)
        if ((n = ynode_get(e, lists[i])) && check_records(n, lists[i], 1)) return -1;
    if ((n = ynode_get(e, "reasons"))) {
        if (n->kind != YN_SEQ) return tr_bad(n, "reasons must be a list of texts");
        for (size_t i = 0; i < n->n; i++)
            if (scalar(n->items[i], "a reason")) return -1;
    }
    return 0;
}

static int parse_step(const ynode *s, step *st)
{
    static const char *const keys[] = {"input", "input_file", "advance", "flush", "assign", "restore", "revoke", NULL};
    if (only_keys(s, "a step", keys)) return -1;
    int kinds = !!(ynode_get(s, "input") || ynode_get(s, "input_file")) + !!ynode_get(s, "advance") +
                !!ynode_get(s, "flush") + !!ynode_get(s, "assign") + !!ynode_get(s, "revoke");
    if (kinds != 1 || (ynode_get(s, "restore") && !ynode_get(s, "assign")))
        return tr_bad(s, "a step is one of: input (and/or input_file), advance, flush, assign (with restore), revoke");
    st->at = s;
    const ynode *n;
    if ((n = ynode_get(s, "assign")) || (n = ynode_get(s, "revoke"))) {
        st->kind = ynode_get(s, "assign") ? ST_ASSIGN : ST_REVOKE;
        st->parts = n;
        if (n->kind != YN_SEQ || !n->n) return tr_bad(n, "a list of partitions: [{topic: T, partition: 0, offset: -1}]");
        for (size_t i = 0; i < n->n; i++) {
            static const char *const pk[] = {"topic", "partition", "offset", NULL};
            const ynode *p = n->items[i], *x;
            int64_t v;
            if (only_keys(p, "a partition", pk)) return -1;
            if ((x = ynode_get(p, "topic")) && scalar(x, "topic")) return -1;
            if ((x = ynode_get(p, "partition")) && get_int(x, "partition", &v)) return -1;
            if ((x = ynode_get(p, "offset")) && get_int(x, "offset", &v)) return -1;
        }
        if ((st->records = ynode_get(s, "restore")) && check_records(st->records, "restore", 0)) return -1;
    } else if ((n = ynode_get(s, "advance"))) {
        st->kind = ST_ADVANCE;
        if (scalar(n, "advance") || sl_parse_duration(n->str, &st->ms) != SL_OK)
            return tr_bad(n, "advance must be a duration (e.g. 1m, 500ms), not '%s'", ynode_text(n));
    } else if ((n = ynode_get(s, "flush"))) {
        st->kind = ST_FLUSH;
        if (scalar(n, "flush") || (strcmp(n->str, "final") && strcmp(n->str, "tick")))
            return tr_bad(n, "flush must be final (the end of input) or tick (a regular flush)");
        st->final = !strcmp(n->str, "final");
    } else {
        st->kind = ST_INPUT;
        st->records = ynode_get(s, "input");
        st->file = ynode_get(s, "input_file");
        if (st->records && check_records(st->records, "input", 0)) return -1;
        if (st->file && scalar(st->file, "input_file")) return -1;
    }
    return 0;
}

static int parse_case(const ynode *c, tcase *tc)
{
    static const char *const keys[] = {"name", "stages", "now", "input", "input_file", "steps", "expect",
                                       "dead_letter", NULL};
    memset(tc, 0, sizeof *tc);
    if (only_keys(c, "a case", keys)) return -1;
    tc->node = c;
    tc->name = ynode_get(c, "name");
    if (!tc->name) return tr_bad(c, "a case needs a name");
    if (scalar(tc->name, "name")) return -1;
    tc->stages = ynode_get(c, "stages");
    tc->now = DEFAULT_NOW;
    const ynode *n;
    if ((n = ynode_get(c, "now")) && tr_get_time(n, "now", &tc->now)) return -1;
    const ynode *in = ynode_get(c, "input"), *inf = ynode_get(c, "input_file"), *steps = ynode_get(c, "steps");
    if (steps && steps->kind != YN_SEQ) return tr_bad(steps, "steps must be a list");
    tc->steps = xcalloc(1 + (steps ? steps->n : 0), sizeof *tc->steps);
    if (in || inf) {
        step *st = &tc->steps[tc->nsteps++];
        st->kind = ST_INPUT;
        st->at = in ? in : inf;
        st->records = in;
        st->file = inf;
        if (in && check_records(in, "input", 0)) return -1;
        if (inf && scalar(inf, "input_file")) return -1;
    }
    for (size_t i = 0; steps && i < steps->n; i++)
        if (parse_step(steps->items[i], &tc->steps[tc->nsteps++])) return -1;
    tc->expect = ynode_get(c, "expect");
    tc->dead = ynode_get(c, "dead_letter");
    if (tc->expect && check_expect(tc->expect, "expect")) return -1;
    if (tc->dead && check_expect(tc->dead, "dead_letter")) return -1;
    if (!tc->expect && !tc->dead) return tr_bad(c, "case '%s' expects nothing (add expect: and/or dead_letter:)", tc->name->str);
    return 0;
}

/* ---- results ---------------------------------------------------------------------------------- */

void tr_fail(case_result *cr, const char *check, cJSON *exp, cJSON *act, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cr->f = xrealloc(cr->f, (cr->nf + 1) * sizeof *cr->f);
    cr->f[cr->nf++] = (failure){xstrdup(check), xstrdup(msg), exp, act};
    cr->status = 1;
}

/* ---- a test file ---------------------------------------------------------------------------- */

/* `stages:` — "name" or "first..last" among the pipeline's transforms; default all of them. */
static int resolve_range(const pipeline_cfg *p, const ynode *n, size_t *from, size_t *to)
{
    *from = 1;
    *to = p->nstages - 2; /* one before `from` when there are no transforms: an empty chain */
    if (!n) return 0;
    if (scalar(n, "stages")) return -1;
    const char *dots = strstr(n->str, "..");
    size_t idx[2];
    for (int k = 0; k < 2; k++) {
        const char *s = k == 0 ? n->str : dots ? dots + 2 : n->str;
        size_t len = k == 0 && dots ? (size_t)(dots - n->str) : strlen(s);
        size_t i = 1;
        while (i + 1 < p->nstages && !(strlen(p->stages[i].name) == len && !strncmp(p->stages[i].name, s, len))) i++;
        if (i + 1 >= p->nstages) {
            char list[400] = "";
            for (size_t j = 1; j + 1 < p->nstages; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j > 1 ? ", " : "", p->stages[j].name);
            return tr_bad(n, "'%.*s' is not a transform of pipeline %s (its transforms: %s)", (int)len, s, p->name,
                          *list ? list : "none");
        }
        idx[k] = i;
    }
    if (idx[0] > idx[1]) return tr_bad(n, "stages: '%s' runs after '%s' in the pipeline", p->stages[idx[0]].name, p->stages[idx[1]].name);
    *from = idx[0];
    *to = idx[1];
    return 0;
}

/* Long strings (a sketch, a payload) shortened in the text report; --json has them whole. */
static void shorten(cJSON *j)
{
    for (cJSON *c = j->child; c; c = c->next) shorten(c);
    if (cJSON_IsString(j) && strlen(j->valuestring) > 80) {
        char buf[128];
        snprintf(buf, sizeof buf, "%.40s...(%zu chars)", j->valuestring, strlen(j->valuestring));
        cJSON_SetValuestring(j, buf);
    }
}

static void print_diff(const failure *f)
{
    const char *dot = strrchr(f->check, '.');
    const char *mode = dot ? dot + 1 : "";
    int shown = 0;
    char *s;
#define ROW(sign, j)                                                                                 \
    do {                                                                                             \
        if (shown++ < 40) {                                                                          \
            cJSON *c = cJSON_Duplicate(j, 1);                                                        \
            shorten(c);                                                                              \
            s = cJSON_PrintUnformatted(c);                                                           \
            cJSON_Delete(c);                                                                         \
            printf("        %s %s\n", sign, s);                                                      \
            free(s);                                                                                 \
        }                                                                                            \
    } while (0)
    if (!strcmp(mode, "count") || !f->expected) {
        for (const cJSON *a = f->actual ? f->actual->child : NULL; a; a = a->next) ROW("+", a);
    } else if (!strcmp(mode, "contains")) {
        for (const cJSON *e = f->expected->child; e; e = e->next) {
            int found = 0;
            for (const cJSON *a = f->actual->child; a && !found; a = a->next) found = tr_record_match(e, a, 0);
            if (!found) ROW("-", e);
        }
        for (const cJSON *a = f->actual->child; a; a = a->next) ROW("+", a);
    } else {
        int exact = !strcmp(mode, "records");
        const cJSON *e = f->expected->child, *a = f->actual->child;
        for (int i = 1; e || a; i++) {
            int same = e && a &&
                       (!strcmp(mode, "reasons") ? cJSON_IsString(a) && strstr(a->valuestring, e->valuestring) != NULL
                                                 : tr_record_match(e, a, exact));
            if (same) {
                if (shown++ < 40) printf("          (record #%d as expected)\n", i);
            } else {
                if (e) ROW("-", e);
                if (a) ROW("+", a);
            }
            e = e ? e->next : NULL;
            a = a ? a->next : NULL;
        }
    }
    if (shown > 40) printf("        ... %d more lines\n", shown - 40);
#undef ROW
}

static void report_case(const run *R, const case_result *cr)
{
    if (R->json) return;
    printf("%s  %s:%d  %s (%.1f ms)\n", cr->status ? "FAIL" : "PASS", cr->file, cr->line, cr->name, cr->ms);
    for (size_t i = 0; i < cr->nf; i++) {
        printf("      %s: %s\n", cr->f[i].check, cr->f[i].message);
        if (cr->f[i].expected || cr->f[i].actual) {
            printf("        (- expected, + actual)\n");
            print_diff(&cr->f[i]);
        }
    }
    fflush(stdout);
}

static void bad_file(run *R, const char *msg)
{
    R->bad_files++;
    fprintf(stderr, "sluice test: %s\n", msg);
    cJSON_AddItemToArray(R->errors, cJSON_CreateString(msg));
}

static void run_file(run *R, const char *path, int pipeline_with_tests)
{
    char err[2048];
    /* Test files are not interpolated: a case means the same on every machine. */
    ytree *t = ytree_load_opts(path, NULL, YT_NO_ENV, err, sizeof err);
    if (!t) {
        bad_file(R, err);
        return;
    }
    static const char *const file_keys[] = {"pipeline", "description", "stages", "env", "defaults", "cases", NULL};
    static const char *const section_keys[] = {"stages", "env", "defaults", "cases", NULL};
    const ynode *root = t->root, *body = root, *cases = NULL, *pnode = NULL;
    char ppath[4096];
    tcase *tcs = NULL;
    size_t ncases = 0;
    pipeline_cfg *p = NULL;
    int rc = -1;
    if (pipeline_with_tests) {
        body = ynode_get(root, "tests");
        snprintf(ppath, sizeof ppath, "%s", path);
        if (body && body->kind == YN_SEQ) cases = body;
        else if (only_keys(body, "tests", section_keys)) goto out;
    } else {
        if (only_keys(root, "a test file", file_keys)) goto out;
        pnode = ynode_get(root, "pipeline");
        if (!pnode) {
            tr_bad(root, "a test file needs 'pipeline' (the pipeline file, relative to this one)");
            goto out;
        }
        if (scalar(pnode, "pipeline")) goto out;
        const char *slash = strrchr(path, '/');
        if (pnode->str[0] == '/' || !slash) snprintf(ppath, sizeof ppath, "%s", pnode->str);
        else snprintf(ppath, sizeof ppath, "%.*s/%s", (int)(slash - path), path, pnode->str);
    }
    if (!cases) cases = ynode_get(body, "cases");
    if (!cases) {
        tr_bad(body, "no cases (cases: a list)");
        goto out;
    }
    if (cases->kind != YN_SEQ) {
        tr_bad(cases, "cases must be a list");
        goto out;
    }
    const ynode *env = body->kind == YN_MAP ? ynode_get(body, "env") : NULL;
    const ynode *defaults = body->kind == YN_MAP ? ynode_get(body, "defaults") : NULL;
    if (env && env->kind != YN_MAP) {
        tr_bad(env, "env must be a map of variable names to values");
        goto out;
    }
    if (defaults && only_keys(defaults, "defaults", (const char *const[]){"key", "headers", "timestamp", "topic", "partition", NULL}))
        goto out;
    tcs = xcalloc(cases->n + 1, sizeof *tcs);
    for (; ncases < cases->n; ncases++)
        if (parse_case(cases->items[ncases], &tcs[ncases])) {
            ncases++;
            goto out;
        }
    /* The variables the pipeline file needs (${KAFKA_BROKERS}, ...), set before it is read. */
    for (size_t i = 0; env && i < env->n; i++)
        if (env->items[i]->kind == YN_SCALAR) setenv(env->keys[i]->str, env->items[i]->str, 1);
    /* Absolute, as `sluice run` hands it over: stages resolve their files against its dir. */
    char abs[PATH_MAX];
    p = pipeline_load(realpath(ppath, abs) ? abs : ppath, err, sizeof err);
    size_t *from = xcalloc(ncases + 1, sizeof *from), *to = xcalloc(ncases + 1, sizeof *to);
    for (size_t i = 0; p && i < ncases; i++) {
        const ynode *st = tcs[i].stages ? tcs[i].stages : body->kind == YN_MAP ? ynode_get(body, "stages") : NULL;
        if (resolve_range(p, st, &from[i], &to[i])) {
            free(from);
            free(to);
            goto out;
        }
    }
    rc = 0;
    for (size_t i = 0; i < ncases; i++) {
        R->r = xrealloc(R->r, (R->n + 1) * sizeof *R->r);
        case_result *cr = &R->r[R->n++];
        *cr = (case_result){.file = xstrdup(path), .name = xstrdup(tcs[i].name->str), .line = tcs[i].node->line};
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (!p) tr_fail(cr, "pipeline", NULL, NULL, "the pipeline does not load: %s", err);
        else tr_run_case(p, from[i], to[i], &tcs[i], defaults, cr);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr->ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        report_case(R, cr);
    }
    free(from);
    free(to);
out:
    if (rc) bad_file(R, tr_err);
    for (size_t i = 0; i < ncases; i++) free(tcs[i].steps);
    free(tcs);
    if (p) pipeline_free(p);
    ytree_free(t);
}

/* ---- finding test files ------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A pipeline file with a `tests:` section (read without interpolation: only its keys matter). */
static int has_tests(const char *path)
{
    char err[1024];
    ytree *t = ytree_load_opts(path, NULL, YT_NO_ENV, err, sizeof err);
    int yes = t && t->root->kind == YN_MAP && ynode_get(t->root, "pipeline") && ynode_get(t->root, "tests");
    ytree_free(t);
    return yes;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(run *R, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        char msg[4200];
        snprintf(msg, sizeof msg, "%s: %s", dir, strerror(errno));
        bad_file(R, msg);
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str); /* the same order on every machine */
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        size_t dl = strlen(dir);
        snprintf(path, sizeof path, "%.*s/%s", (int)(dl > 1 && dir[dl - 1] == '/' ? dl - 1 : dl), dir, names[i]);
        struct stat st;
        /* lstat: a symlinked directory is not followed (no loops); node_modules is not ours */
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (strcmp(names[i], "node_modules")) walk(R, path);
        }
        else if (ends_with(names[i], "_test.yaml") || ends_with(names[i], "_test.yml")) run_file(R, path, 0);
        else if ((ends_with(names[i], ".yaml") || ends_with(names[i], ".yml")) && has_tests(path)) run_file(R, path, 1);
        free(names[i]);
    }
    free(names);
}

static void print_json(const run *R, double ms)
{
    cJSON *o = cJSON_CreateObject(), *cs = cJSON_CreateArray();
    size_t passed = 0;
    for (size_t i = 0; i < R->n; i++) {
        const case_result *cr = &R->r[i];
        passed += !cr->status;
        cJSON *c = cJSON_CreateObject(), *fs = cJSON_CreateArray();
        cJSON_AddStringToObject(c, "file", cr->file);
        cJSON_AddNumberToObject(c, "line", cr->line);
        cJSON_AddStringToObject(c, "name", cr->name);
        cJSON_AddStringToObject(c, "status", cr->status ? "fail" : "pass");
        cJSON_AddNumberToObject(c, "duration_ms", cr->ms);
        for (size_t j = 0; j < cr->nf; j++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "check", cr->f[j].check);
            cJSON_AddStringToObject(f, "message", cr->f[j].message);
            if (cr->f[j].expected) cJSON_AddItemToObject(f, "expected", cJSON_Duplicate(cr->f[j].expected, 1));
            if (cr->f[j].actual) cJSON_AddItemToObject(f, "actual", cJSON_Duplicate(cr->f[j].actual, 1));
            cJSON_AddItemToArray(fs, f);
        }
        cJSON_AddItemToObject(c, "failures", fs);
        cJSON_AddItemToArray(cs, c);
    }
    cJSON_AddNumberToObject(o, "passed", (double)passed);
    cJSON_AddNumberToObject(o, "failed", (double)(R->n - passed));
    cJSON_AddNumberToObject(o, "bad_files", R->bad_files);
    cJSON_AddItemToObject(o, "errors", cJSON_Duplicate(R->errors, 1));
    cJSON_AddNumberToObject(o, "duration_ms", ms);
    cJSON_AddItemToObject(o, "cases", cs);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

int cmd_test_run(char **paths, size_t npaths, int json)
{
    run R = {.json = json, .errors = cJSON_CreateArray()};
    /* The stages' info lines (schema loaded, ...) would bury the report; SLUICE_LOG_LEVEL wins. */
    setenv("SLUICE_LOG_LEVEL", "warn", 0);
    sl_log_init();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    static char dot[] = ".";
    char *def[] = {dot};
    if (!npaths) {
        paths = def;
        npaths = 1;
    }
    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            char msg[4200];
            snprintf(msg, sizeof msg, "%s: %s", paths[i], strerror(errno));
            bad_file(&R, msg);
        } else if (S_ISDIR(st.st_mode)) {
            walk(&R, paths[i]);
        } else {
            run_file(&R, paths[i], !ends_with(paths[i], "_test.yaml") && !ends_with(paths[i], "_test.yml"));
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    size_t failed = 0;
    for (size_t i = 0; i < R.n; i++) failed += R.r[i].status != 0;
    if (json) print_json(&R, ms);
    else
        printf("\n%zu passed, %zu failed%s (%zu cases, %.1f ms)\n", R.n - failed, failed,
               R.bad_files ? ", test files with errors (see above)" : "", R.n, ms);
    for (size_t i = 0; i < R.n; i++) {
        for (size_t j = 0; j < R.r[i].nf; j++) {
            free(R.r[i].f[j].check);
            free(R.r[i].f[j].message);
            cJSON_Delete(R.r[i].f[j].expected);
            cJSON_Delete(R.r[i].f[j].actual);
        }
        free(R.r[i].f);
        free(R.r[i].file);
        free(R.r[i].name);
    }
    free(R.r);
    cJSON_Delete(R.errors);
    if (!R.n && !R.bad_files) {
        fprintf(stderr, "sluice test: no test files found (*_test.yaml, or a pipeline file with tests:)\n");
        return 2;
    }
    return R.bad_files ? 2 : failed ? 1 : 0;
}
