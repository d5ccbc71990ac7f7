/* testrun_case.c — `sluice test`: one case: its input records built, its steps run through the
 * harness, and what left the chain checked against its expectations (with a diff). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "testrun.h"
#include "../plugins/common/sl_expr.h"

#define DIFF_ROWS 40 /* a diff shows at most this many records per side */

/* ---- input records ---------------------------------------------------------------------------- */

typedef struct offsets {
    char **topic;
    int32_t *part;
    int64_t *next;
    size_t n;
} offsets;

/* The next offset of (topic, partition): records without an explicit offset count up from 0
 * per partition, like a log; an explicit one moves the count on. */
static int64_t *next_offset(offsets *o, const char *topic, int32_t part)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->part[i] == part && !strcmp(o->topic[i], topic)) return &o->next[i];
    o->topic = xrealloc(o->topic, (o->n + 1) * sizeof *o->topic);
    o->part = xrealloc(o->part, (o->n + 1) * sizeof *o->part);
    o->next = xrealloc(o->next, (o->n + 1) * sizeof *o->next);
    o->topic[o->n] = xstrdup(topic);
    o->part[o->n] = part;
    o->next[o->n] = 0;
    return &o->next[o->n++];
}

static char *node_text(const ynode *n, size_t *len)
{
    if (n->kind == YN_SCALAR) {
        *len = strlen(n->str);
        return xstrdup(n->str); /* a scalar is the value's bytes: '{"a":1}', or text that is not JSON */
    }
    sl_buf b = {0};
    ynode_to_json(n, &b);
    *len = b.len;
    char *s = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return s;
}

/* One record: from a YAML map `r` (or, r NULL, a value line of an NDJSON file). */
static void build_record(tr_recs *out, const ynode *r, const char *line, size_t linelen, const ynode *defaults,
                         offsets *offs, int64_t now)
{
    tr_rec *x = tr_recs_push(out);
    const ynode *n, *d = defaults;
    if (r) x->value = node_text(ynode_get(r, "value"), &x->value_len);
    else {
        x->value = xmalloc(linelen + 1);
        memcpy(x->value, line, linelen);
        x->value[linelen] = 0;
        x->value_len = linelen;
    }
    const ynode *key = r ? ynode_get(r, "key") : NULL;
    if (!key && d) key = ynode_get(d, "key");
    if (key) {
        x->has_key = 1;
        x->key = xstrdup(key->str);
        x->key_len = strlen(key->str);
    }
    const ynode *hd = r ? ynode_get(r, "headers") : NULL;
    if (!hd && d) hd = ynode_get(d, "headers");
    if (hd) {
        x->hname = xcalloc(hd->n + 1, sizeof *x->hname);
        x->hval = xcalloc(hd->n + 1, sizeof *x->hval);
        x->hlen = xcalloc(hd->n + 1, sizeof *x->hlen);
        for (size_t j = 0; j < hd->n; j++) {
            x->hname[j] = xstrdup(hd->keys[j]->str);
            x->hval[j] = node_text(hd->items[j], &x->hlen[j]);
        }
        x->nh = hd->n;
    }
    x->timestamp_ms = now;
    if ((n = r ? ynode_get(r, "timestamp") : NULL) || (d && (n = ynode_get(d, "timestamp"))))
        tr_get_time(n, "timestamp", &x->timestamp_ms);
    n = r ? ynode_get(r, "topic") : NULL;
    if (!n && d) n = ynode_get(d, "topic");
    x->topic = xstrdup(n ? n->str : "test");
    n = r ? ynode_get(r, "partition") : NULL;
    if (!n && d) n = ynode_get(d, "partition");
    x->partition = n ? (int32_t)strtol(n->str, NULL, 10) : 0;
    int64_t *next = next_offset(offs, x->topic, x->partition);
    n = r ? ynode_get(r, "offset") : NULL;
    x->offset = n ? strtoll(n->str, NULL, 10) : *next;
    *next = x->offset + 1;
}

