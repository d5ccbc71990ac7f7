#include "web.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cfgpolicy.h"
#include "log.h"

typedef struct web_param {
    char *name, *dflt; /* dflt NULL: the parameter is required */
} web_param;

typedef struct web_query {
    char *name, *sql;
    web_param *params;
    size_t nparams;
} web_query;

/* Configuration (from the host config) and the kept database connection. */
static struct {
    char *root;          /* realpath of the dashboard's files, or NULL */
    char *generator_url;
    char *database;      /* libpq connection string, or NULL */
    web_query *q;
    size_t nq;
    PGconn *conn;
    long long retry_at;  /* after a failed connect, don't retry before this (monotonic ms) */
    pthread_mutex_t lock; /* conn and retry_at: queries run on worker threads */
} W = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define WFAIL(n, ...) do { snprintf(err, errlen, "%s:%d:%d: web: ", (n)->file, (n)->line, (n)->col); \
                           size_t l_ = strlen(err); snprintf(err + l_, errlen - l_, __VA_ARGS__); return -1; } while (0)

static int scalar(const ynode *n, const char *what, char **out, char *err, size_t errlen)
{
    if (n->kind != YN_SCALAR) WFAIL(n, "'%s' must be a string", what);
    free(*out);
    *out = xstrdup(n->str);
    return 0;
}

int web_configure(const ynode *web, const char *dir, char *err, size_t errlen)
{
    if (web->kind != YN_MAP) WFAIL(web, "expected a map (root, generator_url, database, queries)");
    for (size_t i = 0; i < web->n; i++) {
        const char *k = web->keys[i]->str;
        const ynode *v = web->items[i];
        if (!strcmp(k, "root")) {
            char *r = NULL;
            if (scalar(v, "root", &r, err, errlen)) return -1;
            char *p = r[0] == '/' ? xstrdup(r) : xasprintf("%s/%s", dir, r);
            char abs[PATH_MAX];
            free(r);
            if (!realpath(p, abs)) {
                /* Not built yet is not fatal: /ui/ answers 404 with the reason. */
                log_warn("web.root %s: %s; the dashboard is not served", p, strerror(errno));
                free(p);
                continue;
            }
            free(p);
            W.root = xstrdup(abs);
            cfg_forbid_dir(abs); /* REST pipelines may not write the dashboard's files */
        } else if (!strcmp(k, "generator_url")) {
            if (scalar(v, k, &W.generator_url, err, errlen)) return -1;
        } else if (!strcmp(k, "database")) {
            if (scalar(v, k, &W.database, err, errlen)) return -1;
        } else if (!strcmp(k, "queries")) {
            if (v->kind != YN_MAP) WFAIL(v, "'queries' must be a map of NAME: {sql: ..., params: [...]}");
            for (size_t j = 0; j < v->n; j++) {
                const ynode *qn = v->items[j], *sql = ynode_get(qn, "sql"), *ps = ynode_get(qn, "params");
                if (qn->kind != YN_MAP || !sql || sql->kind != YN_SCALAR)
                    WFAIL(qn, "query '%s' needs 'sql' (a string)", v->keys[j]->str);
                for (size_t m = 0; m < qn->n; m++)
                    if (strcmp(qn->keys[m]->str, "sql") && strcmp(qn->keys[m]->str, "params"))
                        WFAIL(qn->keys[m], "query '%s': unknown key '%s' (sql, params)", v->keys[j]->str, qn->keys[m]->str);
                W.q = xrealloc(W.q, (W.nq + 1) * sizeof *W.q);
                web_query *q = &W.q[W.nq++];
                *q = (web_query){xstrdup(v->keys[j]->str), xstrdup(sql->str), NULL, 0};
                if (ps && ps->kind != YN_SEQ) WFAIL(ps, "'params' must be a list of {name, default}");
                for (size_t m = 0; ps && m < ps->n; m++) {
                    const ynode *pn = ps->items[m], *nm = ynode_get(pn, "name"), *df = ynode_get(pn, "default");
                    if (pn->kind == YN_SCALAR) nm = pn;
                    if (!nm || nm->kind != YN_SCALAR) WFAIL(pn, "a param needs a 'name'");
                    if (df && df->kind != YN_SCALAR) WFAIL(df, "a param's default must be a scalar");
                    q->params = xrealloc(q->params, (q->nparams + 1) * sizeof *q->params);
                    q->params[q->nparams++] = (web_param){xstrdup(nm->str), df ? xstrdup(df->str) : NULL};
                }
            }
        } else {
            WFAIL(web->keys[i], "unknown key '%s' (root, generator_url, database, queries)", k);
        }
    }
    return 0;
}

