#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct sl_http {
    struct MHD_Daemon *d;
    size_t max_body;
    http_handler fn;
    void *arg;
    int port;
};

/* Per-request state, kept in MHD's *con_cls between the calls of one request. */
typedef struct req_state {
    sl_buf body;
    int too_big;
} req_state;

static enum MHD_Result queue(struct MHD_Connection *c, http_resp *r)
{
    struct MHD_Response *m;
    if (r->file_fd >= 0) {
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
    if (!st) {
        /* First call: headers only. Refuse an announced oversized body before reading it. */
        st = xcalloc(1, sizeof *st);
        *con_cls = st;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > h->max_body) st->too_big = 1;
        else return MHD_YES;
    }
    if (*upload_size && !st->too_big) {
        if (st->body.len + *upload_size > h->max_body) {
            st->too_big = 1;
            buf_free(&st->body);
        } else {
            buf_put(&st->body, upload_data, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    *upload_size = 0; /* the rest of an oversized body is discarded */
    http_resp r = {.status = 500, .file_fd = -1};
    if (st->too_big) {
        r.status = 413;
        buf_printf(&r.body, "{\"error_code\":413,\"message\":\"request body larger than %zu bytes\"}", h->max_body);
        return queue(c, &r);
    }
    http_req q = {.method = method, .conn = c};
    char *path = xstrdup(url);
    char *qm = strchr(path, '?');
    if (qm) *qm = 0;
    q.path = path;
    q.body = buf_cstr(&st->body);
    q.body_len = st->body.len;
    h->fn(h->arg, &q, &r);
    free(path);
    return queue(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_state *st = *con_cls;
    if (st) {
        buf_free(&st->body);
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
    h->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
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

void http_run(sl_http *h) { MHD_run(h->d); }

void http_stop(sl_http *h)
{
    if (!h) return;
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