/* An NDJSON file (relative to the test file): one value per non-empty line. */
static int read_ndjson(const ynode *file, tr_recs *out, const ynode *defaults, offsets *offs, int64_t now)
{
    char path[4096];
    const char *slash = strrchr(file->file, '/');
    if (file->str[0] == '/' || !slash) snprintf(path, sizeof path, "%s", file->str);
    else snprintf(path, sizeof path, "%.*s/%s", (int)(slash - file->file), file->file, file->str);
    FILE *f = fopen(path, "r");
    if (!f) return tr_bad(file, "cannot read input_file %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len) build_record(out, NULL, line, (size_t)len, defaults, offs, now);
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---- expected records ------------------------------------------------------------------------- */

static cJSON *expected_json(const ynode *r)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < r->n; i++) {
        const char *k = r->keys[i]->str;
        const ynode *v = r->items[i];
        cJSON *item;
        if (!strcmp(k, "value")) {
            sl_buf b = {0};
            ynode_to_json(v, &b);
            item = cJSON_Parse(buf_cstr(&b));
            buf_free(&b);
        } else if (!strcmp(k, "headers")) {
            item = cJSON_CreateObject();
            for (size_t j = 0; j < v->n; j++) {
                size_t len;
                char *s = node_text(v->items[j], &len);
                cJSON_AddItemToObject(item, v->keys[j]->str, cJSON_CreateString(s));
                free(s);
            }
        } else if (!strcmp(k, "timestamp") || !strcmp(k, "partition") || !strcmp(k, "offset")) {
            int64_t t = 0;
            if (!strcmp(k, "timestamp")) tr_get_time(v, k, &t);
            else t = strtoll(v->str, NULL, 10);
            item = cJSON_CreateNumber((double)t);
        } else if (v->plain && (!strcmp(v->str, "~") || !strcmp(v->str, "null"))) {
            item = cJSON_CreateNull(); /* key: ~ — a record without a key */
        } else {
            item = cJSON_CreateString(v->str);
        }
        cJSON_AddItemToObject(o, k, item ? item : cJSON_CreateNull());
    }
    return o;
}

/* Does actual record `a` satisfy expected `e`? Only the fields `e` names count; the value
 * exactly or as a subset; a reason, outside exact mode, as a part of the actual reason. */
int tr_record_match(const cJSON *e, const cJSON *a, int exact)
{
    for (const cJSON *x = e->child; x; x = x->next) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
        if (!strcmp(x->string, "value")) {
            if (!tr_json_match(x, y, exact)) return 0;
        } else if (!strcmp(x->string, "reason") && !exact) {
            if (!cJSON_IsString(y) || !cJSON_IsString(x) || !strstr(y->valuestring, x->valuestring)) return 0;
        } else if (!tr_json_match(x, y, 1) && !(cJSON_IsNull(x) && !y)) {
            return 0;
        }
    }
    return 1;
}

/* `a` cut down to the members `e` names (objects, recursively), so a diff shows what was compared. */
static cJSON *cut(const cJSON *a, const cJSON *e)
{
    if (!cJSON_IsObject(a) || !cJSON_IsObject(e)) return cJSON_Duplicate(a, 1);
    cJSON *o = cJSON_CreateObject();
    for (const cJSON *x = e->child; x; x = x->next) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
        cJSON_AddItemToObject(o, x->string, y ? cut(y, x) : cJSON_CreateNull());
    }
    return o;
}

/* The actual record cut down to the fields the expected one names, for a readable diff; its
 * value whole when compared exactly. */
static cJSON *project(const cJSON *a, const cJSON *e, int exact)
{
    if (!e || !e->child) return cJSON_Duplicate(a, 1);
    cJSON *o = cJSON_CreateObject();
    for (const cJSON *x = e->child; x; x = x->next) {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(a, x->string);
        cJSON *v = !y ? cJSON_CreateNull() : !strcmp(x->string, "value") && !exact ? cut(y, x) : cJSON_Duplicate(y, 1);
        cJSON_AddItemToObject(o, x->string, v);
    }
    return o;
}

/* ---- conditions in the expression language ----------------------------------------------------- */

static sl_expr *compile_at(const ynode *n)
{
    sl_expr_opts o = {.want = SL_EXPR_T_BOOL};
    sl_expr_error err;
    sl_expr *e = sl_expr_compile(n->str, &o, &err);
    if (!e) {
        /* the position within the text, moved to the file (a quoted scalar starts one further) */
        int line = n->line + err.line - 1, col = err.line > 1 ? err.col : n->col + err.col - 1 + !n->plain;
        snprintf(tr_err, sizeof tr_err, "%s:%d:%d: %s", n->file, line, col, err.msg);
    }
    return e;
}

int tr_check_expr(const ynode *n)
{
    if (n->kind != YN_SCALAR) return tr_bad(n, "a condition must be an expression text, not %s", ynode_kind_name(n));
    sl_expr *e = compile_at(n);
    sl_expr_free(e);
    return e ? 0 : -1;
}

/* Does the record (as tr_rec_json) satisfy the condition? It reads the record's value, as the
 * transform stage's expressions do. */
static int holds(const sl_expr *prog, const cJSON *rec)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "value");
    return sl_expr_eval_bool(prog, &sl_host_api, (const sl_json *)v, NULL);
}

/* ---- the checks of one expect: / dead_letter: map ----------------------------------------------- */