void web_shutdown(void)
{
    if (W.conn) PQfinish(W.conn);
    for (size_t i = 0; i < W.nq; i++) {
        for (size_t j = 0; j < W.q[i].nparams; j++) {
            free(W.q[i].params[j].name);
            free(W.q[i].params[j].dflt);
        }
        free(W.q[i].params);
        free(W.q[i].name);
        free(W.q[i].sql);
    }
    free(W.q);
    free(W.root);
    free(W.generator_url);
    free(W.database);
    pthread_mutex_t lock = W.lock;
    memset(&W, 0, sizeof W);
    W.lock = lock;
}

static void werror(http_resp *r, int status, const char *msg) { http_error(r, status, "%s", msg); }

/* ---- static files ------------------------------------------------------------------------- */

static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".woff2", "font/woff2"}, {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"}, {".jpg", "image/jpeg"}, {".webp", "image/webp"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i][0])) return types[i][1];
    return "application/octet-stream";
}

static void serve_file(const char *rel, http_resp *r)
{
    if (!W.root) {
        werror(r, 404, "the dashboard is not configured (host config web.root) or not built");
        return;
    }
    /* No "..", no hidden files; then the resolved path must still be under the root
     * (a symlink out of it is refused too). */
    for (const char *p = rel; *p;) {
        size_t l = strcspn(p, "/");
        if ((l == 2 && !strncmp(p, "..", 2)) || (l && p[0] == '.')) {
            werror(r, 404, "no such file");
            return;
        }
        p += l;
        if (*p) p++;
    }
    char *full = xasprintf("%s/%s", W.root, *rel ? rel : "index.html");
    char abs[PATH_MAX];
    struct stat st;
    if (realpath(full, abs) && stat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(full);
        full = xasprintf("%s/index.html", abs);
    }
    size_t rl = strlen(W.root);
    if (!realpath(full, abs) || strncmp(abs, W.root, rl) || (abs[rl] != '/' && abs[rl] != 0) || stat(abs, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        free(full);
        werror(r, 404, "no such file");
        return;
    }
    free(full);
    int fd = open(abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        werror(r, 404, "no such file");
        return;
    }
    r->status = 200;
    r->file_fd = fd;
    r->file_size = st.st_size;
    r->content_type = content_type(abs);
}

/* ---- data API ------------------------------------------------------------------------------ */

static PGconn *db(char *why, size_t whylen)
{
    if (!W.database) {
        snprintf(why, whylen, "no database configured (host config web.database)");
        return NULL;
    }
    if (W.conn && PQstatus(W.conn) == CONNECTION_OK) return W.conn;
    if (W.conn) {
        PQreset(W.conn); /* the server went away: try once to get it back */
        if (PQstatus(W.conn) == CONNECTION_OK) return W.conn;
        snprintf(why, whylen, "database unavailable: %s", PQerrorMessage(W.conn));
        PQfinish(W.conn);
        W.conn = NULL;
        W.retry_at = sl_monotonic_ms() + 1000;
        return NULL;
    }
    if (sl_monotonic_ms() < W.retry_at) {
        snprintf(why, whylen, "database unavailable (retrying shortly)");
        return NULL;
    }
    /* Short timeouts: a worker thread waits, and the supervisor's shutdown waits for it. */
    const char *keys[] = {"dbname", "connect_timeout", "options", "application_name", NULL};
    const char *vals[] = {W.database, "2", "-c statement_timeout=5000", "sluice-web", NULL};
    W.conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(W.conn) != CONNECTION_OK) {
        snprintf(why, whylen, "database unavailable: %s", PQerrorMessage(W.conn));
        PQfinish(W.conn);
        W.conn = NULL;
        W.retry_at = sl_monotonic_ms() + 1000;
        return NULL;
    }
    return W.conn;
}

