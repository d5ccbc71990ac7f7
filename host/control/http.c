#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plugins/common/sl_httpd.h"
#include "log.h"
#include "sse.h"

struct sl_http {
    struct MHD_Daemon *d;
    atomic_int jobs; /* worker threads running */
    size_t max_body;
    http_handler fn;
    void *arg;
    int port;
};

/* Per-request state, kept in MHD's *con_cls between the calls of one request. */
typedef struct req_state {
    sl_body body;
    /* a job handed to a worker thread: its answer, and whether it is ready */
    int deferred;
    atomic_int done;
    http_resp resp;
    struct MHD_Connection *conn;
    sl_http *h;
} req_state;

static void *job_main(void *p)
{
    req_state *st = p;
    st->resp.job(st->resp.job_arg, &st->resp);
    st->resp.job = NULL;
    sl_http *h = st->h;
    struct MHD_Connection *c = st->conn;
    atomic_store(&st->done, 1);
    atomic_fetch_sub(&h->jobs, 1);
    /* Thread-safe with MHD_ALLOW_SUSPEND_RESUME: wakes the supervisor's poll through MHD's
     * own inter-thread channel. `st` is not touched after this. */
    MHD_resume_connection(c);
    return NULL;
}

static enum MHD_Result queue(struct MHD_Connection *c, http_resp *r)
{
    struct MHD_Response *m;
    if (r->stream) {
        m = sse_mhd_response(r->stream, c);
    } else if (r->file_fd >= 0) {
        m = MHD_create_response_from_fd64((uint64_t)r->file_size, r->file_fd);
    } else {
        size_t len = r->body.len;
        char *data = r->body.data; /* handed to MHD, which frees it */
        r->body = (sl_buf){0};
        m = MHD_create_response_from_buffer(len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE
                                                                                : MHD_RESPMEM_PERSISTENT);
    }
    if (!m) return MHD_NO;
    if (r->status != 204)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
    if (r->location) MHD_add_response_header(m, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->want_auth) MHD_add_response_header(m, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    MHD_add_response_header(m, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, m);
    MHD_destroy_response(m);
    free(r->location);
    buf_free(&r->body);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    (void)version;
    sl_http *h = cls;
    req_state *st = *con_cls;
    if (st && st->deferred) { /* resumed: the worker's answer is ready */
        *upload_size = 0;
        if (!atomic_load(&st->done)) return MHD_YES;
        st->deferred = 0;
        return queue(c, &st->resp);
    }
    if (!st) {
        /* First call: headers only. Refuse an announced oversized body before reading it. */
        st = xcalloc(1, sizeof *st);
        *con_cls = st;
        sl_body_begin(&st->body, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
                      h->max_body);
        if (!st->body.too_big) return MHD_YES;
    }
    if (*upload_size && !st->body.too_big) {
        if (sl_body_add(&st->body, upload_data, *upload_size, h->max_body) != 0) abort(); /* out of memory */
        *upload_size = 0;
        return MHD_YES;
    }
    *upload_size = 0; /* the rest of an oversized body is discarded */
    http_resp r = {.status = 500, .file_fd = -1};
    if (st->body.too_big) {
        r.status = 413;
        buf_printf(&r.body, "{\"error_code\":413,\"message\":\"request body larger than %zu bytes\"}", h->max_body);
        return queue(c, &r);
    }
    http_req q = {.method = method, .conn = c};
    char *path = xstrdup(url);
    char *qm = strchr(path, '?');
    if (qm) *qm = 0;
    q.path = path;
    q.body = st->body.data ? st->body.data : "";
    q.body_len = st->body.len;
    h->fn(h->arg, &q, &r);
    free(path);
    if (r.job) {
        if (atomic_fetch_add(&h->jobs, 1) >= HTTP_MAX_JOBS) {
            atomic_fetch_sub(&h->jobs, 1);
            r.job(r.job_arg, NULL); /* NULL: only free the argument */
            r.job = NULL;
            r.status = 503;
            r.body.len = 0;
            buf_puts(&r.body, "{\"error_code\":503,\"message\":\"too many queries at once; try again\"}");
            return queue(c, &r);
        }
        st->resp = r;
        st->deferred = 1;
        st->conn = c;
        st->h = h;
        MHD_suspend_connection(c);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, job_main, st) != 0) job_main(st);
        pthread_attr_destroy(&at);
        return MHD_YES;
    }
    return queue(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_state *st = *con_cls;
    if (st) {
        sl_body_free(&st->body);
        if (st->deferred) { /* aborted before its answer was queued */
            buf_free(&st->resp.body);
            free(st->resp.location);
        }
        free(st);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    log_debug("http: %s", msg);
}

sl_http *http_start(const char *listen, size_t max_body, http_handler fn, void *arg, char *err, size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    char host[256];
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "listen address '%s' must be HOST:PORT", listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "listen address '%s': bad port", listen);
        return NULL;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "listen address '%s': '%s' is not an IPv4 address", listen, host);
        return NULL;
    }
    sl_http *h = xcalloc(1, sizeof *h);
    h->max_body = max_body;
    h->fn = fn;
    h->arg = arg;
    errno = 0;
    h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            /* Slow and half-open clients: idle ones are dropped after 10 s and
                             * one address may hold at most 32 connections, so a slowloris from
                             * one client cannot take all 256. */
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (!h->d) {
        int e = errno;
        /* MHD does not say why; find out by binding once ourselves. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) != 0) e = errno;
        if (s >= 0) close(s);
        snprintf(err, errlen, "cannot listen on %s: %s", listen, e ? strerror(e) : "libmicrohttpd failed to start");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : (int)port;
    return h;
}

int http_port(const sl_http *h) { return h->port; }

int http_fd(const sl_http *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

int http_timeout_ms(const sl_http *h)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(h->d, &t) != MHD_YES) return -1;
    return t > 1000 ? 1000 : (int)t;
}

void http_run(sl_http *h)
{
    sse_tick(); /* event streams: pings, periodic publishers; may resume connections */
    MHD_run(h->d);
}

void http_stop(sl_http *h)
{
    if (!h) return;
    sse_shutdown(); /* event streams are suspended most of the time */
    /* Suspended connections must be resumed before MHD stops: let running jobs finish (the
     * dashboard's queries are bounded by their statement timeout). */
    for (int i = 0; i < 3000 && atomic_load(&h->jobs) > 0; i++) {
        MHD_run(h->d);
        usleep(10000);
    }
    MHD_run(h->d);
    MHD_stop_daemon(h->d);
    free(h);
}

const char *http_query(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void http_verror(http_resp *r, int status, const char *fmt, va_list ap)
{
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    r->status = status;
    r->content_type = "application/json";
    r->body.len = 0;
    buf_printf(&r->body, "{\"error_code\":%d,\"message\":", status);
    buf_json_str(&r->body, msg, strlen(msg));
    buf_puts(&r->body, "}");
}

void http_error(http_resp *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_verror(r, status, fmt, ap);
    va_end(ap);
}

struct has_ctx {
    const char *name, *value;
    int found;
};

static enum MHD_Result has_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct has_ctx *h = cls;
    if (key && value && !strcmp(key, h->name))
        for (const char *p = value; *p;) { /* a comma-separated list counts too */
            size_t l = strcspn(p, ",");
            if (l == strlen(h->value) && !strncmp(p, h->value, l)) h->found = 1;
            p += l;
            if (*p) p++;
        }
    return MHD_YES;
}

int http_query_has(const http_req *req, const char *name, const char *value)
{
    struct has_ctx h = {name, value, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, has_cb, &h);
    return h.found;
}
