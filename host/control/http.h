/* http.h — a small HTTP/1.1 server on libmicrohttpd, driven from the supervisor's own loop.
 *
 * The server runs in MHD's "external" epoll mode: it owns no thread. The supervisor polls
 * http_fd() with at most http_timeout_ms() and then calls http_run(), so every request handler
 * runs on the supervisor's thread and may read and change supervisor state without locks.
 * Handlers must therefore be quick (no long blocking calls).
 *
 * A handler that would block (a database query) sets resp->job instead of answering: the
 * connection is suspended and the job runs on a worker thread (at most HTTP_MAX_JOBS at a
 * time, else 503); its answer is sent when it is done.
 *
 * A request body is collected in memory up to `max_body` bytes; a larger one is answered with
 * 413 without calling the handler. */
#ifndef SL_HOST_HTTP_H
#define SL_HOST_HTTP_H

#include <stdarg.h>
#include <stddef.h>

#include "util.h"

typedef struct sl_http sl_http;

typedef struct http_req {
    const char *method;  /* "GET", "PUT", ... */
    const char *path;    /* URL path, percent-decoded by MHD, without the query string */
    const char *body;    /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    void *conn;          /* for http_query / http_header */
} http_req;

typedef struct http_resp http_resp;
/** Work a handler hands off its thread (a database query): runs on a worker thread and fills
 *  `out` (status, body...); then frees arg. */
typedef void (*http_job_fn)(void *arg, http_resp *out);

struct http_resp {
    int status;
    const char *content_type; /* static string; default "application/json" */
    sl_buf body;              /* owned by the server after the handler returns */
    int file_fd;              /* >= 0: send this file instead of body (the server closes it) */
    long long file_size;
    char *location;           /* optional Location header (malloc'd, freed by the server) */
    int want_auth;            /* add WWW-Authenticate: Bearer */
    http_job_fn job;          /* set by a handler: answer later, from job(job_arg, resp) on a worker
                                 thread, so the supervisor's loop never waits on it */
    void *job_arg;
    struct sse_client *stream; /* set by sse_open: answer with an event stream (sse.h) */
};

#define HTTP_MAX_JOBS 4

typedef void (*http_handler)(void *arg, const http_req *req, http_resp *resp);

/** Starts listening on "HOST:PORT" (IPv4 address or "localhost"; port 0 = any free port).
 *  NULL with the reason in err (e.g. the port is taken). */
sl_http *http_start(const char *listen, size_t max_body, http_handler fn, void *arg, char *err, size_t errlen);
/** The port actually bound. */
int http_port(const sl_http *h);
/** The fd to poll for input, and how long the poll may block at most (ms, -1 = no limit). */
int http_fd(const sl_http *h);
int http_timeout_ms(const sl_http *h);
/** Handles whatever is ready; never blocks on the network. */
void http_run(sl_http *h);
void http_stop(sl_http *h);

/** A query-string argument or a request header of the current request; NULL when absent. */
const char *http_query(const http_req *req, const char *name);
const char *http_header(const http_req *req, const char *name);
/** Answers with Kafka Connect's error shape: {"error_code": status, "message": "..."}. */
void http_error(http_resp *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void http_verror(http_resp *r, int status, const char *fmt, va_list ap);

/** True when a query argument `name` (repeated, or a comma list) has the value `value`. */
int http_query_has(const http_req *req, const char *name, const char *value);

#endif