/* int2, int4, int8, float4, float8, numeric, oid: sent as JSON numbers. */
static int numeric_oid(Oid t) { return t == 20 || t == 21 || t == 23 || t == 700 || t == 701 || t == 1700 || t == 26; }

static void exec_query(const web_query *q, const char **vals, http_resp *r)
{
    char why[512];
    PGconn *c = db(why, sizeof why);
    if (!c) {
        werror(r, 503, why);
        return;
    }
    PGresult *res = PQexecParams(c, q->sql, (int)q->nparams, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        /* A bad parameter value is the client's fault (22xxx: data exception); the rest is ours. */
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int status = PQstatus(c) != CONNECTION_OK ? 503 : code && !strncmp(code, "22", 2) ? 400 : 500;
        snprintf(why, sizeof why, "query %s failed: %s", q->name, PQresultErrorMessage(res));
        size_t l = strlen(why);
        while (l && why[l - 1] == '\n') why[--l] = 0;
        PQclear(res);
        werror(r, status, why);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "name", q->name);
    cJSON *cols = cJSON_AddArrayToObject(out, "columns"), *rows = cJSON_AddArrayToObject(out, "rows");
    int nf = PQnfields(res), nt = PQntuples(res);
    for (int f = 0; f < nf; f++) cJSON_AddItemToArray(cols, cJSON_CreateString(PQfname(res, f)));
    for (int t = 0; t < nt; t++) {
        cJSON *row = cJSON_CreateObject();
        for (int f = 0; f < nf; f++) {
            const char *v = PQgetvalue(res, t, f);
            Oid ty = PQftype(res, f);
            if (PQgetisnull(res, t, f)) cJSON_AddNullToObject(row, PQfname(res, f));
            else if (ty == 16) cJSON_AddBoolToObject(row, PQfname(res, f), v[0] == 't');
            else if (numeric_oid(ty) && strcmp(v, "NaN") && strcmp(v, "Infinity") && strcmp(v, "-Infinity"))
                cJSON_AddItemToObject(row, PQfname(res, f), cJSON_CreateRaw(v));
            else cJSON_AddStringToObject(row, PQfname(res, f), v);
        }
        cJSON_AddItemToArray(rows, row);
    }
    PQclear(res);
    char *s = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    r->status = 200;
    buf_puts(&r->body, s ? s : "{}");
    free(s);
}

/* A query handed to a worker thread: copies of everything it needs (the request is gone by
 * the time it runs). */
typedef struct query_job {
    const web_query *q; /* configuration: lives as long as the server */
    char **vals;
} query_job;

static void query_job_free(query_job *j)
{
    for (size_t i = 0; i < j->q->nparams; i++) free(j->vals[i]);
    free(j->vals);
    free(j);
}

/* Runs on a worker thread (see http_resp.job), one query at a time on the kept connection, so
 * a slow database never stalls the supervisor's loop. out == NULL: only free. */
static void query_job_run(void *arg, http_resp *out)
{
    query_job *j = arg;
    if (out) {
        pthread_mutex_lock(&W.lock);
        exec_query(j->q, (const char **)j->vals, out);
        pthread_mutex_unlock(&W.lock);
    }
    query_job_free(j);
}