static void check_list(case_result *cr, const char *what, const char *mode, const ynode *list, cJSON **sel,
                       size_t n)
{
    char check[300];
    snprintf(check, sizeof check, "%s.%s", what, mode);
    int exact = !strcmp(mode, "records"), any_order = !strcmp(mode, "contains");
    cJSON *exp = cJSON_CreateArray(), *act = cJSON_CreateArray();
    for (size_t i = 0; i < list->n; i++) cJSON_AddItemToArray(exp, expected_json(list->items[i]));
    size_t ne = list->n, bad_at = (size_t)-1, missing = 0;
    if (any_order) {
        char *used = xcalloc(n + 1, 1);
        size_t i = 0;
        for (const cJSON *e = exp->child; e; e = e->next, i++) {
            size_t j = 0;
            while (j < n && (used[j] || !tr_record_match(e, sel[j], 0))) j++;
            if (j < n) used[j] = 1;
            else if (!missing++) bad_at = i;
        }
        free(used);
        for (size_t j = 0; j < n; j++) cJSON_AddItemToArray(act, project(sel[j], exp->child, 0));
        if (missing)
            tr_fail(cr, check, exp, act, "%zu of %zu expected records not found among the %zu that came out (first: #%zu)",
                    missing, ne, n, bad_at + 1);
        else
            cJSON_Delete(exp), cJSON_Delete(act);
        return;
    }
    size_t i = 0;
    for (const cJSON *e = exp->child; e; e = e->next, i++)
        if (i >= n || !tr_record_match(e, sel[i], exact)) {
            if (bad_at == (size_t)-1) bad_at = i;
        }
    for (size_t j = 0; j < n; j++) cJSON_AddItemToArray(act, project(sel[j], cJSON_GetArrayItem(exp, (int)(j < ne ? j : 0)), exact));
    if (bad_at != (size_t)-1 || ne != n) {
        if (ne != n && bad_at == (size_t)-1) bad_at = ne < n ? ne : n;
        tr_fail(cr, check, exp, act, "expected %zu record%s, got %zu; first difference at record #%zu", ne,
                ne == 1 ? "" : "s", n, bad_at + 1);
    } else {
        cJSON_Delete(exp);
        cJSON_Delete(act);
    }
}

static void check_one(case_result *cr, const char *what, const ynode *e, const tr_recs *recs)
{
    const ynode *topic = ynode_get(e, "topic"), *where = ynode_get(e, "where"), *n;
    cJSON **sel = xcalloc(recs->n + 1, sizeof *sel);
    size_t ns = 0;
    sl_expr *cond = where ? compile_at(where) : NULL; /* checked when the file was read */
    for (size_t i = 0; i < recs->n; i++)
        if (!topic || (recs->v[i].topic && !strcmp(recs->v[i].topic, topic->str))) {
            sel[ns] = tr_rec_json(&recs->v[i]);
            if (cond && !holds(cond, sel[ns])) cJSON_Delete(sel[ns]);
            else ns++;
        }
    sl_expr_free(cond);
    char label[200];
    snprintf(label, sizeof label, "%s%s%s%s%s%s", what, topic || where ? "[" : "", topic ? "topic " : "",
             topic ? topic->str : "", topic && where ? ", " : "", where ? "where" : "");
    if (topic || where) snprintf(label + strlen(label), sizeof label - strlen(label), "%s%s]", where ? " " : "",
                                 where ? where->str : "");
    if ((n = ynode_get(e, "count"))) {
        long long want = strtoll(n->str, NULL, 10);
        if ((long long)ns != want) {
            cJSON *act = cJSON_CreateArray();
            for (size_t i = 0; i < ns; i++) cJSON_AddItemToArray(act, cJSON_Duplicate(sel[i], 1));
            char check[300];
            snprintf(check, sizeof check, "%s.count", label);
            tr_fail(cr, check, cJSON_CreateNumber((double)want), act, "expected %lld record%s, got %zu", want,
                    want == 1 ? "" : "s", ns);
        }
    }
    static const char *const modes[] = {"records", "fields", "contains"};
    for (int m = 0; m < 3; m++)
        if ((n = ynode_get(e, modes[m]))) check_list(cr, label, modes[m], n, sel, ns);
    if ((n = ynode_get(e, "all"))) {
        sl_expr *c = compile_at(n);
        cJSON *act = cJSON_CreateArray();
        for (size_t i = 0; i < ns; i++)
            if (!holds(c, sel[i])) cJSON_AddItemToArray(act, cJSON_Duplicate(sel[i], 1));
        sl_expr_free(c);
        int nbad = cJSON_GetArraySize(act);
        char check[300];
        snprintf(check, sizeof check, "%s.all", label);
        if (nbad) tr_fail(cr, check, cJSON_CreateString(n->str), act, "%d of %zu records do not satisfy: %s", nbad, ns, n->str);
        else cJSON_Delete(act);
    }
    if ((n = ynode_get(e, "reasons"))) {
        cJSON *exp = cJSON_CreateArray(), *act = cJSON_CreateArray();
        int ok = n->n == ns;
        for (size_t i = 0; i < n->n; i++) {
            cJSON_AddItemToArray(exp, cJSON_CreateString(n->items[i]->str));
            const cJSON *r = i < ns ? cJSON_GetObjectItemCaseSensitive(sel[i], "reason") : NULL;
            if (!cJSON_IsString(r) || !strstr(r->valuestring, n->items[i]->str)) ok = 0;
        }
        for (size_t i = 0; i < ns; i++) {
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(sel[i], "reason");
            cJSON_AddItemToArray(act, cJSON_CreateString(cJSON_IsString(r) ? r->valuestring : ""));
        }
        char check[300];
        snprintf(check, sizeof check, "%s.reasons", label);
        if (!ok) tr_fail(cr, check, exp, act, "the reasons differ (each expected text must be part of the reason, in order)");
        else cJSON_Delete(exp), cJSON_Delete(act);
    }
    for (size_t i = 0; i < ns; i++) cJSON_Delete(sel[i]);
    free(sel);
}

static void check_all(case_result *cr, const char *what, const ynode *e, const tr_recs *recs)
{
    if (!e) return;
    if (e->kind == YN_SEQ)
        for (size_t i = 0; i < e->n; i++) check_one(cr, what, e->items[i], recs);
    else
        check_one(cr, what, e, recs);
}

/* ---- a case ----------------------------------------------------------------------------------- */

void tr_run_case(pipeline_cfg *cfg, size_t from, size_t to, const tcase *tc, const ynode *defaults, case_result *cr)
{
    char err[1024];
    tr_harness *h = tr_start(cfg, from, to, tc->now, err, sizeof err);
    if (!h) {
        tr_fail(cr, "start", NULL, NULL, "%s", err);
        return;
    }
    offsets offs = {0};
    for (size_t i = 0; i < tc->nsteps && !cr->status; i++) {
        const step *st = &tc->steps[i];
        int rc = 0;
        if (st->kind == ST_INPUT) {
            tr_recs in = {0};
            for (size_t j = 0; st->records && j < st->records->n; j++)
                build_record(&in, st->records->items[j], NULL, 0, defaults, &offs, tr_now(h));
            if (st->file && read_ndjson(st->file, &in, defaults, &offs, tr_now(h))) tr_fail(cr, "input_file", NULL, NULL, "%s", tr_err);
            else rc = tr_feed(h, in.v, in.n);
            tr_recs_free(&in);
        } else if (st->kind == ST_ASSIGN || st->kind == ST_REVOKE) {
            size_t n = st->parts->n;
            sl_position *parts = xcalloc(n, sizeof *parts);
            for (size_t j = 0; j < n; j++) {
                const ynode *p = st->parts->items[j], *x = ynode_get(p, "topic");
                if (!x && defaults) x = ynode_get(defaults, "topic");
                parts[j].topic = x ? x->str : "test";
                parts[j].partition = (x = ynode_get(p, "partition")) ? (int32_t)strtol(x->str, NULL, 10) : 0;
                parts[j].offset = (x = ynode_get(p, "offset")) ? strtoll(x->str, NULL, 10) : -1;
            }
            tr_recs state = {0};
            offsets none = {0};
            for (size_t j = 0; st->records && j < st->records->n; j++)
                build_record(&state, st->records->items[j], NULL, 0, defaults, &none, tr_now(h));
            rc = tr_partitions(h, parts, n, st->kind == ST_REVOKE, state.v, state.n);
            tr_recs_free(&state);
            for (size_t j = 0; j < none.n; j++) free(none.topic[j]);
            free(none.topic);
            free(none.part);
            free(none.next);
            free(parts);
        } else if (st->kind == ST_ADVANCE) {
            rc = tr_advance(h, st->ms);
        } else {
            rc = tr_flush(h, st->final);
        }
        if (rc)
            tr_fail(cr, "pipeline", NULL, NULL, "%s:%d:%d: the pipeline failed at this step: %s", st->at->file,
                    st->at->line, st->at->col, tr_error(h));
    }
    for (size_t i = 0; i < offs.n; i++) free(offs.topic[i]);
    free(offs.topic);
    free(offs.part);
    free(offs.next);
    if (!cr->status) {
        check_all(cr, "expect", tc->expect, tr_output(h));
        check_all(cr, "dead_letter", tc->dead, tr_dead(h));
    }
    tr_stop(h);
}