static void run_query(const web_query *q, const http_req *req, http_resp *r)
{
    query_job *j = xcalloc(1, sizeof *j);
    j->q = q;
    j->vals = xcalloc(q->nparams ? q->nparams : 1, sizeof *j->vals);
    for (size_t i = 0; i < q->nparams; i++) {
        const char *v = http_query(req, q->params[i].name);
        if (!v) v = q->params[i].dflt;
        if (!v) {
            char msg[256];
            snprintf(msg, sizeof msg, "query %s needs parameter '%s'", q->name, q->params[i].name);
            werror(r, 400, msg);
            query_job_free(j);
            return;
        }
        j->vals[i] = xstrdup(v);
    }
    r->job = query_job_run;
    r->job_arg = j;
}

/* For the live stream (sse_live.c): the same query as GET /api/query/NAME, parameters from
 * `get`, run on the calling thread (a worker). */
int web_query_now(const char *name, const char *(*get)(void *, const char *), void *arg, int dry_run, sl_buf *out)
{
    const web_query *q = NULL;
    for (size_t i = 0; i < W.nq && !q; i++)
        if (!strcmp(W.q[i].name, name)) q = &W.q[i];
    http_resp r = {.status = 500, .file_fd = -1};
    if (!q) werror(&r, 404, "no such query (see GET /api/queries)");
    const char **vals = xcalloc(q && q->nparams ? q->nparams : 1, sizeof *vals);
    for (size_t i = 0; q && i < q->nparams && r.status == 500; i++) {
        vals[i] = get(arg, q->params[i].name);
        if (!vals[i]) vals[i] = q->params[i].dflt;
        if (!vals[i]) {
            char msg[256];
            snprintf(msg, sizeof msg, "query %s needs parameter '%s'", q->name, q->params[i].name);
            werror(&r, 400, msg);
        }
    }
    if (q && r.status == 500) {
        if (dry_run) r.status = 200;
        else {
            pthread_mutex_lock(&W.lock);
            exec_query(q, vals, &r);
            pthread_mutex_unlock(&W.lock);
        }
    }
    free(vals);
    buf_put(out, r.body.data ? r.body.data : "", r.body.len);
    buf_free(&r.body);
    return r.status;
}

int web_handle(const http_req *req, http_resp *r)
{
    const char *p = req->path;
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!strcmp(p, "/ui")) {
        r->status = 301;
        r->location = xstrdup("/ui/");
        return 1;
    }
    if (!strncmp(p, "/ui/", 4)) {
        if (!get) werror(r, 405, "use GET");
        else serve_file(p + 4, r);
        return 1;
    }
    if (strncmp(p, "/api/", 5)) return 0;
    if (!get) {
        werror(r, 405, "the data API is read-only; use GET");
        return 1;
    }
    if (!strcmp(p, "/api/config")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "generator_url", W.generator_url ? W.generator_url : "http://127.0.0.1:7070");
        cJSON_AddStringToObject(j, "version", SLUICE_VERSION);
        /* The page then knows whether Pause/Restart need the token it was opened with. */
        cJSON_AddBoolToObject(j, "auth", auth_enabled());
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        r->status = 200;
        buf_puts(&r->body, s);
        free(s);
        return 1;
    }
    if (!strcmp(p, "/api/queries")) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < W.nq; i++) cJSON_AddItemToArray(a, cJSON_CreateString(W.q[i].name));
        char *s = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
        r->status = 200;
        buf_puts(&r->body, s);
        free(s);
        return 1;
    }
    if (!strncmp(p, "/api/query/", 11)) {
        for (size_t i = 0; i < W.nq; i++)
            if (!strcmp(W.q[i].name, p + 11)) {
                run_query(&W.q[i], req, r);
                return 1;
            }
        werror(r, 404, "no such query (see GET /api/queries)");
        return 1;
    }
    werror(r, 404, "no such resource");
    return 1;
}
